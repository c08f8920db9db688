/**
 * A change the CRM makes after shipment is refused, and the CRM is told why: the status written
 * back carries the reason in its comment, as the demo CRM receives it over HTTP, for as long as the
 * refused version is the CRM's latest. The order keeps what was shipped; one that ended (cancelled,
 * rejected) refuses changes too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'
import { linkOf, waitForOrder } from '../support/order-probes.ts'

describe('a change after shipment', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('postgres')
  })
  afterAll(() => stack?.close())

  const crmShows = (externalId: string, what: string, test: (status: { status: string; comment?: string }) => boolean) =>
    stack.waitFor(async () => {
      const current = stack.crmSimulator.statuses().find((s) => s.orderId === externalId)?.current
      return current && test(current) ? current : undefined
    }, `the CRM to show ${what}`)

  it('is refused, and the CRM hears why with the status it is sent then and after', async () => {
    const document = { ...sampleOrder(1, 'WB-LATE'), items: [{ product_code: 'SKU-102', qty: 1, price: '20.00' }] }
    await stack.crm.send('order.created', document)
    const created = await waitForOrder(stack, 'WB-LATE', 'pending shipment', (o) => o.state === 'pending_shipment')
    const reservation = linkOf(created, 'inventory.reserve')!.externalId!
    stack.wms.ship(reservation)
    expect((await crmShows('WB-LATE', 'shipped', (s) => s.status === 'shipped')).comment).toBeUndefined()

    await stack.crm.send('order.updated', { ...document, version: 2, items: [{ product_code: 'SKU-102', qty: 3, price: '20.00' }] })
    const reason = 'change refused: an order in state shipped cannot be changed any more'
    expect(await crmShows('WB-LATE', 'the refusal', (s) => s.comment !== undefined)).toMatchObject({ status: 'shipped', comment: reason })
    // The order keeps what was shipped: the refused quantities are not applied.
    const kept = (await stack.api(`/api/v1/orders/${created.id}`)).body
    expect(kept.total).toBe('20.00')
    expect(kept.document.lines.map((l: { quantity: string }) => l.quantity)).toEqual(['1'])

    // Version 2 is still what the CRM holds, so the next status it is sent still says it was not applied.
    stack.wms.deliver(reservation)
    expect(await crmShows('WB-LATE', 'delivered', (s) => s.status === 'delivered')).toMatchObject({ comment: reason })
  })

  it('is refused for an order that ended, which stays as it ended', async () => {
    const document = { ...sampleOrder(2, 'WB-ENDED'), items: [{ product_code: 'SKU-103', qty: 1, price: '20.00' }] }
    await stack.crm.send('order.created', document)
    await stack.crm.send('order.cancelled', { ...document, version: 2 })
    const cancelled = await waitForOrder(stack, 'WB-ENDED', 'cancelled', (o) => o.state === 'cancelled')

    await stack.crm.send('order.updated', { ...document, version: 3, items: [{ product_code: 'SKU-103', qty: 4, price: '20.00' }] })
    const reason = 'change refused: an order in state cancelled cannot be changed any more'
    expect(await crmShows('WB-ENDED', 'the refusal', (s) => s.comment !== undefined)).toMatchObject({ status: 'cancelled', comment: reason })
    const kept = (await stack.api(`/api/v1/orders/${cancelled.id}`)).body
    expect(kept.state).toBe('cancelled')
    expect(kept.document.lines.map((l: { quantity: string }) => l.quantity)).toEqual(['1'])
  })
})
