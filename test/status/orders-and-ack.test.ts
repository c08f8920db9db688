/**
 * The order list's filters and cursor, and acknowledgements from systems that pull, over HTTP on
 * PGlite and PostgreSQL with orders seeded in the database: each filter, integration keys' scope,
 * paging without duplicates or gaps while orders change between pages, field-path errors; and an
 * acknowledgement that is idempotent per order and connection (also when sent at once), visible in
 * the timeline and the change feed, and limited to the key's own connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'
import { seedOrder, startReadApi, type ReadApi } from './read-api.ts'

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000)

describe.each(engines)('orders and acknowledgements (%s)', (engine) => {
  let t: TestDatabase
  let api: ReadApi
  beforeAll(async () => {
    t = await openTestDatabase(engine)
    api = await startReadApi(t.db)
  })
  afterAll(async () => {
    await api?.close()
    await t?.drop()
  })

  const ids = (body: { orders: { id: string }[] }) => body.orders.map((o) => o.id)

  describe('the order list', () => {
    const o: Record<string, string> = {}
    beforeAll(async () => {
      // Newest first: f, e, d, c, b, a.
      o.a = await seedOrder(t.db, { externalId: 'L-A', connection: 'crm-a', state: 'received', customer: 'ACC-1', createdAt: minutesAgo(60) })
      o.b = await seedOrder(t.db, { externalId: 'L-B', connection: 'crm-a', state: 'pending_shipment', customer: 'ACC-2', paymentState: 'invoiced', createdAt: minutesAgo(50), links: [{ connection: 'erp', operation: 'salesOrders.upsert', status: 'synced' }] })
      o.c = await seedOrder(t.db, { externalId: 'L-C', connection: 'crm-b', state: 'shipped', customer: 'ACC-1', paymentState: 'paid', createdAt: minutesAgo(40), links: [{ connection: 'erp', operation: 'salesOrders.upsert', status: 'needs_attention' }] })
      o.d = await seedOrder(t.db, { externalId: 'L-D', connection: 'crm-b', state: 'on_hold', customer: 'ACC-3', createdAt: minutesAgo(30), links: [{ connection: 'wms', operation: 'inventory.reserve', status: 'dead' }] })
      o.e = await seedOrder(t.db, { externalId: 'L-E', connection: 'crm-b', state: 'received', customer: 'ACC-2', createdAt: minutesAgo(20) })
      o.f = await seedOrder(t.db, { externalId: 'L-F', connection: 'crm-a', state: 'cancelled', customer: 'ACC-1', paymentState: 'invoiced', createdAt: minutesAgo(10), links: [{ connection: 'erp', operation: 'salesOrders.upsert', status: 'resolved' }] })
      await t.db.query(`update orders set updated_at = created_at where external_id like 'L-%'`)
      await t.db.query(`update orders set updated_at = now() where id = any($1::uuid[])`, [[o.a, o.d]])
    })
    const list = async (query: string, key?: string) => {
      const answer = await api.call(`/api/v1/orders?limit=100&${query}`, key ? { key } : {})
      expect(answer.status, JSON.stringify(answer.body)).toBe(200)
      return ids(answer.body)
    }

    it('filters by states, payment states, connection (source or linked), customer, update time and attention', async () => {
      expect(await list('state=received')).toEqual([o.e, o.a])
      expect(await list('state=received,on_hold,shipped')).toEqual([o.e, o.d, o.c, o.a])
      expect(await list('paymentState=invoiced,paid')).toEqual([o.f, o.c, o.b])
      expect(await list('connection=crm-a')).toEqual([o.f, o.b, o.a])
      expect(await list('connection=erp')).toEqual([o.f, o.c, o.b])
      expect(await list('customer=ACC-1')).toEqual([o.f, o.c, o.a])
      expect(await list(`updatedSince=${encodeURIComponent(minutesAgo(5).toISOString())}`)).toEqual([o.d, o.a])
      expect(await list(`updatedSince=${encodeURIComponent(minutesAgo(45).toISOString().replace('Z', '+00:00'))}&connection=crm-b`)).toEqual([o.e, o.d, o.c])
      // A dismissed (resolved) link needs nothing.
      expect(await list('needsAttention=true')).toEqual([o.d, o.c])
      expect(await list('needsAttention=false&connection=erp')).toEqual([o.f, o.b])
      expect(await list('state=received&customer=ACC-2&connection=crm-b')).toEqual([o.e])
    })

    it('lists for an integration key only its connection’s orders, with filters on top', async () => {
      expect(await list('', 'erp-key')).toEqual([o.f, o.c, o.b])
      expect(await list('state=shipped,received', 'erp-key')).toEqual([o.c])
      expect(await list('connection=crm-a', 'erp-key')).toEqual([o.f, o.b])
      expect(await list('connection=crm-b', 'crm-a-key')).toEqual([])
      expect(await list('customer=ACC-1', 'crm-a-key')).toEqual([o.f, o.a])
    })

    it('projects what an approver sees and shows others the payment track', async () => {
      const full = (await api.call(`/api/v1/orders?externalId=L-B`)).body.orders[0]
      expect(full).toMatchObject({ id: o.b, paymentState: 'invoiced', amountPaid: '0', total: '100.00' })
      const approver = await api.call(`/api/v1/orders?externalId=L-B`, { key: 'approver-key' })
      expect(approver.body.orders[0]).toMatchObject({ id: o.b, total: '100.00' })
    })

    it('refuses malformed filters with the path of each', async () => {
      const bad = await api.call('/api/v1/orders?state=received,nope&paymentState=&updatedSince=yesterday&needsAttention=maybe&after=12&limit=501')
      expect(bad.status).toBe(400)
      expect(bad.body.error.code).toBe('invalid_query')
      expect(bad.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['after', 'limit', 'needsAttention', 'paymentState', 'state[1]', 'updatedSince'])
    })

    it('pages by cursor without duplicates or gaps while orders change between pages, and ends with next null', async () => {
      const paged: string[] = []
      const batch = await Promise.all(Array.from({ length: 11 }, (_, i) => seedOrder(t.db, { connection: 'crm-page', externalId: `P-${i}`, createdAt: minutesAgo(100 + i), state: 'received' })))
      let after: string | null = null
      let page = 0
      do {
        const answer = await api.call(`/api/v1/orders?connection=crm-page&limit=3${after ? `&after=${after}` : ''}`)
        paged.push(...ids(answer.body))
        after = answer.body.next
        // Between pages, orders change: some already listed, some not yet, including the cursor's own.
        const seen = ids(answer.body)
        const next = batch.filter((id) => !paged.includes(id)).slice(0, 2)
        await t.db.query(
          `update orders set state = 'approved', revision = revision + 1, updated_at = now() + ($2 || ' seconds')::interval where id = any($1::uuid[])`,
          [[...seen, ...next], String(page++)],
        )
      } while (after)
      expect(paged).toEqual(batch)
      expect(page).toBe(4)
      // Exactly a page left: the last full page says there is nothing after it.
      const lastThree = await api.call(`/api/v1/orders?connection=crm-page&limit=3&after=${batch[7]}`)
      expect([ids(lastThree.body), lastThree.body.next]).toEqual([batch.slice(8), null])
    })
  })

  describe('acknowledgements', () => {
    let linked: string
    let unlinked: string
    beforeAll(async () => {
      linked = await seedOrder(t.db, { externalId: 'ACK-1', connection: 'crm-a', links: [{ connection: 'erp', operation: 'salesOrders.upsert', status: 'synced' }] })
      unlinked = await seedOrder(t.db, { externalId: 'ACK-2', connection: 'crm-b' })
    })
    const ack = (id: string, body: unknown, key = 'admin') => api.call(`/api/v1/orders/${id}/ack`, { method: 'POST', body, key })

    it('records the first acknowledgement per order and connection and answers repeats with it', async () => {
      const head = (await api.call('/api/v1/changes?limit=1')).body.head as number
      const first = await ack(linked, { connection: 'wms', reference: 'WMS-77', note: 'picked up by the nightly pull' })
      expect(first.status).toBe(201)
      expect(first.body).toEqual({ orderId: linked, connection: 'wms', acknowledgedAt: expect.any(String), reference: 'WMS-77', note: 'picked up by the nightly pull', by: 'admin key admin' })
      const again = await ack(linked, { connection: 'wms', reference: 'WMS-78' }, 'ops')
      expect([again.status, again.body]).toEqual([200, first.body])

      const timeline = (await api.call(`/api/v1/orders/${linked}/timeline`)).body.timeline
      expect(timeline.filter((e: { kind: string }) => e.kind === 'acknowledged')).toEqual([
        { at: first.body.acknowledgedAt, kind: 'acknowledged', fromState: null, toState: null, cause: 'admin key admin', detail: { connection: 'wms', reference: 'WMS-77', note: 'picked up by the nightly pull' } },
      ])
      const changes = (await api.call(`/api/v1/changes?after=${head}&type=order.acknowledged`)).body.changes
      expect(changes).toEqual([expect.objectContaining({ type: 'order.acknowledged', orderId: linked, connectionId: 'wms', data: { acknowledgedAt: first.body.acknowledgedAt, reference: 'WMS-77' } })])
    })

    it('keeps one acknowledgement when several arrive at once', async () => {
      const order = await seedOrder(t.db, { externalId: 'ACK-RACE', connection: 'crm-a' })
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => ack(order, { connection: 'erp', reference: `R-${i}` })))
      expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 201])
      expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1)
      const [rows] = await t.db.query<{ events: number; changes: number }>(
        `select (select count(*) from order_events where order_id = $1 and kind = 'acknowledged')::int as events,
                (select count(*) from changes where order_id = $1 and type = 'order.acknowledged')::int as changes`,
        [order],
      )
      expect(rows).toEqual({ events: 1, changes: 1 })
      // Another connection's acknowledgement is its own.
      expect((await ack(order, { connection: 'wms' })).status).toBe(201)
    })

    it('takes an integration key’s connection from the key and refuses another', async () => {
      const mine = await ack(linked, { reference: 'ERP-SO-9' }, 'erp-key')
      expect([mine.status, mine.body.connection, mine.body.by]).toEqual([201, 'erp', 'integration key erp-key'])
      expect((await ack(linked, { connection: 'erp' }, 'erp-key')).status).toBe(200)
      const other = await ack(linked, { connection: 'wms' }, 'erp-key')
      expect([other.status, other.body.error.code]).toEqual([403, 'forbidden'])
      // An order it cannot see is not there for it.
      expect((await ack(unlinked, {}, 'erp-key')).status).toBe(404)
      expect((await ack(unlinked, {}, 'crm-a-key')).status).toBe(404)
    })

    it('needs admins and ops to name a configured connection, and checks the body and the order', async () => {
      const missing = await ack(linked, {})
      expect([missing.status, missing.body.error.details]).toEqual([422, [{ path: 'connection', message: expect.stringContaining('required') }]])
      const unknown = await ack(linked, { connection: 'nowhere' }, 'ops')
      expect([unknown.status, unknown.body.error.details]).toEqual([422, [{ path: 'connection', message: 'no configured connection "nowhere"' }]])
      const extra = await ack(linked, { connection: 'erp', status: 'done', note: 7 })
      expect([extra.status, extra.body.error.details.map((d: { path: string }) => d.path).sort()]).toEqual([422, ['', 'note']])
      expect((await ack('00000000-0000-4000-8000-000000000000', { connection: 'erp' })).status).toBe(404)
      expect((await ack('not-a-uuid', { connection: 'erp' })).status).toBe(404)
      expect((await ack(linked, { connection: 'erp' }, 'viewer')).status).toBe(403)
      expect((await ack(linked, { connection: 'erp' }, 'approver-key')).status).toBe(403)
    })
  })
})
