/**
 * A CRM that runs approval itself (`approvedBy: 'crm'` on its connection), through the real HTTP
 * API: its rejection, with its comment, ends the order; nothing reaches the WMS or the ERP, and a
 * later decision from the CRM is refused. (Its approval is covered in test/e2e/order-lifecycle.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

type TimelineEntry = { kind: string; toState: string | null; cause: string; detail: Record<string, unknown> | null }

describe('a CRM that runs approval itself', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('postgres', {
      configure: (config) => ({
        ...config,
        // The rules would need a person; the CRM's decision replaces them.
        approval: { rules: [{ id: 'everything', when: {}, require: ['sales_manager'] }] } as never,
        connections: config.connections.map((c) => (c.id === 'demo-crm' ? { ...c, approvedBy: 'crm' as const } : c)),
      }),
    })
  })
  afterAll(() => stack?.close())

  it('ends the order rejected, with the CRM’s comment, when the CRM rejects it', async () => {
    await stack.crm.send('order.created', { ...sampleOrder(41, 'CRM-NO'), items: [{ product_code: 'SKU-100', qty: 3, price: '10.00' }] })
    const findOrder = async () => (await stack.api('/api/v1/orders?connection=demo-crm&externalId=CRM-NO')).body.orders[0]
    const waiting = await stack.waitFor(async () => ((await findOrder())?.state === 'pending_approval' ? findOrder() : undefined), 'CRM-NO waiting for the CRM')

    const sent = await stack.crm.sendApproval({ order_id: 'CRM-NO', decision: 'rejected', approver: 'Wang Lei', comment: 'customer asked to wait for the new price list' })
    expect(sent.status).toBe(202)
    await stack.waitFor(async () => (await findOrder())?.state === 'rejected', 'CRM-NO rejected')

    const { body } = await stack.api(`/api/v1/orders/${waiting.id}/timeline`)
    const rejected = body.timeline.find((t: TimelineEntry) => t.toState === 'rejected')
    expect(rejected).toMatchObject({ fromState: 'pending_approval', cause: expect.stringMatching(/demo-crm event/), detail: { by: 'Wang Lei', comment: 'customer asked to wait for the new price list' } })
    // The CRM's decision is not one of orderbridge's approvals: there is none to list or decide.
    expect(body.timeline.filter((t: TimelineEntry) => t.kind === 'approval')).toEqual([])
    expect((await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', body: { decision: 'approve' } })).status).toBe(409)

    // The CRM hears the state it decided; nothing was reserved or sent to the ERP.
    await stack.waitFor(async () => stack.crmSimulator.statuses().find((s) => s.orderId === 'CRM-NO' && s.current.status === 'rejected'), 'the CRM to hear rejected')
    expect(stack.wms.reservations().some((r) => r.reference === waiting.id)).toBe(false)
    expect(stack.erp.salesOrders().some((s) => s.reference === waiting.id)).toBe(false)
    expect((await findOrder()).links.map((l: { operation: string }) => l.operation)).toEqual(['crm.status'])

    // A change of mind in the CRM comes too late: the rejection stands, and the refusal is recorded.
    await stack.crm.sendApproval({ order_id: 'CRM-NO', decision: 'approved', approver: 'Wang Lei' })
    const refusal = await stack.waitFor(async () => {
      const timeline = (await stack.api(`/api/v1/orders/${waiting.id}/timeline`)).body.timeline as TimelineEntry[]
      return timeline.find((t) => t.kind === 'refused')
    }, 'the late approval refused')
    expect(refusal.detail).toMatchObject({ reason: 'the order is rejected, not waiting for approval' })
    expect((await findOrder()).state).toBe('rejected')
  })
})
