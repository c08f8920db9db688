/**
 * The generic poller over a real database (PGlite and PostgreSQL) and Redis, polling the Fxiaoke
 * simulator through the Fxiaoke connector: pages with equal timestamps across a boundary, the cursor
 * surviving a restart and never moving ahead of the inbox, versions that carry nothing new skipped,
 * and the repeatable job per connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { forgetTokens } from '../../connectors/fxiaoke/client.ts'
import { fxiaoke, secretsSchema, settingsSchema } from '../../connectors/fxiaoke/index.ts'
import { startFxiaokeSimulator, type FxiaokeSimulator } from '../../connectors/fxiaoke/simulator.ts'
import type { ConnectorDefinition, Logger } from '../../src/connector-kit/index.ts'
import { createInboxWriter, type InboxWriter } from '../../src/ingest/inbox-writer.ts'
import { pollOnce, pollingConnections, readCursor, startPollers, type PollingConnection } from '../../src/polling/poller.ts'
import { createQueueSet } from '../../src/queue/queues.ts'
import { engines, openTestDatabase, uniqueName, type TestDatabase } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'

const log: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const credentials = { appId: 'FSAID_poller', appSecret: 'poller-secret', permanentCode: 'POLLERPERMANENTCODE' }

function connection(sim: FxiaokeSimulator, id: string, since: number, extra: { pageSize?: number; intervalMs?: number } = {}): PollingConnection {
  return {
    id,
    connector: fxiaoke as ConnectorDefinition,
    settings: settingsSchema.parse({
      baseUrl: sim.url,
      currentOpenUserId: 'FSUID_POLLER',
      poll: { intervalMs: extra.intervalMs ?? 60_000, pageSize: extra.pageSize ?? 3, settleMs: 0, since: new Date(since).toISOString() },
      writeback: { fields: { state: 'field_sync_state__c', erpOrderNumber: 'field_erp_no__c' } },
    }),
    secrets: secretsSchema.parse(credentials),
  }
}

async function inboxRows(db: TestDatabase['db'], connectionId: string) {
  return db.query<{ event_id: string; event_type: string; external_id: string; source_version: number }>(
    'select event_id, event_type, external_id, source_version from inbox_events where connection_id = $1 order by id',
    [connectionId],
  )
}

describe.each(engines)('polling a source into the inbox (%s)', (engine) => {
  let test: TestDatabase
  let sim: FxiaokeSimulator
  let inbox: InboxWriter
  const committed: number[][] = []
  const start = Date.now() - 3_600_000

  beforeAll(async () => {
    test = await openTestDatabase(engine)
    sim = await startFxiaokeSimulator(credentials)
    inbox = createInboxWriter(test.db, async (ids) => {
      committed.push(ids)
    })
  })
  afterAll(async () => {
    await inbox?.drain()
    await sim?.close()
    await test?.drop()
    forgetTokens()
  })

  const putOrder = (account: string, modifiedAt: number) =>
    String(sim.putOrder({ account_id: account, order_amount: '10.00' }, [{ product_id: `p-${account}`, quantity: '1', sales_price: '10.00' }], { modifiedAt })._id)

  it('reads every order once when a run of equal timestamps crosses page boundaries', async () => {
    const fx = connection(sim, 'fx-equal', start)
    const tied = Array.from({ length: 7 }, (_, i) => putOrder(`tied-${i}`, start + 1_000))
    const after = [putOrder('after-0', start + 2_000), putOrder('after-1', start + 2_000)]

    const result = await pollOnce({ db: test.db, inbox, log }, fx, { pageSize: 3 })
    expect(result).toMatchObject({ pages: 4, read: 9, written: 9, duplicates: 0, unchanged: 0, cursor: `${start + 2_000}` })
    const rows = await inboxRows(test.db, 'fx-equal')
    expect(rows.map((r) => r.external_id)).toEqual([...tied, ...after])
    expect(rows.map((r) => r.event_id)).toEqual([...tied.map((id) => `${id}:${start + 1_000}`), ...after.map((id) => `${id}:${start + 2_000}`)])
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(9)
    expect(rows.every((r) => r.event_type === 'order.created')).toBe(true)
    expect(committed.flat().length).toBeGreaterThanOrEqual(9)
  })

  it('resumes from the stored cursor in a new poller (a restart), reading only what changed since', async () => {
    // A new process: its own inbox writer; the cursor comes from the database.
    const restarted = createInboxWriter(test.db, async () => {})
    const fx = connection(sim, 'fx-equal', start)
    expect(await readCursor(test.db, 'fx-equal', 'SalesOrderObj')).toBe(`${start + 2_000}`)
    const fresh = [putOrder('new-0', start + 3_000), putOrder('new-1', start + 3_001)]
    const result = await pollOnce({ db: test.db, inbox: restarted, log }, fx, { pageSize: 3 })
    await restarted.drain()
    expect(result).toMatchObject({ pages: 1, read: 2, written: 2, duplicates: 0, cursor: `${start + 3_001}` })
    expect((await inboxRows(test.db, 'fx-equal')).slice(-2).map((r) => r.external_id)).toEqual(fresh)
  })

  it('keeps the cursor where it was when the inbox write fails, and reads the page again next time', async () => {
    const fx = connection(sim, 'fx-crash', start + 10_000)
    const ids = [putOrder('crash-0', start + 10_000), putOrder('crash-1', start + 10_000)]
    const failing: InboxWriter = { write: () => Promise.reject(new Error('database went away')), drain: async () => {} }
    await expect(pollOnce({ db: test.db, inbox: failing, log }, fx)).rejects.toThrow('database went away')
    expect(await readCursor(test.db, 'fx-crash', 'SalesOrderObj')).toBeNull()

    const result = await pollOnce({ db: test.db, inbox, log }, fx)
    expect(result).toMatchObject({ written: 2, cursor: `${start + 10_000}` })
    expect((await inboxRows(test.db, 'fx-crash')).map((r) => r.external_id)).toEqual(ids)
  })

  it('answers a page read again (committed, cursor not yet moved) with duplicates only', async () => {
    const fx = connection(sim, 'fx-replay', start + 20_000)
    putOrder('replay-0', start + 20_000)
    // The events commit, then the process dies before the cursor moves.
    const committedOnly: InboxWriter = {
      write: async (entry) => {
        await inbox.write(entry)
        throw new Error('killed after the commit')
      },
      drain: () => inbox.drain(),
    }
    await expect(pollOnce({ db: test.db, inbox: committedOnly, log }, fx)).rejects.toThrow('killed after the commit')
    expect(await readCursor(test.db, 'fx-replay', 'SalesOrderObj')).toBeNull()
    // Read again: the version is already stored, so nothing new is written (the poller sees the same
    // document and skips it; had it not, the inbox would have answered a duplicate).
    const again = await pollOnce({ db: test.db, inbox, log }, fx)
    expect(again).toMatchObject({ read: 1, written: 0, cursor: `${start + 20_000}` })
    expect(again.duplicates + again.unchanged).toBe(1)
    expect(await inboxRows(test.db, 'fx-replay')).toHaveLength(1)
  })

  it('skips a version that only our writeback made, and takes the next real change', async () => {
    const fx = connection(sim, 'fx-writeback', Date.now() - 60_000)
    const id = putOrder('wb-0', Date.now() - 1_000)
    expect((await pollOnce({ db: test.db, inbox, log }, fx)).written).toBe(1)

    const ctx = { connectionId: fx.id, settings: fx.settings as never, secrets: fx.secrets as never, log, idempotencyKey: 'k', reference: 'ORD-1', mayHaveWritten: false }
    await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'approved', erpOrderNumber: 'SO-1' })
    await new Promise((resolve) => setTimeout(resolve, 5))
    const afterWriteback = await pollOnce({ db: test.db, inbox, log }, fx)
    expect(afterWriteback).toMatchObject({ read: 1, written: 0, unchanged: 1 })

    sim.putOrder({ ...sim.order(id), order_amount: '20.00' }, sim.lines(id), { modifiedAt: Date.now() })
    const changed = await pollOnce({ db: test.db, inbox, log }, fx)
    expect(changed).toMatchObject({ read: 1, written: 1, unchanged: 0 })
    const rows = await inboxRows(test.db, 'fx-writeback')
    expect(rows.map((r) => r.event_type)).toEqual(['order.created', 'order.updated'])
  })

  it('lets only one of two pollers move the cursor past a page', async () => {
    const fx = connection(sim, 'fx-race', start + 30_000)
    const id = putOrder('race-0', start + 30_000)
    const [a, b] = await Promise.all([pollOnce({ db: test.db, inbox, log }, fx), pollOnce({ db: test.db, inbox, log }, fx)])
    expect([a.stopped, b.stopped].filter((s) => s === 'moved').length).toBeLessThanOrEqual(1)
    const rows = await inboxRows(test.db, 'fx-race')
    expect(rows.filter((r) => r.external_id === id)).toHaveLength(1)
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(rows.length)
    expect(Number(await readCursor(test.db, 'fx-race', 'SalesOrderObj'))).toBeGreaterThanOrEqual(start + 30_000)
  })
})

describe('the repeatable poll job per connection (Redis)', () => {
  let test: TestDatabase
  let sim: FxiaokeSimulator
  const prefix = uniqueName('poll')
  let queues: ReturnType<typeof createQueueSet>

  beforeAll(async () => {
    test = await openTestDatabase('pglite')
    sim = await startFxiaokeSimulator(credentials)
    queues = createQueueSet({ redisUrl, prefix, syncConnections: [] })
  })
  afterAll(async () => {
    await queues?.close()
    await sim?.close()
    await test?.drop()
    await deleteQueueKeys(prefix)
    forgetTokens()
  })

  it('polls only the connections whose settings give an interval', () => {
    const polling = connection(sim, 'fx-a', 0, { intervalMs: 1_000 })
    const silent = { ...polling, id: 'fx-b', settings: settingsSchema.parse({ baseUrl: sim.url }) }
    expect(pollingConnections([polling, silent]).map((p) => [p.connection.id, p.intervalMs])).toEqual([['fx-a', 1_000]])
  })

  it('runs each connection on its interval, one run at a time, and stops on close', async () => {
    const since = Date.now() - 60_000
    const ids = [0, 1, 2].map((i) => String(sim.putOrder({ account_id: `job-${i}` }, [], { modifiedAt: since + 1_000 })._id))
    const fx = connection(sim, 'fx-job', since, { intervalMs: 1_000 })
    const pollers = startPollers({ db: test.db, queues, connections: { all: () => [fx] }, log })
    await pollers.ready
    try {
      expect(pollers.scheduled).toEqual([{ connectionId: 'fx-job', intervalMs: 1_000 }])
      const schedulers = await pollers.queue.getJobSchedulers()
      expect(schedulers.map((s) => [s.key, s.every])).toEqual([['poll-fx-job', 1_000]])

      // The scheduler's job polls without help.
      const deadline = Date.now() + 15_000
      while ((await inboxRows(test.db, 'fx-job')).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      expect((await inboxRows(test.db, 'fx-job')).map((r) => r.external_id)).toEqual(ids)

      // While a run holds the connection's lease, another run skips its turn.
      await queues.redis.set(`${queues.prefix}:poll-lock:fx-job`, 'someone-else', 'PX', 5_000)
      expect(await pollers.runNow('fx-job')).toBe('busy')
      await queues.redis.del(`${queues.prefix}:poll-lock:fx-job`)
      expect(await pollers.runNow('fx-job')).toMatchObject({ connectionId: 'fx-job', written: 0 })
    } finally {
      await pollers.close()
    }
  })

  it('removes the scheduler of a connection that no longer polls', async () => {
    const fx = connection(sim, 'fx-job', Date.now(), { intervalMs: 1_000 })
    const silent = { ...fx, settings: settingsSchema.parse({ baseUrl: sim.url }) }
    const pollers = startPollers({ db: test.db, queues, connections: { all: () => [silent] }, log })
    await pollers.ready
    try {
      expect(pollers.scheduled).toEqual([])
      expect(await pollers.queue.getJobSchedulers()).toEqual([])
    } finally {
      await pollers.close()
    }
  })
})
