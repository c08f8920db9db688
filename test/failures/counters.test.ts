/**
 * The counters after a mixed run, on PostgreSQL: every number is the count of rows that record the
 * thing, so they add up to what was sent. Also as Prometheus text on /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDemoCrmSender, sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'
import { quickRetries } from './quick-retries.ts'

describe('counters after a mixed run (postgres)', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('postgres', { configure: quickRetries })
  })
  afterAll(() => stack?.close())

  const findOrder = async (externalId: string) => (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]
  /** Waits for the order's ERP sales-order link (its other links are the stock reservation and the CRM status). */
  const linkIn = (externalId: string, status: string, syncedVersion = 1) =>
    stack.waitFor(async () => {
      const order = await findOrder(externalId)
      const link = order?.links.find((l: { operation: string }) => l.operation === 'salesOrders.upsert')
      return link?.status === status && (status !== 'synced' || link.lastSyncedVersion >= syncedVersion) && order
    }, `${externalId} ${status}`)

  it('counts accepted, duplicate, rejected, stale, synced, dead, needs attention and replayed from the database', async () => {
    const a = sampleOrder(61, 'SO-6001')
    expect((await stack.crm.send('order.created', a, 'msg_a')).status).toBe(202)
    await linkIn('SO-6001', 'synced')
    expect((await stack.crm.send('order.created', a, 'msg_a')).status).toBe(200) // a redelivery
    // Three deliveries of one event at once: one row, two duplicates, whichever batch they land in.
    const e = await Promise.all([1, 2, 3].map(() => stack.crm.send('order.created', sampleOrder(65, 'SO-6005'), 'msg_e')))
    expect(e.map((r) => r.status).sort()).toEqual([200, 200, 202])
    await linkIn('SO-6005', 'synced')

    const forger = createDemoCrmSender({ webhookUrl: `${stack.url}/webhooks/demo-crm`, secret: 'whsec_bm90IHRoZSByaWdodCBzZWNyZXQ=', retries: 0 })
    for (let i = 0; i < 2; i++) expect((await forger.send('order.created', sampleOrder(69, 'SO-6009'))).status).toBe(401)

    const b = sampleOrder(62, 'SO-6002')
    await stack.crm.send('order.created', b)
    await stack.crm.send('order.updated', { ...b, version: 2 })
    await linkIn('SO-6002', 'synced', 2)
    await stack.crm.send('order.updated', b) // version 1 again, as a new event: stale

    stack.erp.faults.failNext(5, 503)
    await stack.crm.send('order.created', sampleOrder(63, 'SO-6003'))
    const c = await linkIn('SO-6003', 'dead')
    stack.erp.faults.reset()
    const deadCounts = await stack.api('/api/v1/stats?connection=demo-erp')
    expect(deadCounts.body).toMatchObject({ dead: 1, synced: 3, failed: 0 })
    expect((await stack.api(`/api/v1/failures/link:${c.id}:demo-erp:salesOrders.upsert/replay`, { method: 'POST', body: {} })).status).toBe(202)
    await linkIn('SO-6003', 'synced')

    stack.erp.faults.failNext(1, 422)
    await stack.crm.send('order.created', sampleOrder(64, 'SO-6004'))
    await linkIn('SO-6004', 'needs_attention')

    // The WMS tells orderbridge of every stock change, as signed deliveries of its own: one
    // stock.changed per reservation made. They are counted like any delivery, at the WMS.
    await stack.wms.flushWebhooks()
    const fromWms = stack.wms.deliveries()
    expect(fromWms.map((d) => [d.body.type, d.status])).toEqual(Array.from({ length: 5 }, () => ['stock.changed', 'delivered']))

    // Every event handled, and every step it asked for done: the status write-backs to the CRM too.
    let seen: unknown
    const stats = await stack.waitFor(
      async () => {
        const { body } = await stack.api('/api/v1/stats')
        const { orders } = (await stack.api('/api/v1/orders?limit=50')).body
        seen = { stats: body, links: orders.map((o: any) => [o.externalId, o.links.map((l: any) => `${l.operation} ${l.status} v${l.lastSyncedVersion}`)]) }
        return body.inbox.pending === 0 && body.staleSkipped === 1 && body.links.pending === 0 && body.links.synced === 14 && body
      },
      () => `every event handled and every step done; last seen ${JSON.stringify(seen)}`,
    )
    // Sync outcomes are links, one per order and target, each counted at its target: five orders
    // (A, E, B, C, D) have five stock reservations in the WMS, four sales orders in the ERP (D's
    // needs attention) and five statuses written back to the CRM. The totals add the connections up.
    expect(stats).toEqual({
      since: null,
      connection: null,
      // From the CRM A, E, B v1, B v2, B v1 again, C, D, and the WMS's five: one row per distinct event
      accepted: 12,
      duplicate: 3,
      rejected: 2,
      synced: 14,
      failed: 0,
      dead: 0,
      needsAttention: 1,
      replayed: 1,
      staleSkipped: 1,
      cancelled: 0,
      onHold: 0,
      links: { pending: 0, retrying: 0, held: 0, synced: 14, dead: 0, needs_attention: 1, resolved: 0, cancelled: 0 },
      inbox: { pending: 0, processed: 11, stale: 1, needs_attention: 0, dismissed: 0 },
    })
    // The CRM is the source of the deliveries and the target of the status write-backs.
    const crm = (await stack.api('/api/v1/stats?connection=demo-crm')).body
    expect(crm).toMatchObject({ connection: 'demo-crm', accepted: 7, duplicate: 3, rejected: 2, staleSkipped: 1, synced: 5, needsAttention: 0, replayed: 0 })
    const wms = (await stack.api('/api/v1/stats?connection=demo-wms')).body
    expect(wms).toMatchObject({ connection: 'demo-wms', accepted: 5, duplicate: 0, rejected: 0, synced: 5, needsAttention: 0, dead: 0, replayed: 0 })
    expect(wms.inbox).toMatchObject({ pending: 0, processed: 5 })
    // The ERP's own counters are its sales orders only.
    const erp = (await stack.api('/api/v1/stats?connection=demo-erp')).body
    expect(erp).toMatchObject({ accepted: 0, synced: 4, needsAttention: 1, replayed: 1 })
    expect(crm.synced + wms.synced + erp.synced).toBe(stats.synced)
    expect(crm.accepted + wms.accepted + erp.accepted).toBe(stats.accepted)
    const later = (await stack.api(`/api/v1/stats?since=${new Date(Date.now() + 3_600_000).toISOString()}`)).body
    expect(later).toMatchObject({ accepted: 0, duplicate: 0, rejected: 0, synced: 0, replayed: 0 })
    expect((await stack.api('/api/v1/stats?since=yesterday')).status).toBe(400)
  })

  it('serves the same counters and the queue depths as Prometheus text, to a key', async () => {
    const response = await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${testCredentials.adminKey}` } })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    const lines = text.split('\n')
    for (const line of [
      'orderbridge_accepted{connection="demo-crm"} 7',
      'orderbridge_accepted{connection="demo-wms"} 5',
      'orderbridge_duplicate{connection="demo-crm"} 3',
      'orderbridge_rejected{connection="demo-crm"} 2',
      'orderbridge_stale_skipped{connection="demo-crm"} 1',
      'orderbridge_synced{connection="demo-erp"} 4',
      'orderbridge_synced{connection="demo-wms"} 5',
      'orderbridge_synced{connection="demo-crm"} 5',
      'orderbridge_needs_attention{connection="demo-erp"} 1',
      'orderbridge_dead{connection="demo-erp"} 0',
      'orderbridge_replayed{connection="demo-erp"} 1',
      'orderbridge_links{connection="demo-erp",status="synced"} 4',
      '# TYPE orderbridge_accepted gauge',
      'orderbridge_queue_up 1',
    ]) {
      expect(lines).toContain(line)
    }
    for (const queue of ['ingest', 'sync-demo-erp', 'sync-demo-wms', 'sync-demo-crm']) {
      for (const state of ['waiting', 'active', 'delayed', 'failed']) expect(text).toMatch(new RegExp(`^orderbridge_queue_jobs\\{queue="${queue}",state="${state}"\\} \\d+$`, 'm'))
    }
    // The 422 left one failed job in the sync queue (the link needs attention).
    expect(lines).toContain('orderbridge_queue_jobs{queue="sync-demo-erp",state="failed"} 1')
  })
})
