/**
 * Polling the change feed over HTTP, on PGlite and PostgreSQL: type and connection filters that
 * keep the feed gap-free under concurrent writers, ETags and 304, long-polls woken by a commit (on
 * PostgreSQL by LISTEN/NOTIFY alone: the fallback poll is set far beyond the test's patience),
 * long-polls that end at their time, when the client goes away and when the app closes, and the
 * bound on waiting requests.
 */
import http, { type ClientRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Queryable } from '../../src/db/database.ts'
import { appendChanges, headOfFeed, type ChangeInput } from '../../src/status/change-feed.ts'
import { createChangeSignal, postgresListener, type ChangeSignal } from '../../src/status/change-signal.ts'
import { engines, openTestDatabase, postgresUrl, type Engine, type TestDatabase } from '../support/test-database.ts'
import { seedOrder, startReadApi, type ReadApi } from './read-api.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** On PostgreSQL only a notification can wake a waiter within seconds; on PGlite the watcher polls every 100 ms. */
function signalFor(engine: Engine, t: TestDatabase, maxWaiters?: number): ChangeSignal {
  const bound = maxWaiters ? { maxWaiters } : {}
  return engine === 'postgres'
    ? createChangeSignal(t.db, { listen: postgresListener({ url: postgresUrl, schema: t.env.ORDERBRIDGE_DB_SCHEMA! }), pollIntervalMs: 20_000, listenFallbackMs: 20_000, ...bound })
    : createChangeSignal(t.db, { pollIntervalMs: 100, ...bound })
}

/** A long-poll on a connection of its own (fetch may keep spare connections open, which holds up the server's close). */
function openPoll(api: ReadApi, path: string): ClientRequest {
  const req = http.get(`${api.url}${path}`, { headers: { authorization: 'Bearer admin' }, agent: false })
  req.on('error', () => {})
  return req
}

/** Appends and waits until the changes are readable: a transaction elsewhere (autovacuum's, say) can hold them back a moment. */
async function append(db: Queryable, ...changes: ChangeInput[]): Promise<void> {
  await appendChanges(db, changes)
  const [last] = await db.query<{ seq: number }>('select max(seq) as seq from changes')
  await expect.poll(() => headOfFeed(db), { interval: 5, timeout: 5000 }).toBe(last!.seq)
}
const seqs = (body: { changes: { seq: number }[] }) => body.changes.map((c) => c.seq)

