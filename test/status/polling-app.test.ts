/**
 * An ERP that pulls, against the whole app (PGlite, real workers and simulators, real keys): it
 * long-polls the change feed and is woken by the order's arrival, lists the orders linked to it,
 * acknowledges one (idempotently, visible in the timeline and in its feed), the reports see the
 * same orders, and a long-poll in flight ends at once when the app shuts down.
 */
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

/** A long-poll on its own connection; resolves with the status, the body and when it arrived. */
function longPoll(url: string, key: string): Promise<{ status: number; body: any; at: number }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { authorization: `Bearer ${key}` }, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined, at: performance.now() }))
      })
      .on('error', reject)
  })
}

describe('an ERP that pulls orders (pglite)', () => {
  let stack: TestStack
  let erpKey: string
  const adminKey = testCredentials.adminKey
  let orderId: string
  beforeAll(async () => {
    stack = await startTestStack('pglite')
    const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'erp-poller', role: 'integration', connection: 'demo-erp' } })
    expect(created.status).toBe(201)
    erpKey = created.body.key
  }, 90_000)
  afterAll(() => stack?.close())

  it('is woken by the order, lists it, and acknowledges it once', { timeout: 60_000 }, async () => {
    const head = (await stack.api('/api/v1/changes?limit=1')).body.head as number
    const waiting = longPoll(`${stack.url}/api/v1/changes?after=${head}&type=order.created&wait=25`, adminKey)
    const sent = performance.now()
    expect((await stack.crm.send('order.created', sampleOrder(7, 'SO-PULL-1'))).status).toBe(202)
    const woken = await waiting
    expect(woken.status).toBe(200)
    expect(woken.body.changes.map((c: { type: string }) => c.type)).toEqual(['order.created'])
    expect(woken.at - sent).toBeLessThan(10_000)
    orderId = woken.body.changes[0].orderId

    // Once the sales order is in the ERP, the order is linked to it and its key sees it.
    const listed = await stack.waitFor(async () => {
      const page = await stack.api('/api/v1/orders?state=pending_shipment,reserved,approved&customer=ACC-12', { key: erpKey })
      return page.body.orders.find((o: { id: string; links: { connection: string; status: string }[] }) => o.id === orderId && o.links.some((l) => l.connection === 'demo-erp' && l.status === 'synced'))
    }, 'the order synced to the ERP and listed for its key')
    expect(listed.externalId).toBe('SO-PULL-1')

    const feedHead = (await stack.api('/api/v1/changes?limit=1', { key: erpKey })).body.next as number
    const first = await stack.api(`/api/v1/orders/${orderId}/ack`, { method: 'POST', body: { reference: 'ERP-SO-1' }, key: erpKey })
    expect(first).toMatchObject({ status: 201, body: { orderId, connection: 'demo-erp', reference: 'ERP-SO-1', by: 'integration key erp-poller' } })
    const again = await stack.api(`/api/v1/orders/${orderId}/ack`, { method: 'POST', body: { reference: 'ERP-SO-2' }, key: erpKey })
    expect([again.status, again.body.acknowledgedAt, again.body.reference]).toEqual([200, first.body.acknowledgedAt, 'ERP-SO-1'])
    const refused = await stack.api(`/api/v1/orders/${orderId}/ack`, { method: 'POST', body: { connection: 'demo-wms' }, key: erpKey })
    expect(refused.status).toBe(403)

    const timeline = (await stack.api(`/api/v1/orders/${orderId}/timeline`, { key: erpKey })).body.timeline
    expect(timeline.filter((e: { kind: string }) => e.kind === 'acknowledged')).toHaveLength(1)
    const feed = await stack.api(`/api/v1/changes?after=${feedHead}&type=order.acknowledged`, { key: erpKey })
    expect(feed.body.changes).toEqual([expect.objectContaining({ orderId, connectionId: 'demo-erp', type: 'order.acknowledged' })])
  })

  it('reports the order and the ERP calls made for it', async () => {
    const today = new Date().toISOString().slice(0, 10)
    const orders = await stack.api(`/api/v1/reports/orders?groupBy=connection&from=${today}&to=${today}`)
    const order = (await stack.api(`/api/v1/orders/${orderId}`)).body
    expect(orders.body.groups).toEqual([expect.objectContaining({ group: 'demo-crm', currency: 'CNY', orders: 1, total: order.total, toSynced: expect.objectContaining({ count: 1 }) })])
    const sync = await stack.api(`/api/v1/reports/sync?from=${today}&to=${today}`)
    expect(sync.body.rows).toContainEqual(expect.objectContaining({ connection: 'demo-erp', operation: 'salesOrders.upsert', successRate: 1 }))
  })

  it('ends a waiting long-poll at once when the app shuts down', { timeout: 60_000 }, async () => {
    const head = (await stack.api('/api/v1/changes?limit=1')).body.head as number
    const waiting = longPoll(`${stack.url}/api/v1/changes?after=${head}&type=order.created&wait=30`, adminKey)
    await new Promise((r) => setTimeout(r, 500))
    const stopping = performance.now()
    const stopped = stack.stop()
    const answer = await waiting
    expect([answer.status, answer.body.changes, answer.body.next]).toEqual([200, [], head])
    expect(answer.at - stopping).toBeLessThan(2000)
    await stopped
  })
})
