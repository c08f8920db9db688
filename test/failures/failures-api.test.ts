/**
 * Dead letters and needs-attention items through real HTTP: listed with their kind, replayed one at
 * a time (with an edited outbound document) or in bulk after a dry run, resolved with a reason;
 * an inbox event that cannot be mapped is listed and replayed too. And who may do what.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import type { DemoCrmOrder } from '../../connectors/demo-crm/index.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'
import { quickRetries } from './quick-retries.ts'

const inbound = 'demo-crm.to-canonical.order'
const outbound = 'canonical.to-demo-erp.sales-order'

interface Failure {
  id: string
  type: 'link' | 'event'
  status: string
  kind: string
  [k: string]: unknown
}

describe('failures through the API (pglite)', () => {
  let stack: TestStack
  const keys: Record<string, string> = {}
  beforeAll(async () => {
    stack = await startTestStack('pglite', { configure: quickRetries })
    for (const role of ['viewer', 'ops'] as const) keys[role] = (await stack.api('/api/v1/keys', { method: 'POST', body: { name: `${role} key`, role } })).body.key
  })
  afterAll(() => stack?.close())

  const findOrder = async (externalId: string) => (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]
  /** The order's ERP sales-order link (its other links are the stock reservation and the CRM status). */
  const erpLink = (order: { links: { operation: string; status: string; lastSyncedVersion: number | null; externalId: string | null }[] } | undefined) =>
    order?.links.find((l) => l.operation === 'salesOrders.upsert')
  const linkIn = (externalId: string, status: string, syncedVersion?: number) =>
    stack.waitFor(async () => {
      const order = await findOrder(externalId)
      const link = erpLink(order)
      return link?.status === status && (syncedVersion === undefined || link.lastSyncedVersion! >= syncedVersion) && order
    }, `${externalId} ${status}`)
  const failures = async (query = ''): Promise<Failure[]> => {
    const { status, body } = await stack.api(`/api/v1/failures${query}`)
    expect(status).toBe(200)
    return body.failures
  }
  const linkId = (order: { id: string }) => `link:${order.id}:demo-erp:salesOrders.upsert`
  const erpOrdersFor = (orderId: string) => stack.erp.salesOrders().filter((o) => o.reference === orderId)

  it('lists a document the ERP refused as kind data, and replays it with an edited document the ERP accepts', async () => {
    stack.erp.faults.failNext(1, 422)
    const sent = sampleOrder(51, 'SO-5001')
    await stack.crm.send('order.created', sent)
    const order = await linkIn('SO-5001', 'needs_attention')

    const listed = (await failures()).find((f) => f.id === linkId(order))
    expect(listed).toEqual({
      id: linkId(order),
      type: 'link',
      connection: 'demo-erp',
      status: 'needs_attention',
      kind: 'data',
      message: 'remote answered HTTP 422',
      httpStatus: 422,
      updatedAt: expect.any(String),
      orderId: order.id,
      externalId: 'SO-5001',
      sourceVersion: 1,
      operation: 'salesOrders.upsert',
      targetExternalId: null,
      attempts: 1,
      resolution: null,
    })
    expect((await stack.api(`/api/v1/failures/${encodeURIComponent(linkId(order))}`)).body).toEqual(listed)

    // What the mapping makes of the order, with the sales rep corrected by hand.
    const preview = await stack.api(`/api/v1/mappings/${outbound}/preview`, { method: 'POST', body: { document: { ...order.document, id: order.id } } })
    const mapped = preview.body.output as Record<string, unknown>
    expect(mapped.salesRep).toBe(sent.owner)
    const edited = { ...mapped, salesRep: 'rep-corrected-7' }
    const replayed = await stack.api(`/api/v1/failures/${linkId(order)}/replay`, { method: 'POST', body: { document: edited, reason: 'the ERP does not know rep-4' } })
    expect(replayed).toEqual({ status: 202, body: { id: linkId(order), status: 'pending' } })

    const synced = await linkIn('SO-5001', 'synced')
    const [inErp] = erpOrdersFor(order.id)
    expect(erpOrdersFor(order.id)).toHaveLength(1)
    expect(inErp).toEqual({ ...edited, id: erpLink(synced)!.externalId, createdAt: expect.any(String), updatedAt: expect.any(String) })
    expect((await failures()).map((f) => f.id)).not.toContain(linkId(order))
    expect((await stack.api(`/api/v1/failures/${linkId(order)}/replay`, { method: 'POST', body: {} })).status).toBe(409)

    const { body: audit } = await stack.api(`/api/v1/audit?subject=${encodeURIComponent(linkId(order))}`)
    expect(audit.entries).toEqual([
      expect.objectContaining({
        action: 'link.replayed',
        actor: expect.stringContaining('bootstrap admin'),
        before: { status: 'needs_attention', lastError: { kind: 'data', message: 'remote answered HTTP 422', httpStatus: 422 }, document: mapped },
        after: { status: 'pending', sourceVersion: 1, reason: 'the ERP does not know rep-4', document: edited },
      }),
    ])

    // The edit was for that one replay: the next version is mapped again.
    await stack.crm.send('order.updated', { ...sent, version: 2 })
    await linkIn('SO-5001', 'synced', 2)
    expect(erpOrdersFor(order.id)).toEqual([expect.objectContaining({ salesRep: sent.owner })])
  })

  it('makes a dead letter after the configured tries, counts it in a dry run, and replays it in bulk', async () => {
    stack.erp.faults.failNext(5, 503)
    await stack.crm.send('order.created', sampleOrder(52, 'SO-5002'))
    const order = await linkIn('SO-5002', 'dead')
    const dead = await failures('?status=dead')
    expect(dead).toEqual([expect.objectContaining({ id: linkId(order), status: 'dead', kind: 'transient', attempts: 2, message: 'remote answered HTTP 503' })])

    const filter = { connection: 'demo-erp', kind: 'transient', status: 'dead' }
    const dryRun = await stack.api('/api/v1/failures/replay', { method: 'POST', body: { ...filter, dryRun: true } })
    expect(dryRun).toEqual({ status: 200, body: { count: 1, sample: [linkId(order)] } })
    // Without dryRun: false nothing is replayed.
    expect((await stack.api('/api/v1/failures/replay', { method: 'POST', body: filter })).body).toEqual({ count: 1, sample: [linkId(order)] })
    expect((await stack.api('/api/v1/failures/replay', { method: 'POST', body: { ...filter, kind: 'auth', dryRun: true } })).body).toEqual({ count: 0, sample: [] })

    stack.erp.faults.reset() // the ERP is back
    const bulk = await stack.api('/api/v1/failures/replay', { method: 'POST', body: { ...filter, dryRun: false, reason: 'ERP maintenance is over' } })
    expect(bulk).toEqual({ status: 202, body: { replayed: 1 } })
    await linkIn('SO-5002', 'synced')
    expect(erpOrdersFor(order.id)).toHaveLength(1)
    expect(await failures('?status=dead')).toEqual([])

    const { body: audit } = await stack.api('/api/v1/audit?subject=failures')
    expect(audit.entries).toEqual([
      expect.objectContaining({ action: 'failures.replayed', before: { filter }, after: { replayed: 1, reason: 'ERP maintenance is over' } }),
    ])
  })

  it('resolves an item with a reason: it leaves the list and shows only under status=resolved', async () => {
    stack.erp.faults.failNext(1, 422)
    await stack.crm.send('order.created', sampleOrder(53, 'SO-5003'))
    const order = await linkIn('SO-5003', 'needs_attention')
    const id = linkId(order)

    expect((await stack.api(`/api/v1/failures/${id}/resolve`, { method: 'POST', body: {} })).status).toBe(422)
    const resolved = await stack.api(`/api/v1/failures/${id}/resolve`, { method: 'POST', body: { reason: 'entered by hand in the ERP' } })
    expect(resolved).toEqual({ status: 200, body: { id, status: 'resolved' } })
    expect((await failures()).map((f) => f.id)).not.toContain(id)
    expect(await failures('?status=resolved')).toEqual([
      expect.objectContaining({ id, status: 'resolved', kind: 'data', resolution: { reason: 'entered by hand in the ERP', actor: expect.stringContaining('bootstrap admin'), at: expect.any(String) } }),
    ])
    expect(erpLink(await findOrder('SO-5003'))!.status).toBe('resolved')
    // Closed: neither resolved again nor replayed.
    expect((await stack.api(`/api/v1/failures/${id}/resolve`, { method: 'POST', body: { reason: 'again' } })).status).toBe(404)
    expect((await stack.api(`/api/v1/failures/${id}/replay`, { method: 'POST', body: {} })).body.error.code).toBe('not_replayable')
    const { body: audit } = await stack.api(`/api/v1/audit?subject=${id}`)
    expect(audit.entries).toEqual([expect.objectContaining({ action: 'link.resolved', before: expect.objectContaining({ status: 'needs_attention' }), after: { status: 'resolved', reason: 'entered by hand in the ERP' } })])
  })

  it('lists an inbox event its mapping cannot take, and replays it once the mapping is fixed', async () => {
    const spec = (await stack.api(`/api/v1/mappings/${inbound}`)).body.spec as { fields: { to: string }[] }
    const strict = { ...spec, fields: spec.fields.map((f) => (f.to === 'customer.name' ? { ...f, required: true } : f)) }
    const version = (await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: strict } })).body.version
    expect((await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version } })).status).toBe(200)
    const unnamed: DemoCrmOrder = { ...sampleOrder(54, 'SO-5004'), account: { id: 'ACC-7' } }
    const answer = await stack.crm.send('order.created', unnamed)
    const eventId = (answer.body as { eventId: string }).eventId
    const id = `event:${eventId}`
    const listed = await stack.waitFor(async () => (await failures('?kind=data')).find((f) => f.id === id), 'the event to be listed')
    expect(listed).toEqual({
      id,
      type: 'event',
      connection: 'demo-crm',
      status: 'needs_attention',
      kind: 'data',
      message: 'customer.name: is required (from account.name)',
      errors: ['customer.name: is required (from account.name)'],
      updatedAt: expect.any(String),
      orderId: null,
      externalId: 'SO-5004',
      sourceVersion: 1,
      eventId,
      webhookId: expect.any(String),
      eventType: 'order.created',
      mappingVersion: version,
      resolution: null,
    })
    expect((await failures('?connection=demo-erp')).map((f) => f.id)).not.toContain(id)

    expect((await stack.api(`/api/v1/failures/${id}/replay`, { method: 'POST', body: { document: { customer: 'x' } } })).status).toBe(422)
    expect((await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 1 } })).status).toBe(200)
    const replayed = await stack.api(`/api/v1/failures/${id}/replay`, { method: 'POST', body: { reason: 'names are optional again' } })
    expect(replayed).toEqual({ status: 202, body: { id, status: 'pending' } })
    const order = await linkIn('SO-5004', 'synced')
    expect(erpOrdersFor(order.id)).toHaveLength(1)
    expect((await stack.api(`/api/v1/events/${eventId}`)).body).toMatchObject({ status: 'processed', orderId: order.id })
    const { body: audit } = await stack.api(`/api/v1/audit?subject=${id}`)
    expect(audit.entries.map((e: { action: string }) => e.action)).toEqual(['event.replayed'])
  })

  it('pages newest first with a cursor, and filters by connection, kind, status and time', async () => {
    stack.erp.faults.failNext(3, 422)
    const ids: string[] = []
    for (const n of [55, 56, 57]) {
      await stack.crm.send('order.created', sampleOrder(n, `SO-50${n}`))
      ids.push(linkId(await linkIn(`SO-50${n}`, 'needs_attention')))
    }
    const first = await stack.api('/api/v1/failures?limit=2')
    expect(first.body.failures.map((f: Failure) => f.id)).toEqual([ids[2], ids[1]])
    expect(first.body.next).toEqual(expect.any(String))
    const second = await stack.api(`/api/v1/failures?limit=2&after=${first.body.next}`)
    expect(second.body).toEqual({ failures: [expect.objectContaining({ id: ids[0] })], next: null })

    expect(await failures('?connection=demo-crm')).toEqual([])
    expect(await failures('?kind=transient')).toEqual([])
    expect(await failures('?status=dead')).toEqual([])
    expect(await failures(`?since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([])
    expect((await failures(`?since=${new Date(Date.now() - 60_000).toISOString()}&connection=demo-erp&kind=data`)).map((f) => f.id)).toEqual([ids[2], ids[1], ids[0]])
    expect((await stack.api('/api/v1/failures?after=bm90LWEtY3Vyc29y')).status).toBe(400)
    expect((await stack.api('/api/v1/failures?kind=nonsense')).status).toBe(400)
    expect((await stack.api('/api/v1/failures/link:nope/replay', { method: 'POST', body: {} })).status).toBe(404)

    // The whole kind at once: all three go through now.
    expect((await stack.api('/api/v1/failures/replay', { method: 'POST', body: { kind: 'data', connection: 'demo-erp', dryRun: false } })).body).toEqual({ replayed: 3 })
    for (const n of [55, 56, 57]) await linkIn(`SO-50${n}`, 'synced')
  })

  it('lets admin and ops act on failures, viewers read the counters only', async () => {
    stack.erp.faults.failNext(1, 422)
    await stack.crm.send('order.created', sampleOrder(58, 'SO-5058'))
    const id = linkId(await linkIn('SO-5058', 'needs_attention'))
    const calls: [string, string, unknown][] = [
      ['GET', '/api/v1/failures', undefined],
      ['GET', `/api/v1/failures/${id}`, undefined],
      ['POST', '/api/v1/failures/replay', { dryRun: true }],
      ['POST', `/api/v1/failures/${id}/replay`, {}],
      ['POST', `/api/v1/failures/${id}/resolve`, { reason: 'test' }],
      ['GET', '/api/v1/stats', undefined],
      ['GET', '/metrics', undefined],
    ]
    // In order: the replay takes the item, so the resolve after it finds nothing open.
    const statuses = async (key: string) => {
      const out: number[] = []
      for (const [method, path, body] of calls) {
        const status = path === '/metrics' ? (await fetch(`${stack.url}${path}`, { headers: { authorization: `Bearer ${key}` } })).status : (await stack.api(path, { method, body, key })).status
        out.push(status)
      }
      return out
    }
    expect(await statuses(keys.viewer!)).toEqual([403, 403, 403, 403, 403, 200, 200])
    expect(await statuses(keys.ops!)).toEqual([200, 200, 200, 202, 404, 200, 200])
    expect((await stack.api('/api/v1/failures', { key: 'obk_not_a_key' })).status).toBe(401)
    expect((await fetch(`${stack.url}/metrics`)).status).toBe(401)
    await linkIn('SO-5058', 'synced')
  })

  it('counts every replay of this run, links and the event, each at its connection', async () => {
    // one edited, one bulk, the event, three in bulk, the one ops replayed
    const stats = (await stack.api('/api/v1/stats', { key: keys.viewer })).body
    expect(stats).toMatchObject({ replayed: 7, dead: 0, needsAttention: 0, failed: 0 })
    expect((await stack.api('/api/v1/stats?connection=demo-erp')).body.replayed).toBe(6)
    expect((await stack.api('/api/v1/stats?connection=demo-crm')).body.replayed).toBe(1)
  })
})