describe.each(engines)('polling the change feed (%s)', (engine) => {
  let t: TestDatabase
  let api: ReadApi
  let signal: ChangeSignal
  const head = async () => (await api.call('/api/v1/changes?limit=1')).body.head as number

  beforeAll(async () => {
    t = await openTestDatabase(engine)
    signal = signalFor(engine, t)
    api = await startReadApi(t.db, { changeSignal: signal })
  })
  afterAll(async () => {
    await api?.close()
    await t?.drop()
  })

  describe('filters', () => {
    it('pages by type prefix, type list and connection, and moves next past what they leave out', async () => {
      const start = await head()
      const a = await seedOrder(t.db, { connection: 'crm-a' })
      const b = await seedOrder(t.db, { connection: 'crm-b', links: [{ connection: 'erp', operation: 'salesOrders.upsert', status: 'synced' }] })
      await append(t.db, { type: 'order.created', orderId: a, connectionId: 'crm-a' }, { type: 'order.created', orderId: b, connectionId: 'crm-b' })
      await append(t.db, { type: 'sync.succeeded', orderId: b, connectionId: 'erp' }, { type: 'order.state_changed', orderId: a }, { type: 'breaker.opened', connectionId: 'erp' })
      const all = await api.call(`/api/v1/changes?after=${start}`)
      expect(all.body.changes.map((c: { type: string }) => c.type)).toEqual(['order.created', 'order.created', 'sync.succeeded', 'order.state_changed', 'breaker.opened'])
      const [createdA, createdB, synced, stateA, breaker] = seqs(all.body)

      const orders = await api.call(`/api/v1/changes?after=${start}&type=order.`)
      expect([seqs(orders.body), orders.body.next]).toEqual([[createdA, createdB, stateA], breaker])
      expect(seqs((await api.call(`/api/v1/changes?after=${start}&type=order.*`)).body)).toEqual([createdA, createdB, stateA])
      expect(seqs((await api.call(`/api/v1/changes?after=${start}&type=sync.succeeded,breaker.opened`)).body)).toEqual([synced, breaker])
      // A connection's changes: its own, and those of orders from or linked to it.
      expect(seqs((await api.call(`/api/v1/changes?after=${start}&connection=erp`)).body)).toEqual([createdB, synced, breaker])
      expect(seqs((await api.call(`/api/v1/changes?after=${start}&connection=crm-a&type=order.state_changed`)).body)).toEqual([stateA])

      // The next page of a filtered poller starts past the changes it did not want.
      const page = await api.call(`/api/v1/changes?after=${start}&type=order.&limit=2`)
      expect([seqs(page.body), page.body.next]).toEqual([[createdA, createdB], createdB])
      const rest = await api.call(`/api/v1/changes?after=${page.body.next}&type=order.&limit=2`)
      expect([seqs(rest.body), rest.body.next, rest.body.head]).toEqual([[stateA], breaker, breaker])
      const none = await api.call(`/api/v1/changes?after=${breaker}&type=order.`)
      expect([none.body.changes, none.body.next]).toEqual([[], breaker])
    })

    it('gives integration keys their connection’s part only, with any filter on top', async () => {
      const start = await head()
      const a = await seedOrder(t.db, { connection: 'crm-a' })
      const b = await seedOrder(t.db, { connection: 'crm-b', links: [{ connection: 'erp', operation: 'salesOrders.upsert', status: 'synced' }] })
      await append(t.db, { type: 'order.created', orderId: a, connectionId: 'crm-a' }, { type: 'order.created', orderId: b, connectionId: 'crm-b' }, { type: 'sync.failed', orderId: b, connectionId: 'erp' })
      const [createdA, createdB, failed] = seqs((await api.call(`/api/v1/changes?after=${start}`)).body)
      const erp = await api.call(`/api/v1/changes?after=${start}`, { key: 'erp-key' })
      expect([seqs(erp.body), erp.body.next]).toEqual([[createdB, failed], failed])
      expect(seqs((await api.call(`/api/v1/changes?after=${start}&type=sync.`, { key: 'erp-key' })).body)).toEqual([failed])
      expect(seqs((await api.call(`/api/v1/changes?after=${start}`, { key: 'crm-a-key' })).body)).toEqual([createdA])
      // Asking for another connection's changes narrows, it does not widen.
      expect(seqs((await api.call(`/api/v1/changes?after=${start}&connection=crm-a`, { key: 'erp-key' })).body)).toEqual([])
      // The same filters with another scope are another page: another ETag at the same position.
      const asAdmin = await api.call(`/api/v1/changes?after=${start}&connection=erp`)
      expect(asAdmin.body.next).toBe(erp.body.next)
      expect(asAdmin.headers.get('etag')).not.toBe(erp.headers.get('etag'))
    })

    it('refuses a malformed filter or wait with the field’s path', async () => {
      const bad = await api.call('/api/v1/changes?type=order.created;drop&wait=31&limit=0')
      expect(bad.status).toBe(400)
      expect(bad.body.error.code).toBe('invalid_query')
      expect(bad.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['limit', 'type', 'wait'])
    })
  })

  it('stays gap-free with concurrent writers: every poller, filtered or not, sees each of its changes once', { timeout: 60_000 }, async () => {
    const start = await head()
    const writers = 4
    const transactions = 20
    let writing = true
    const written = Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < transactions; i++) {
          await t.db.transaction(async (tx) => {
            await appendChanges(tx, [{ type: i % 2 ? 'order.updated' : 'sync.succeeded', connectionId: `c${(w + i) % 2}`, data: { w, i } }])
            // Commits land out of seq order: a later seq often commits first.
            await tx.query('select pg_sleep($1)', [(Math.random() * 8) / 1000])
            await appendChanges(tx, [{ type: 'order.updated', connectionId: `c${w % 2}`, data: { w, i, second: true } }])
          })
        }
      }),
    ).finally(() => {
      writing = false
    })
    async function poll(query: string, limit: number): Promise<number[]> {
      const seen: number[] = []
      let after = start
      for (;;) {
        const done = !writing
        const page = await api.call(`/api/v1/changes?after=${after}&limit=${limit}${query}`)
        expect(page.status).toBe(200)
        seen.push(...seqs(page.body))
        after = page.body.next
        if (done && page.body.next === page.body.head && !page.body.changes.length) return seen
        if (!page.body.changes.length) await sleep(5)
      }
    }
    const [everything, filtered, scoped] = await Promise.all([poll('', 7), poll('&type=order.', 5), poll('&type=order.updated,sync.succeeded&connection=c1', 3), written])
    const rows = await t.db.query<{ seq: number; type: string; connection_id: string }>('select seq, type, connection_id from changes where seq > $1', [start])
    const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y)
    expect(rows).toHaveLength(writers * transactions * 2)
    expect(sorted(everything)).toEqual(sorted(rows.map((r) => r.seq)))
    expect(new Set(everything).size).toBe(everything.length)
    expect(sorted(filtered)).toEqual(sorted(rows.filter((r) => r.type.startsWith('order.')).map((r) => r.seq)))
    expect(new Set(filtered).size).toBe(filtered.length)
    expect(sorted(scoped)).toEqual(sorted(rows.filter((r) => r.connection_id === 'c1').map((r) => r.seq)))
    // The filtered pollers saw their changes in the feed's order.
    const position = new Map(everything.map((s, i) => [s, i]))
    expect(filtered.map((s) => position.get(s))).toEqual(sorted(filtered.map((s) => position.get(s)!)))
  })

  describe('ETags', () => {
    it('answers 304 without a body while nothing new is there, and 200 once the position moves', async () => {
      const start = await head()
      const first = await api.call(`/api/v1/changes?after=${start}&type=order.`)
      const etag = first.headers.get('etag')!
      expect([first.status, first.body.changes, etag]).toEqual([200, [], expect.stringMatching(/^W\/"\d+-/)])
      const again = await api.call(`/api/v1/changes?after=${start}&type=order.`, { headers: { 'if-none-match': etag } })
      expect([again.status, again.text, again.headers.get('etag')]).toEqual([304, '', etag])

      // A change the filter leaves out: the answer carries the new position (and no change).
      await append(t.db, { type: 'sync.succeeded', connectionId: 'erp' })
      const moved = await api.call(`/api/v1/changes?after=${start}&type=order.`, { headers: { 'if-none-match': etag } })
      expect([moved.status, moved.body.changes, moved.body.next]).toEqual([200, [], start + 1])
      const etag2 = moved.headers.get('etag')!
      expect(etag2).not.toBe(etag)
      expect((await api.call(`/api/v1/changes?after=${moved.body.next}&type=order.`, { headers: { 'if-none-match': etag2 } })).status).toBe(304)

      await append(t.db, { type: 'order.updated', connectionId: 'crm-a' })
      const fresh = await api.call(`/api/v1/changes?after=${moved.body.next}&type=order.`, { headers: { 'if-none-match': etag2 } })
      expect([fresh.status, fresh.body.changes.map((c: { type: string }) => c.type)]).toEqual([200, ['order.updated']])
      // Other filters at the same position: another ETag.
      expect((await api.call(`/api/v1/changes?after=${moved.body.next}&type=sync.`)).headers.get('etag')).not.toBe(fresh.headers.get('etag'))
    })
  })

  describe('long-polls', () => {
    it('return as soon as a wanted change commits, not at the end of the wait', async () => {
      const start = await head()
      const polled = api.call(`/api/v1/changes?after=${start}&type=order.&wait=20`)
      await sleep(400)
      await append(t.db, { type: 'sync.succeeded', connectionId: 'erp' })
      await sleep(300)
      const committed = performance.now()
      await append(t.db, { type: 'order.created', connectionId: 'crm-a' })
      const answer = await polled
      const afterCommit = performance.now() - committed
      expect(answer.status).toBe(200)
      expect(answer.body.changes.map((c: { type: string }) => c.type)).toEqual(['order.created'])
      expect(answer.body.next).toBe(start + 2)
      expect(answer.ms).toBeGreaterThan(650)
      // PostgreSQL: NOTIFY (the fallback poll would take 20 s); PGlite: the 100 ms poll.
      expect(afterCommit).toBeLessThan(engine === 'postgres' ? 500 : 1000)
    })

    it('answer at the end of the wait with nothing, and the ETag of the position', async () => {
      const start = await head()
      const plain = await api.call(`/api/v1/changes?after=${start}&type=order.`)
      const waited = await api.call(`/api/v1/changes?after=${start}&type=order.&wait=0.6`)
      expect([waited.status, waited.body.changes, waited.body.next, waited.headers.get('etag')]).toEqual([200, [], start, plain.headers.get('etag')])
      expect(waited.ms).toBeGreaterThan(550)
      expect(waited.ms).toBeLessThan(3000)
      const unchanged = await api.call(`/api/v1/changes?after=${start}&type=order.&wait=0.3`, { headers: { 'if-none-match': plain.headers.get('etag')! } })
      expect([unchanged.status, unchanged.text]).toEqual([304, ''])
      expect(unchanged.ms).toBeGreaterThan(250)
    })

    it('stop waiting when the client goes away', async () => {
      const polled = openPoll(api, `/api/v1/changes?after=${await head()}&wait=25`)
      await expect.poll(() => signal.waiting, { timeout: 3000 }).toBe(1)
      polled.destroy()
      await expect.poll(() => signal.waiting, { timeout: 2000, interval: 20 }).toBe(0)
    })

    it('are bounded: beyond the limit, 503 at once', async () => {
      const small = await startReadApi(t.db, { changeSignal: signalFor(engine, t, 2) })
      try {
        const from = await head()
        const waiting = [1, 2].map(() => openPoll(small, `/api/v1/changes?after=${from}&wait=25`))
        await sleep(500)
        const refused = await small.call(`/api/v1/changes?after=${from}&wait=25`)
        expect([refused.status, refused.body.error.code, refused.headers.get('retry-after')]).toEqual([503, 'too_many_waiters', '1'])
        expect(refused.ms).toBeLessThan(1000)
        // Without wait, polling goes on.
        expect((await small.call(`/api/v1/changes?after=${from}`)).status).toBe(200)
        for (const poll of waiting) poll.destroy()
      } finally {
        await small.close()
      }
    })

    it('end at once when the app closes, so shutdown is not held up by them', async () => {
      const closing = await startReadApi(t.db, { changeSignal: signalFor(engine, t) })
      const from = await head()
      const polls = [1, 2, 3].map(() => closing.call(`/api/v1/changes?after=${from}&wait=25`))
      await sleep(500)
      const started = performance.now()
      await closing.close()
      const closedIn = performance.now() - started
      const answers = await Promise.all(polls)
      expect(answers.map((a) => [a.status, a.body.changes, a.body.next])).toEqual(Array(3).fill([200, [], from]))
      expect(closedIn).toBeLessThan(2000)
      expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(4000)
    })
  })
})
