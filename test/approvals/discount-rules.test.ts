/**
 * The line discount rule on real orders, through the HTTP API: a canonical order line keeps its
 * `discount` (percent off the list price) from the mapping to the approval rules, so a line
 * discounted above the rule's threshold waits for the level the rule names and one below does not.
 * The demo CRM sends each item's discount, and its shipped mapping carries it to the order line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

describe('a line discount above the rule’s threshold', () => {
  let stack: TestStack
  let salesManagerKey: string

  const waitForOrder = (externalId: string, what: string, test: (o: { state: string }) => boolean) =>
    stack.waitFor(async () => {
      const found = (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]
      return found && test(found) ? found : undefined
    }, `${externalId} ${what}`)
  const send = (externalId: string, sku: string, discount: string) =>
    stack.crm.send('order.created', { ...sampleOrder(21, externalId), items: [{ product_code: 'SKU-100', qty: 1, price: '10.00' }, { product_code: sku, qty: 2, price: '40.00', discount }] })

  beforeAll(async () => {
    stack = await startTestStack('postgres', {
      wms: { stock: { 'SKU-100': 100, 'SKU-DEEP': 100, 'SKU-LIGHT': 100 } },
      configure: (config) => ({
        ...config,
        approval: {
          rules: [
            { id: 'deep-discount', when: { maxLineDiscountPercent: { above: '15' } }, require: ['sales_manager'] },
            { id: 'cny', when: { amount: { CNY: { min: '0' } } }, require: [] },
          ],
        } as never,
      }),
    })
    const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'sales manager', role: 'approver', level: 'sales_manager' } })
    salesManagerKey = created.body.key
  })
  afterAll(() => stack?.close())

  it('waits for the level the rule names', async () => {
    expect((await send('DISC-DEEP', 'SKU-DEEP', '20')).status).toBe(202)
    const waiting = await waitForOrder('DISC-DEEP', 'waiting for approval', (o) => o.state === 'pending_approval')
    const { body: order } = await stack.api(`/api/v1/orders/${waiting.id}`)
    expect(order.document.lines).toEqual([expect.not.objectContaining({ discount: expect.anything() }), expect.objectContaining({ sku: 'SKU-DEEP', discount: '20', lineTotal: '80.00' })])
    // The discount is what the rule reads; the price is already the discounted one, so the total stays.
    expect(order.total).toBe('90.00')
    const toApproval = order.timeline.find((t: { toState: string | null }) => t.toState === 'pending_approval')
    expect(toApproval.cause).toMatch(/rule "deep-discount" matched and requires sales_manager; the largest line discount, 20%, is above 15/)
    const pending = (await stack.api('/api/v1/approvals?pending=true', { key: salesManagerKey })).body.approvals
    expect(pending).toEqual([expect.objectContaining({ orderId: waiting.id, level: 'sales_manager', rule: 'deep-discount' })])
  })

  it('lets a line discounted below the threshold through without approval', async () => {
    expect((await send('DISC-LIGHT', 'SKU-LIGHT', '5')).status).toBe(202)
    const done = await waitForOrder('DISC-LIGHT', 'past approval', (o) => o.state === 'pending_shipment')
    const { body: order } = await stack.api(`/api/v1/orders/${done.id}`)
    expect(order.document.lines[1]).toMatchObject({ sku: 'SKU-LIGHT', discount: '5' })
    const transitions = order.timeline.filter((t: { kind: string }) => t.kind === 'transition')
    expect(transitions[0]).toMatchObject({ toState: 'approved', cause: expect.stringMatching(/^policy: no rule matched|^policy: rule "cny"/) })
    expect(transitions.map((t: { toState: string }) => t.toState)).not.toContain('pending_approval')
  })
})
