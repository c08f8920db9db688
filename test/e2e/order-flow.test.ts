/**
 * The walking skeleton end to end, through the real HTTP API, on PGlite and on PostgreSQL:
 * a signed CRM webhook in, a sales order in the demo ERP out, status readable by anyone with a key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { engines } from '../support/test-database.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

describe.each(engines)('an order from the CRM to the ERP (%s)', (engine) => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack(engine)
  })
  afterAll(() => stack?.close())

  const findOrder = async (externalId: string) => {
    const { body } = await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)
    return body.orders[0]
  }
  const syncedOrder = (externalId: string, version = 1) =>
    stack.waitFor(async () => {
      const order = await findOrder(externalId)
      return order?.links[0]?.status === 'synced' && order.links[0].lastSyncedVersion >= version && order
    }, `${externalId} v${version} synced`)

  it('creates the sales order in the ERP and shows the link, the state and the changes', async () => {
    const { body: before } = await stack.api('/api/v1/changes?limit=1')
    const order = sampleOrder(1, 'SO-1001')
    const answer = await stack.crm.send('order.created', order)
    expect(answer.status).toBe(202)
    expect(answer.body).toEqual({ eventId: expect.any(String), status: 'accepted' })

    const synced = await syncedOrder('SO-1001')
    expect(synced).toMatchObject({ connection: 'demo-crm', externalId: 'SO-1001', state: 'pending_shipment', version: 1, currency: 'CNY' })
    const erpOrders = stack.erp.salesOrders().filter((o) => o.reference === synced.id)
    expect(erpOrders).toHaveLength(1)
    expect(synced.links).toEqual([
      expect.objectContaining({ connection: 'demo-erp', externalId: erpOrders[0]!.id, status: 'synced', lastSyncedVersion: 1, lastError: null }),
    ])
    // The totals are exact decimals computed from the lines, and reach the ERP as sent.
    const expectedTotal = order.items.reduce((sum, i) => sum + Number(i.qty) * Math.round(Number(i.price) * 100), 0)
    expect(synced.total).toBe((expectedTotal / 100).toFixed(2))
    expect(erpOrders[0]).toMatchObject({ customerCode: order.account.id, currency: 'CNY', total: synced.total })
    expect(stack.erp.requests().find((r) => r.method === 'POST')?.idempotencyKey).toBe(`${synced.id}-demo-erp-salesOrders.upsert-v1`)

    const { body: detail } = await stack.api(`/api/v1/orders/${synced.id}`)
    expect(detail.timeline.map((t: { kind: string; toState: string | null }) => `${t.kind}:${t.toState ?? ''}`)).toEqual([
      'received:received',
      'transition:approved',
      'transition:pending_shipment',
    ])
    const { body: feed } = await stack.api(`/api/v1/changes?after=${before.head}&limit=100`)
    const ours = feed.changes.filter((c: { orderId: string }) => c.orderId === synced.id).map((c: { type: string }) => c.type)
    expect(ours).toEqual(['order.created', 'order.state_changed', 'sync.succeeded', 'order.state_changed'])
    const seqs = feed.changes.map((c: { seq: number }) => c.seq)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
    expect(feed.next).toBe(seqs.at(-1))

    const { body: event } = await stack.api(`/api/v1/events/${(answer.body as { eventId: string }).eventId}`)
    expect(event).toMatchObject({ status: 'processed', orderId: synced.id, externalId: 'SO-1001', type: 'order.created' })
  })

  it('answers a redelivery with the first answer and does nothing twice', async () => {
    const order = sampleOrder(2, 'SO-1002')
    const first = await stack.crm.send('order.created', order, 'msg_duplicate_1')
    const again = await stack.crm.send('order.created', order, 'msg_duplicate_1')
    expect(first.status).toBe(202)
    expect(again.status).toBe(200)
    expect(again.body).toEqual({ eventId: (first.body as { eventId: string }).eventId, status: 'duplicate' })
    const synced = await syncedOrder('SO-1002')
    expect(stack.erp.salesOrders().filter((o) => o.reference === synced.id)).toHaveLength(1)
  })

  it('applies a newer version as an update and skips an older one, saying why', async () => {
    const v1 = sampleOrder(3, 'SO-1003')
    await stack.crm.send('order.created', v1)
    const first = await syncedOrder('SO-1003')
    const v2 = { ...v1, version: 2, items: [...v1.items, { product_code: 'SKU-200', qty: 3, price: '10.10' }] }
    await stack.crm.send('order.updated', v2)
    const updated = await syncedOrder('SO-1003', 2)
    expect(updated.document.lines).toHaveLength(v2.items.length)
    const erpOrder = stack.erp.salesOrders().find((o) => o.reference === first.id)!
    expect(erpOrder.lines).toHaveLength(v2.items.length)
    expect(stack.erp.salesOrders().filter((o) => o.reference === first.id)).toHaveLength(1)

    const stale = await stack.crm.send('order.updated', v1)
    const eventId = (stale.body as { eventId: string }).eventId
    const event = await stack.waitFor(async () => {
      const { body } = await stack.api(`/api/v1/events/${eventId}`)
      return body.status !== 'pending' && body
    }, 'the stale event to be handled')
    expect(event).toMatchObject({ status: 'stale', errors: ['older than version 2'] })
    const { body: detail } = await stack.api(`/api/v1/orders/${first.id}`)
    expect(detail.version).toBe(2)
    expect(detail.timeline.at(-1)).toMatchObject({ kind: 'stale_skipped', detail: { reason: 'older than version 2', sourceVersion: 1 } })
  })

  it('creates one sales order when the ERP commits but the answer is lost', async () => {
    stack.erp.faults.commitThenDrop(1)
    await stack.crm.send('order.created', sampleOrder(4, 'SO-1004'))
    const synced = await syncedOrder('SO-1004')
    expect(stack.erp.salesOrders().filter((o) => o.reference === synced.id)).toHaveLength(1)
    expect(synced.links[0].externalId).toBe(stack.erp.salesOrders().find((o) => o.reference === synced.id)!.id)
  })

  it('retries when the ERP is briefly unavailable', async () => {
    stack.erp.faults.failNext(2, 503)
    await stack.crm.send('order.created', sampleOrder(5, 'SO-1005'))
    const synced = await syncedOrder('SO-1005')
    expect(stack.erp.salesOrders().filter((o) => o.reference === synced.id)).toHaveLength(1)
  })

  it('stops at "needs attention" when the ERP refuses the document, without retrying', async () => {
    stack.erp.faults.failNext(1, 422)
    await stack.crm.send('order.created', sampleOrder(6, 'SO-1006'))
    const order = await stack.waitFor(async () => {
      const o = await findOrder('SO-1006')
      return o?.links[0]?.status === 'needs_attention' && o
    }, 'SO-1006 to need attention')
    expect(order.links[0].lastError).toEqual({ kind: 'data', message: 'remote answered HTTP 422', httpStatus: 422 })
    expect(order.state).toBe('approved')
  })

  it('waits out Retry-After without using attempts', async () => {
    // More 503s than the job has attempts (8): only waiting that uses none of them gets through.
    stack.erp.faults.failNext(10, 503, { 'retry-after': '0' })
    await stack.crm.send('order.created', sampleOrder(8, 'SO-1008'))
    const synced = await syncedOrder('SO-1008')
    expect(stack.erp.salesOrders().filter((o) => o.reference === synced.id)).toHaveLength(1)
  })

  it('cancels the sales order in the ERP when the CRM cancels the order', async () => {
    const order = sampleOrder(9, 'SO-1009')
    await stack.crm.send('order.created', order)
    const synced = await syncedOrder('SO-1009')
    await stack.crm.send('order.cancelled', { ...order, version: 2 })
    const cancelled = await stack.waitFor(async () => {
      const o = await findOrder('SO-1009')
      return o?.links[0]?.status === 'cancelled' && o
    }, 'SO-1009 cancelled in the ERP')
    expect(cancelled.state).toBe('cancelled')
    const erpOrders = stack.erp.salesOrders().filter((o) => o.reference === synced.id)
    expect(erpOrders).toHaveLength(1)
    expect(erpOrders[0]).toMatchObject({ status: 'cancelled' })
  })

  it('creates nothing in the ERP for an order cancelled before it was sent', async () => {
    stack.erp.faults.delayMs(300)
    const order = sampleOrder(10, 'SO-1010')
    await stack.crm.send('order.created', order)
    await stack.crm.send('order.cancelled', { ...order, version: 2 })
    stack.erp.faults.reset()
    const settled = await stack.waitFor(async () => {
      const o = await findOrder('SO-1010')
      return o?.state === 'cancelled' && ['cancelled'].includes(o.links[0]?.status) && o
    }, 'SO-1010 settled')
    // Whichever ran first, the ERP ends with no live sales order for it.
    const live = stack.erp.salesOrders().filter((o) => o.reference === settled.id && o.status !== 'cancelled')
    expect(live).toEqual([])
  })

  it('finishes the order after a restart that happened before the worker ran', async () => {
    await stack.stop()
    await stack.start('api')
    const answer = await stack.crm.send('order.created', sampleOrder(7, 'SO-1007'))
    expect(answer.status).toBe(202)
    await stack.stop() // the process goes away with the job still queued
    await stack.start('all')
    const synced = await syncedOrder('SO-1007')
    expect(stack.erp.salesOrders().filter((o) => o.reference === synced.id)).toHaveLength(1)
  })
})
