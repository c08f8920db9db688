/**
 * The credit check when the ERP is slow or away, through the real HTTP API: unreachable, the check
 * retries while the order waits for a finance approver, is never approved automatically, and a
 * finance approver can still approve it; an answer that comes after finance decided records nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

type TimelineEntry = { kind: string; toState: string | null; cause: string; detail: Record<string, unknown> | null }

describe('the credit check when the ERP is away or slow', () => {
  let stack: TestStack
  let financeKey: string

  beforeAll(async () => {
    stack = await startTestStack('postgres', {
      configure: (config) => ({ ...config, approval: { rules: [{ id: 'finance-for-all', when: {}, require: ['finance'] }] } as never }),
      // Well within the limit: a check that answers in time approves on its own.
      erp: { credit: { default: { limit: '500000.00', currency: 'CNY' } } as never },
    })
    const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'finance', role: 'approver', level: 'finance' } })
    financeKey = created.body.key
  })
  afterEach(() => stack.erp.faults.reset())
  afterAll(() => stack?.close())

  /** Sends the order and answers its id once it waits for approval. */
  async function waitingOrder(externalId: string): Promise<string> {
    await stack.crm.send('order.created', { ...sampleOrder(31, externalId), items: [{ product_code: 'SKU-100', qty: 1, price: '100.00' }] })
    return stack.waitFor(async () => {
      const found = (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]
      return found?.state === 'pending_approval' ? (found.id as string) : undefined
    }, `${externalId} waiting for approval`)
  }
  const timeline = async (orderId: string): Promise<TimelineEntry[]> => (await stack.api(`/api/v1/orders/${orderId}/timeline`)).body.timeline
  const creditChecks = (entries: TimelineEntry[], outcome: string) => entries.filter((t) => t.kind === 'external_call' && t.detail?.operation === 'credit.check' && t.detail.outcome === outcome)

  it('leaves the order waiting for a finance approver while the ERP cannot be reached, and the approver can still approve it', async () => {
    stack.erp.faults.creditUnavailable(503)
    const orderId = await waitingOrder('CREDIT-DOWN')

    // Asked, refused, and asked again: the check retries.
    const seen = await stack.waitFor(async () => {
      const entries = await timeline(orderId)
      return creditChecks(entries, 'failed').length >= 2 ? entries : undefined
    }, 'two failed credit checks')
    expect(creditChecks(seen, 'failed')[0]!.detail).toMatchObject({ connection: 'demo-erp', failureKind: 'transient' })

    const { body: waiting } = await stack.api(`/api/v1/orders/${orderId}`)
    expect(waiting.state).toBe('pending_approval')
    expect(waiting.timeline.filter((t: TimelineEntry) => t.kind === 'approval' || t.kind === 'credit_checked')).toEqual([])
    const forFinance = (await stack.api('/api/v1/approvals?pending=true', { key: financeKey })).body.approvals
    expect(forFinance).toEqual([expect.objectContaining({ orderId, level: 'finance', credit: null, approvals: [{ level: 'finance', status: 'pending', decidedBy: null, automatic: false }] })])

    const decided = await stack.api(`/api/v1/orders/${orderId}/approval`, { method: 'POST', key: financeKey, body: { decision: 'approve', comment: 'known customer; ERP down' } })
    expect(decided).toMatchObject({ status: 200, body: { level: 'finance', state: 'approved' } })
    await stack.waitFor(async () => (await stack.api(`/api/v1/orders/${orderId}`)).body.state === 'pending_shipment', 'CREDIT-DOWN on its way')
    expect((await timeline(orderId)).filter((t) => t.kind === 'approval')).toEqual([
      expect.objectContaining({ cause: 'approver key finance', detail: { level: 'finance', decision: 'approve', automatic: false, comment: 'known customer; ERP down' } }),
    ])
  })

  it('records nothing of an answer that comes after finance rejected the order', async () => {
    stack.erp.faults.delayMs(1_500)
    const orderId = await waitingOrder('CREDIT-LATE')
    const rejected = await stack.api(`/api/v1/orders/${orderId}/approval`, { method: 'POST', key: financeKey, body: { decision: 'reject', comment: 'not this one' } })
    expect(rejected).toMatchObject({ status: 200, body: { state: 'rejected' } })

    // The answer, within the limit, arrives after the rejection.
    const entries = await stack.waitFor(async () => {
      const all = await timeline(orderId)
      return creditChecks(all, 'succeeded').length ? all : undefined
    }, 'the late credit check')
    expect(entries.filter((t) => t.kind === 'approval' || t.kind === 'credit_checked')).toEqual([
      expect.objectContaining({ kind: 'approval', detail: { level: 'finance', decision: 'reject', comment: 'not this one' } }),
    ])
    expect((await stack.api(`/api/v1/orders/${orderId}`)).body.state).toBe('rejected')
  })
})
