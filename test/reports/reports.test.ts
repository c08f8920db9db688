/**
 * Reports over seeded history, on PGlite and PostgreSQL: amounts summed exactly per currency (to
 * the cent, where floats would not be), durations to the ERP, shipment and payment as p50/p95,
 * sync health per connection and operation, CSV as RFC 4180 has it, query errors by field, and
 * who may read them.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Queryable } from '../../src/db/database.ts'
import { csvField, toCsv } from '../../src/reports/csv.ts'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'
import { seedOrder, startReadApi, type ReadApi } from '../status/read-api.ts'

const at = (iso: string) => new Date(iso)
const plus = (d: Date, seconds: number) => new Date(d.getTime() + seconds * 1000)

describe('CSV', () => {
  it('quotes only fields with a comma, a quote or a line break, doubling quotes, with CRLF rows', () => {
    expect([csvField('plain'), csvField('a,b'), csvField('say "hi"'), csvField('two\nlines'), csvField(null), csvField(0), csvField('-1.50')]).toEqual([
      'plain',
      '"a,b"',
      '"say ""hi"""',
      '"two\nlines"',
      '',
      '0',
      '-1.50',
    ])
    expect(toCsv([{ a: 'x,y', b: 1 }], [{ header: 'a', value: (r) => r.a }, { header: 'b', value: (r) => r.b }])).toBe('a,b\r\n"x,y",1\r\n')
  })
})

async function seedTimings(db: Queryable, orderId: string, created: Date, t: { synced?: number; shipped?: number; paid?: number }) {
  if (t.synced !== undefined) {
    await db.query(
      `insert into sync_attempts (order_id, connection_id, operation, source_version, idempotency_key, started_at, finished_at, outcome, duration_ms)
       values ($1, 'erp', 'salesOrders.upsert', 1, $2, $3, $3, 'succeeded', 10)`,
      [orderId, randomUUID(), plus(created, t.synced)],
    )
  }
  if (t.shipped !== undefined) {
    await db.query(`insert into order_events (order_id, at, kind, from_state, to_state, cause) values ($1, $2, 'transition', 'pending_shipment', 'shipped', 'wms')`, [orderId, plus(created, t.shipped)])
  }
  if (t.paid !== undefined) {
    await db.query(`insert into order_events (order_id, at, kind, cause, detail) values ($1, $2, 'payment', 'erp', '{"to": "paid"}')`, [orderId, plus(created, t.paid)])
  }
}

describe.each(engines)('reports (%s)', (engine) => {
  let t: TestDatabase
  let api: ReadApi
  beforeAll(async () => {
    t = await openTestDatabase(engine)
    api = await startReadApi(t.db)

    // Day 1 (2026-03-01), CNY: 0.10 + 0.20 + 1234567890123.45; synced after 10, 20 and 40 s.
    const day1 = at('2026-03-01T08:00:00Z')
    const cny = [
      { total: '0.10', paid: '0.10', customer: 'ACC-1', state: 'completed', timings: { synced: 10, shipped: 3600, paid: 7200 } },
      { total: '0.20', paid: '0', customer: 'ACME, "East"', state: 'shipped', timings: { synced: 20, shipped: 1800 } },
      { total: '1234567890123.45', paid: '1000.01', customer: 'ACC-1', state: 'pending_shipment', timings: { synced: 40 } },
    ]
    for (const [i, o] of cny.entries()) {
      const created = plus(day1, i * 60)
      const id = await seedOrder(t.db, { connection: 'crm-a', currency: 'CNY', total: o.total, paid: o.paid, customer: o.customer, state: o.state, createdAt: created })
      await seedTimings(t.db, id, created, o.timings)
    }
    // Day 1, USD and EUR; day 2 (2026-03-02), USD from another CRM, late in the day.
    await seedOrder(t.db, { connection: 'crm-a', currency: 'USD', total: '19.99', customer: 'ACC-2', state: 'received', createdAt: plus(day1, 300) })
    await seedOrder(t.db, { connection: 'crm-a', currency: 'EUR', total: '0.01', customer: 'ACC-2', state: 'received', createdAt: plus(day1, 360) })
    const day2 = at('2026-03-02T23:59:00Z')
    const usd = await seedOrder(t.db, { connection: 'crm-b', currency: 'USD', total: '0.02', paid: '0.02', customer: 'ACC-1', state: 'completed', createdAt: day2 })
    await seedTimings(t.db, usd, day2, { synced: 5.55, shipped: 60, paid: 90 })
    // Outside the range.
    await seedOrder(t.db, { connection: 'crm-a', currency: 'CNY', total: '5.00', createdAt: at('2026-02-28T23:59:59Z') })
    await seedOrder(t.db, { connection: 'crm-a', currency: 'CNY', total: '7.00', createdAt: at('2026-03-03T00:00:00Z') })
  })
  afterAll(async () => {
    await api?.close()
    await t?.drop()
  })

  describe('orders', () => {
    const range = 'from=2026-03-01&to=2026-03-02'

    it('groups by day with exact sums per currency and durations to the ERP, shipment and payment', async () => {
      const { status, body } = await api.call(`/api/v1/reports/orders?groupBy=day&${range}`)
      expect(status).toBe(200)
      expect(body).toMatchObject({ groupBy: 'day', from: '2026-03-01T00:00:00.000Z', to: '2026-03-03T00:00:00.000Z', currency: null })
      expect(body.groups.map((g: { group: string; currency: string; orders: number; total: string; paid: string }) => [g.group, g.currency, g.orders, g.total, g.paid])).toEqual([
        ['2026-03-01', 'CNY', 3, '1234567890123.75', '1000.11'],
        ['2026-03-01', 'EUR', 1, '0.01', '0'],
        ['2026-03-01', 'USD', 1, '19.99', '0'],
        ['2026-03-02', 'USD', 1, '0.02', '0.02'],
      ])
      const cny = body.groups[0]
      // p95 of 10, 20, 40 interpolates: 20 + 0.9 × 20.
      expect(cny.toSynced).toEqual({ count: 3, p50: 20, p95: 38 })
      expect(cny.toShipped).toEqual({ count: 2, p50: 2700, p95: 3510 })
      expect(cny.toPaid).toEqual({ count: 1, p50: 7200, p95: 7200 })
      expect(body.groups[1].toSynced).toEqual({ count: 0, p50: null, p95: null })
      expect(body.groups[3].toSynced).toEqual({ count: 1, p50: 5.6, p95: 5.6 })
      expect(body.totals).toEqual([
        { currency: 'CNY', orders: 3, total: '1234567890123.75', paid: '1000.11' },
        { currency: 'EUR', orders: 1, total: '0.01', paid: '0' },
        { currency: 'USD', orders: 2, total: '20.01', paid: '0.02' },
      ])
    })

    it('groups by state, customer and connection, and keeps to one currency when asked', async () => {
      const groups = async (query: string) => (await api.call(`/api/v1/reports/orders?${range}&${query}`)).body.groups.map((g: { group: string; currency: string; total: string }) => [g.group, g.currency, g.total])
      expect(await groups('groupBy=state&currency=CNY')).toEqual([
        ['completed', 'CNY', '0.10'],
        ['pending_shipment', 'CNY', '1234567890123.45'],
        ['shipped', 'CNY', '0.20'],
      ])
      expect(await groups('groupBy=customer')).toEqual([
        ['ACC-1', 'CNY', '1234567890123.55'],
        ['ACC-1', 'USD', '0.02'],
        ['ACC-2', 'EUR', '0.01'],
        ['ACC-2', 'USD', '19.99'],
        ['ACME, "East"', 'CNY', '0.20'],
      ])
      expect(await groups('groupBy=connection&currency=USD')).toEqual([
        ['crm-a', 'USD', '19.99'],
        ['crm-b', 'USD', '0.02'],
      ])
      // A date-time `to` is exclusive; a date `to` takes in its whole day.
      const until = await api.call('/api/v1/reports/orders?groupBy=connection&from=2026-03-01T00:00:00Z&to=2026-03-02T23:59:00Z&currency=USD')
      expect(until.body.groups.map((g: { group: string }) => g.group)).toEqual(['crm-a'])
    })

    it('answers CSV with a header row for format=csv and for Accept: text/csv', async () => {
      const csv = await api.call(`/api/v1/reports/orders?groupBy=customer&${range}&format=csv`)
      expect(csv.status).toBe(200)
      expect(csv.headers.get('content-type')).toMatch(/^text\/csv; charset=utf-8/)
      expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="orders-by-customer-2026-03-01T00-00-00-000Z-2026-03-03T00-00-00-000Z\.csv"$/)
      const lines = csv.text.split('\r\n')
      expect(lines[0]).toBe('group,currency,orders,total,paid,toSyncedCount,toSyncedP50Seconds,toSyncedP95Seconds,toShippedCount,toShippedP50Seconds,toShippedP95Seconds,toPaidCount,toPaidP50Seconds,toPaidP95Seconds')
      expect(lines[1]).toBe('ACC-1,CNY,2,1234567890123.55,1000.11,2,25,38.5,1,3600,3600,1,7200,7200')
      expect(lines[5]).toBe('"ACME, ""East""",CNY,1,0.20,0,1,20,20,1,1800,1800,0,,')
      expect(lines.at(-1)).toBe('')
      expect(lines).toHaveLength(7)
      const negotiated = await api.call(`/api/v1/reports/orders?groupBy=customer&${range}`, { headers: { accept: 'text/csv' } })
      expect(negotiated.text).toBe(csv.text)
      // format wins over Accept.
      expect((await api.call(`/api/v1/reports/orders?${range}&format=json`, { headers: { accept: 'text/csv' } })).body.groups).toHaveLength(4)
    })

    it('refuses malformed queries with the path of each field', async () => {
      const paths = async (query: string) => {
        const answer = await api.call(`/api/v1/reports/orders?${query}`)
        expect([answer.status, answer.body.error.code]).toEqual([400, 'invalid_query'])
        return answer.body.error.details.map((d: { path: string }) => d.path).sort()
      }
      expect(await paths('groupBy=week&currency=usd&format=xml&from=March')).toEqual(['currency', 'format', 'from', 'groupBy'])
      expect(await paths('from=2026-03-02&to=2026-03-01T00:00:00Z')).toEqual(['to'])
      expect(await paths('from=2024-01-01&to=2026-01-01')).toEqual(['from'])
      expect(await paths('groupby=day')).toEqual([''])
    })
  })

  describe('sync', () => {
    const range = 'from=2026-04-01&to=2026-04-01'
    beforeAll(async () => {
      const start = at('2026-04-01T10:00:00Z')
      const [o1, o2, o3] = await Promise.all([1, 2, 3].map(() => seedOrder(t.db, { connection: 'crm-a', createdAt: start })))
      const attempt = (order: string, connection: string, operation: string, version: number, outcome: string, ms: number | null, started = start) =>
        t.db.query(
          `insert into sync_attempts (order_id, connection_id, operation, source_version, idempotency_key, started_at, finished_at, outcome, duration_ms)
           values ($1, $2, $3, $4, $5, $6::timestamptz, case when $7::text = 'started' then null else $6::timestamptz end, $7, $8)`,
          [order, connection, operation, version, randomUUID(), started, outcome, ms],
        )
      await attempt(o1!, 'erp', 'salesOrders.upsert', 1, 'failed', 100)
      await attempt(o1!, 'erp', 'salesOrders.upsert', 1, 'failed', 200)
      await attempt(o1!, 'erp', 'salesOrders.upsert', 1, 'succeeded', 300)
      await attempt(o2!, 'erp', 'salesOrders.upsert', 1, 'succeeded', 50)
      await attempt(o2!, 'erp', 'salesOrders.upsert', 2, 'succeeded', 150)
      await attempt(o3!, 'wms', 'inventory.reserve', 1, 'failed', 1000)
      await attempt(o3!, 'wms', 'inventory.reserve', 1, 'started', null)
      await attempt(o3!, 'wms', 'inventory.reserve', 1, 'succeeded', 5, at('2026-04-02T00:00:00Z'))
      const change = (type: string, connection: string, order: string | null, data: object, when = start) =>
        t.db.query('insert into changes (type, order_id, connection_id, data, at) values ($1, $2, $3, $4, $5)', [type, order, connection, JSON.stringify(data), when])
      await change('sync.failed', 'erp', o1!, { operation: 'salesOrders.upsert', status: 'retrying' })
      await change('sync.failed', 'erp', o1!, { operation: 'salesOrders.upsert', status: 'dead' })
      await change('sync.failed', 'erp', o1!, { operation: 'salesOrders.upsert', status: 'dead' })
      await change('sync.failed', 'wms', o3!, { operation: 'inventory.reserve', status: 'needs_attention' })
      await change('breaker.opened', 'erp', null, {})
      await change('breaker.opened', 'erp', null, {})
      await change('breaker.opened', 'erp', null, {}, at('2026-03-31T23:59:59Z'))
      await change('breaker.opened', 'crm-x', null, {})
    })

    it('reports per connection and operation: attempts, success rate, retries, dead letters, attention, latency and breaker openings', async () => {
      const { status, body } = await api.call(`/api/v1/reports/sync?${range}`)
      expect(status).toBe(200)
      expect(body).toEqual({
        from: '2026-04-01T00:00:00.000Z',
        to: '2026-04-02T00:00:00.000Z',
        rows: [
          { connection: 'crm-x', operation: null, attempts: 0, succeeded: 0, failed: 0, successRate: null, retries: 0, deadLetters: 0, needsAttention: 0, meanLatencyMs: null, p95LatencyMs: null, breakerOpenings: 1 },
          { connection: 'erp', operation: 'salesOrders.upsert', attempts: 5, succeeded: 3, failed: 2, successRate: 0.6, retries: 2, deadLetters: 1, needsAttention: 0, meanLatencyMs: 160, p95LatencyMs: 280, breakerOpenings: 2 },
          { connection: 'wms', operation: 'inventory.reserve', attempts: 2, succeeded: 0, failed: 1, successRate: 0, retries: 1, deadLetters: 0, needsAttention: 1, meanLatencyMs: 1000, p95LatencyMs: 1000, breakerOpenings: 0 },
        ],
      })
    })

    it('answers CSV', async () => {
      const csv = await api.call(`/api/v1/reports/sync?${range}`, { headers: { accept: 'text/csv, application/json;q=0.5' } })
      expect(csv.text.split('\r\n')).toEqual([
        'connection,operation,attempts,succeeded,failed,successRate,retries,deadLetters,needsAttention,meanLatencyMs,p95LatencyMs,breakerOpenings',
        'crm-x,,0,0,0,,0,0,0,,,1',
        'erp,salesOrders.upsert,5,3,2,0.6,2,1,0,160,280,2',
        'wms,inventory.reserve,2,0,1,0,1,0,1,1000,1000,0',
        '',
      ])
    })
  })

  it('is for admin, ops and viewer keys only', async () => {
    for (const [key, status] of [['admin', 200], ['ops', 200], ['viewer', 200], ['erp-key', 403], ['approver-key', 403]] as const) {
      expect((await api.call('/api/v1/reports/sync', { key })).status, key).toBe(status)
      expect((await api.call('/api/v1/reports/orders?groupBy=state', { key })).status, key).toBe(status)
    }
    expect((await api.call('/api/v1/reports/orders', { key: 'nobody' })).status).toBe(401)
  })
})
