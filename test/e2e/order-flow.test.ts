/**
 * The walking skeleton end to end, through the real HTTP API, on PGlite and on PostgreSQL:
 * a signed CRM webhook in, stock reserved in the demo WMS, a sales order in the demo ERP out, the
 * status written back to the demo CRM and readable by anyone with a key.
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
  // An order has a link per step (stock reservation, ERP sales order, CRM status): pick by operation.
  type Link = { connection: string; operation: string; externalId: string | null; status: string; lastSyncedVersion: number | null; lastError: unknown }
  const linkOf = (order: { links: Link[] } | undefined, operation: string): Link | undefined => order?.links.find((l) => l.operation === operation)
  const erpLink = (order: { links: Link[] } | undefined) => linkOf(order, 'salesOrders.upsert')
  const reserveLink = (order: { links: Link[] } | undefined) => linkOf(order, 'inventory.reserve')
  const statusLink = (order: { links: Link[] } | undefined) => linkOf(order, 'crm.status')
  const syncedOrder = (externalId: string, version = 1) =>
    stack.waitFor(async () => {
      const order = await findOrder(externalId)
      const link = erpLink(order)
      return link?.status === 'synced' && link.lastSyncedVersion! >= version && order
    }, `${externalId} v${version} synced`)
  /** Synced to the ERP, and the CRM told of the order's latest revision. */
  const settledOrder = (externalId: string, version = 1) =>
    stack.waitFor(async () => {
      const order = await findOrder(externalId)
      const erp = erpLink(order)
      const status = statusLink(order)
      // `synced` (not `pending`): every status change asked for so far has been written back.
      return erp?.status === 'synced' && erp.lastSyncedVersion! >= version && order.state === 'pending_shipment' && status?.status === 'synced' && order
    }, `${externalId} v${version} synced and its status written back`)

  it('creates the sales order in the ERP and shows the link, the state and the changes', async () => {
    const { body: before } = await stack.api('/api/v1/changes?limit=1')
    const order = sampleOrder(1, 'SO-1001')
    const answer = await stack.crm.send('order.created', order)
    expect(answer.status).toBe(202)
    expect(answer.body).toEqual({ eventId: expect.any(String), status: 'accepted' })

    const synced = await settledOrder('SO-1001')
    expect(synced).toMatchObject({ connection: 'demo-crm', externalId: 'SO-1001', state: 'pending_shipment', version: 1, currency: 'CNY' })
    const erpOrders = stack.erp.salesOrders().filter((o) => o.reference === synced.id)
    expect(erpOrders).toHaveLength(1)
    const reservations = stack.wms.reservations().filter((r) => r.reference === synced.id)
    expect(reservations).toHaveLength(1)
    expect(reservations[0]).toMatchObject({ status: 'active', lines: order.items.map((i) => expect.objectContaining({ sku: i.product_code, quantity: i.qty, reserved: i.qty })) })
    // One link per step: the stock reserved in the WMS, the sales order in the ERP, the status in the CRM.
    expect(synced.links).toHaveLength(3)
    expect(reserveLink(synced)).toMatchObject({ connection: 'demo-wms', externalId: reservations[0]!.id, status: 'synced', lastSyncedVersion: 1, lastError: null })
    expect(erpLink(synced)).toMatchObject({ connection: 'demo-erp', externalId: erpOrders[0]!.id, status: 'synced', lastSyncedVersion: 1, lastError: null })
    // The CRM link names the CRM's own order and follows the order's revision, not its source version.
    expect(statusLink(synced)).toMatchObject({ connection: 'demo-crm', externalId: 'SO-1001', status: 'synced', lastSyncedVersion: synced.revision, lastError: null })
    // The totals are exact decimals computed from the lines, and reach the ERP as sent.
    const expectedTotal = order.items.reduce((sum, i) => sum + Number(i.qty) * Math.round(Number(i.price) * 100), 0)
    expect(synced.total).toBe((expectedTotal / 100).toFixed(2))
    expect(erpOrders[0]).toMatchObject({ customerCode: order.account.id, currency: 'CNY', total: synced.total })
    expect(stack.erp.requests().find((r) => r.method === 'POST')?.idempotencyKey).toBe(`${synced.id}-demo-erp-salesOrders.upsert-v1`)
    // The CRM ends up with the order's latest status and the ERP's order number.
    const crmStatus = stack.crmSimulator.statuses().find((s) => s.orderId === 'SO-1001')
    expect(crmStatus?.current).toMatchObject({ status: 'pending_shipment', erp_order_no: erpOrders[0]!.id })

    const { body: detail } = await stack.api(`/api/v1/orders/${synced.id}`)
    type Entry = { kind: string; toState: string | null; cause: string }
    expect(detail.timeline.filter((t: Entry) => t.kind !== 'external_call').map((t: Entry) => `${t.kind}:${t.toState ?? ''}`)).toEqual([
      'received:received',
      'transition:approved',
      'transition:reserved',
      'transition:pending_shipment',
    ])
    // Each status written back to the CRM is on the timeline as a call to it.
    const writebacks = detail.timeline.filter((t: Entry) => t.kind === 'external_call' && t.cause.startsWith('demo-crm: status'))
    expect(writebacks.length).toBeGreaterThanOrEqual(1)
    expect(writebacks.at(-1).cause).toBe('demo-crm: status pending_shipment written back')

    // Paged with `next` (the cursor is a position, not a count), the feed holds the order's changes
    // in the order they happened, each once, and ends where one large page ends.
    const expected = ['order.created', 'order.state_changed', 'sync.succeeded', 'order.state_changed', 'sync.succeeded', 'order.state_changed']
    const ours = (changes: { orderId: string; type: string }[]) => changes.filter((c) => c.orderId === synced.id).map((c) => c.type)
    const feed = await stack.waitFor(async () => {
      const { body } = await stack.api(`/api/v1/changes?after=${before.head}&limit=1000`)
      return ours(body.changes).length >= expected.length && body
    }, 'the order’s changes in the feed')
    expect(ours(feed.changes)).toEqual(expected)
    expect(feed.next).toBe(feed.changes.at(-1).seq)
    const paged: { seq: number; orderId: string; type: string }[] = []
    let cursor = before.head
    for (;;) {
      const { body: page } = await stack.api(`/api/v1/changes?after=${cursor}&limit=2`)
      if (!page.changes.length) {
        expect(page.next).toBe(cursor)
        break
      }
      expect(page.next).toBe(page.changes.at(-1).seq)
      paged.push(...page.changes)
      cursor = page.next
      if (paged.length >= feed.changes.length) break
    }
    // Later changes only ever follow: the pages start with exactly what the one large page held.
    expect(new Set(paged.map((c) => c.seq)).size).toBe(paged.length)
    expect(paged.slice(0, feed.changes.length).map((c) => c.seq)).toEqual(feed.changes.map((c: { seq: number }) => c.seq))
    expect(ours(paged)).toEqual(expected)

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
    // A line of a SKU the WMS stocks: the reservation follows the new version, then the ERP order.
    const v2 = { ...v1, version: 2, items: [...v1.items, { product_code: 'SKU-109', qty: 3, price: '10.10' }] }
    await stack.crm.send('order.updated', v2)
    const updated = await settledOrder('SO-1003', 2)
    expect(updated.document.lines).toHaveLength(v2.items.length)
    expect(reserveLink(updated)).toMatchObject({ status: 'synced', lastSyncedVersion: 2 })
    const reservations = stack.wms.reservations().filter((r) => r.reference === first.id)
    expect(reservations).toHaveLength(1)
    expect(reservations[0]!.lines).toHaveLength(v2.items.length)
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
    expect(erpLink(synced)!.externalId).toBe(stack.erp.salesOrders().find((o) => o.reference === synced.id)!.id)
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
      return erpLink(o)?.status === 'needs_attention' && o
    }, 'SO-1006 to need attention')
    expect(erpLink(order)!.lastError).toEqual({ kind: 'data', message: 'remote answered HTTP 422', httpStatus: 422 })
    // The stock was reserved; the order waits there for someone to fix the document.
    expect(order.state).toBe('reserved')
    expect(reserveLink(order)).toMatchObject({ status: 'synced' })
    expect(stack.erp.requests().filter((r) => r.method === 'POST' && r.idempotencyKey?.startsWith(order.id))).toHaveLength(1)
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
      return erpLink(o)?.status === 'cancelled' && reserveLink(o)?.status === 'cancelled' && o
    }, 'SO-1009 cancelled in the ERP and its stock released')
    expect(cancelled.state).toBe('cancelled')
    const erpOrders = stack.erp.salesOrders().filter((o) => o.reference === synced.id)
    expect(erpOrders).toHaveLength(1)
    expect(erpOrders[0]).toMatchObject({ status: 'cancelled' })
    const reservations = stack.wms.reservations().filter((r) => r.reference === synced.id)
    expect(reservations).toHaveLength(1)
    expect(reservations[0]).toMatchObject({ id: reserveLink(cancelled)!.externalId, status: 'released' })
    // And the CRM hears that the order is cancelled.
    await stack.waitFor(async () => stack.crmSimulator.statuses().find((s) => s.orderId === 'SO-1009')?.current.status === 'cancelled', 'SO-1009 cancelled in the CRM')
  })

  it('creates nothing in the ERP for an order cancelled before it was sent', async () => {
    stack.erp.faults.delayMs(300)
    const order = sampleOrder(10, 'SO-1010')
    await stack.crm.send('order.created', order)
    await stack.crm.send('order.cancelled', { ...order, version: 2 })
    stack.erp.faults.reset()
    let seen: unknown
    const settled = await stack.waitFor(
      async () => {
        const o = await findOrder('SO-1010')
        seen = o && { state: o.state, links: o.links }
        // Cancelled before a step was asked for, the order may have no ERP link, or no reservation
        // either: the cancellation can even be applied first, when the two deliveries are handled
        // by different jobs at once, and the creation is then stale.
        const [erp, reserve] = [erpLink(o), reserveLink(o)]
        return o?.state === 'cancelled' && (!reserve || reserve.status === 'cancelled') && (!erp || erp.status === 'cancelled') && o
      },
      () => `SO-1010 settled; last seen ${JSON.stringify(seen)}`,
    )
    // Whichever ran first, the ERP ends with no live sales order for it, and the WMS holds no stock for it.
    const live = stack.erp.salesOrders().filter((o) => o.reference === settled.id && o.status !== 'cancelled')
    expect(live).toEqual([])
    expect(stack.wms.reservations().filter((r) => r.reference === settled.id && r.status === 'active')).toEqual([])
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
