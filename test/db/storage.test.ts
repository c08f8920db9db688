/**
 * The same storage behaviour on PGlite and on PostgreSQL: migrations, the group-commit inbox,
 * the gap-free change feed, version-ordered order updates, and the sweeper's recovery of work
 * that was committed but never queued.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { connectors } from '../../connectors/index.ts'
import { createConnectionRegistry } from '../../src/connections/connection-registry.ts'
import { migrate } from '../../src/db/migrate.ts'
import { demoConfig } from '../../src/demo/demo-environment.ts'
import { createInboxWriter, type InboxEntry } from '../../src/ingest/inbox-writer.ts'
import { createFileCatalog, loadMappingSpecs, type MappingCatalog } from '../../src/mapping/mapping-catalog.ts'
import { createLifecycle, type Lifecycle } from '../../src/orders/lifecycle.ts'
import { normalizeInboxEvents, OrderNotYetKnown } from '../../src/orders/normalize.job.ts'
import { createQueueSet, ingestJobId, syncJobId, type QueueSet } from '../../src/queue/queues.ts'
import { sweep } from '../../src/queue/sweeper.ts'
import { appendChanges, headOfFeed, readChanges, type Change } from '../../src/status/change-feed.ts'
import { engines, openTestDatabase, uniqueName, type TestDatabase } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'
import { testCredentials } from '../support/test-orderbridge.ts'

const specs = loadMappingSpecs()
// The demo's whole pipeline: stock reserved in the WMS, then the ERP order, every state change written back to the CRM.
const connections = createConnectionRegistry(
  demoConfig(testCredentials, { erpUrl: 'http://127.0.0.1:9', wmsUrl: 'http://127.0.0.1:9', crmUrl: 'http://127.0.0.1:9' }),
  connectors,
  createFileCatalog(specs),
)
const stepConnections = createLifecycle({ connections, notifications: { rules: [] } })
  .stepConnections()
  .map((c) => c.id)

const entry = (n: number, overrides: Partial<InboxEntry> = {}): InboxEntry => {
  const document = sampleOrder(n, `SO-S-${n}`)
  return { connectionId: 'demo-crm', eventId: `msg_${n}`, type: 'order.created', externalId: document.order_id, sourceVersion: 1, document, ...overrides }
}

describe.each(engines)('storage on %s', (engine) => {
  let t: TestDatabase
  let queues: QueueSet
  const prefix = uniqueName('test')
  beforeAll(async () => {
    t = await openTestDatabase(engine)
    queues = createQueueSet({ redisUrl, prefix, syncConnections: stepConnections })
  })
  afterAll(async () => {
    await queues?.close()
    await deleteQueueKeys(prefix)
    await t?.drop()
  })

  const write = (entries: InboxEntry[]) => {
    const inbox = createInboxWriter(t.db, async () => {})
    return Promise.all(entries.map((e) => inbox.write(e)))
  }
  const normalizeAll = (inboxIds: number[], options: { mappings?: MappingCatalog; lifecycle?: Lifecycle } = {}) =>
    normalizeInboxEvents(
      { db: t.db, connections, mappings: options.mappings ?? createFileCatalog(specs), lifecycle: options.lifecycle ?? createLifecycle({ connections, notifications: { rules: [] } }), notifications: { rules: [] }, log: console },
      inboxIds,
    )
  const normalize = async (inboxId: number, mappings?: MappingCatalog) => (await normalizeAll([inboxId], { mappings })).outcomes[0]!

  it('applies migrations once', async () => {
    expect(await migrate(t.db)).toEqual([])
  })

  it('commits concurrent deliveries together and answers a repeated event id with the first id', async () => {
    const entries = [...Array.from({ length: 40 }, (_, i) => entry(100 + i)), ...Array.from({ length: 10 }, (_, i) => entry(100 + i))]
    const outcomes = await write(entries)
    expect(outcomes.filter((o) => !o.duplicate)).toHaveLength(40)
    for (let i = 0; i < 10; i++) expect(outcomes[40 + i]).toEqual({ inboxId: outcomes[i]!.inboxId, duplicate: true })
    const later = await write([entry(100)])
    expect(later[0]).toEqual({ inboxId: outcomes[0]!.inboxId, duplicate: true })
    const [count] = await t.db.query<{ n: number }>(`select count(*)::int as n from inbox_events where event_id like 'msg_1__'`)
    expect(count!.n).toBe(40)
  })

  it('keeps the change feed gap-free while writers commit out of order and a poller reads between them', async () => {
    const start = await headOfFeed(t.db)
    const seen: Change[] = []
    let cursor = start
    const poll = async () => {
      const page = await readChanges(t.db, cursor, 7)
      seen.push(...page)
      cursor = page.at(-1)?.seq ?? cursor
    }
    let writing = true
    const poller = (async () => {
      while (writing) {
        await poll()
        await sleep(2)
      }
    })()
    // Each writer holds its transaction open for a while after appending, so transactions that took
    // later sequence numbers often commit first: the case a plain `seq > cursor` poll would skip.
    // Six lanes of writers leave pool connections free for the poller.
    await Promise.all(
      Array.from({ length: 6 }, async (_, lane) => {
        for (let i = lane; i < 30; i += 6) {
          await t.db.transaction(async (tx) => {
            await appendChanges(tx, [{ type: 'test.change', data: { i } }, { type: 'test.change', data: { i, second: true } }])
            await sleep((i * 7) % 20)
          })
        }
      }),
    )
    writing = false
    await poller
    for (let page = 0; page < 10; page++) await poll()

    expect(seen).toHaveLength(60)
    expect(new Set(seen.map((c) => c.seq)).size).toBe(60)
    // A transaction's changes stay together and in the order it wrote them.
    for (let k = 0; k < 60; k += 2) {
      expect(seen[k + 1]!.data).toEqual({ ...seen[k]!.data, second: true })
    }
    expect(await headOfFeed(t.db)).toBe(seen.at(-1)!.seq)
  })

  it('computes totals exactly and stores them as decimals', async () => {
    const document = { ...sampleOrder(200, 'SO-S-EXACT'), items: [{ product_code: 'A', qty: 3, price: '0.10' }, { product_code: 'B', qty: '1.5', price: '0.20' }] }
    const [o] = await write([entry(200, { document, externalId: 'SO-S-EXACT' })])
    const outcome = await normalize(o!.inboxId)
    expect(outcome.result).toBe('applied')
    const [row] = await t.db.query<{ total: string }>(`select total::text as total from orders where external_id = 'SO-S-EXACT'`)
    expect(row!.total).toBe('0.60')
  })

  it('applies versions in order: newer wins, older and repeated are skipped with the reason', async () => {
    const v = (version: number, n: number) => entry(300, { eventId: `msg_v${version}_${n}`, sourceVersion: version, document: { ...sampleOrder(300, 'SO-S-V'), version }, externalId: 'SO-S-V' })
    const [v1, v3, v2, v3again] = await write([v(1, 1), v(3, 1), v(2, 1), v(3, 2)])
    // v3 and v2 race for the same order; the row lock makes them apply one after the other.
    await normalize(v1!.inboxId)
    const results = await Promise.all([normalize(v3!.inboxId), normalize(v2!.inboxId)])
    expect(results.map((r) => r.result).sort()).toEqual(['applied', engine === 'pglite' ? 'stale' : expect.stringMatching(/applied|stale/)])
    expect((await normalize(v3again!.inboxId)).result).toBe('stale')
    const [order] = await t.db.query<{ source_version: number; id: string }>(`select id, source_version from orders where external_id = 'SO-S-V'`)
    expect(order!.source_version).toBe(3)
    const skipped = await t.db.query<{ detail: { reason: string } }>(`select detail from order_events where order_id = $1 and kind = 'stale_skipped'`, [order!.id])
    expect(skipped.map((s) => s.detail.reason)).toContain('repeated version')
  })

  it('applies the events of one commit together, and a job run twice at once applies each event once', async () => {
    const v = (order: number, version: number, delivery = 1) =>
      entry(600 + order, { eventId: `msg_run_${order}_v${version}_${delivery}`, sourceVersion: version, document: { ...sampleOrder(600 + order, `SO-S-R${order}`), version }, externalId: `SO-S-R${order}` })
    const written = await write([v(1, 1), v(2, 1), v(1, 2), v(3, 1), v(1, 2, 2)])
    const ids = written.map((w) => w.inboxId)
    const runs = await Promise.all([normalizeAll(ids), normalizeAll(ids)])
    const byEvent = ids.map((_, i) => runs.map((r) => r.outcomes[i]!.result).filter((result) => result !== 'already_done'))
    expect(byEvent).toEqual([['applied'], ['applied'], ['applied'], ['applied'], ['stale']])
    // Only the run that applied has steps to enqueue.
    expect(runs.filter((r) => r.work.jobs.length > 0)).toHaveLength(1)
    const orders = await t.db.query<{ external_id: string; source_version: number }>(`select external_id, source_version from orders where external_id like 'SO-S-R%' order by external_id`)
    expect(orders).toEqual([
      { external_id: 'SO-S-R1', source_version: 2 },
      { external_id: 'SO-S-R2', source_version: 1 },
      { external_id: 'SO-S-R3', source_version: 1 },
    ])
    const history = await t.db.query<{ kind: string }>(`select e.kind from order_events e join orders o on o.id = e.order_id where o.external_id = 'SO-S-R1' order by e.id`)
    expect(history.map((h) => h.kind)).toEqual(['received', 'transition', 'updated', 'stale_skipped'])
  })

  it('commits the events before a failing one and leaves the rest for the retry', async () => {
    const written = await write([entry(700), entry(701), entry(702)])
    const ids = written.map((w) => w.inboxId)
    const real = createLifecycle({ connections, notifications: { rules: [] } })
    // It fails in the run's transaction and again alone: the run is rolled back, then applied one by one.
    let failures = 2
    const flaky: Lifecycle = {
      ...real,
      async approvalsFor(db, order, activeVersion) {
        if (order.externalId === 'SO-S-701' && failures-- > 0) throw new Error('the approval rules could not be read')
        return real.approvalsFor(db, order, activeVersion)
      },
    }
    expect((await normalizeAll(ids, { lifecycle: flaky })).failure).toEqual(new Error('the approval rules could not be read'))
    const status = async () =>
      (await t.db.query<{ id: number; status: string }>('select id, status from inbox_events where id = any($1::bigint[]) order by id', [ids])).map((r) => r.status)
    expect(await status()).toEqual(['processed', 'pending', 'pending'])
    const retry = await normalizeAll(ids, { lifecycle: flaky })
    expect(retry.outcomes.map((o) => o.result)).toEqual(['already_done', 'applied', 'applied'])
    expect(await status()).toEqual(['processed', 'processed', 'processed'])
  })

  it('lets an event that overtook its order wait for it, and puts it in "needs attention" only when that order never comes', async () => {
    const approval = (n: number): InboxEntry => ({ connectionId: 'demo-crm', eventId: `msg_approval_${n}`, type: 'order.approval', externalId: `SO-S-${n}`, sourceVersion: 1, document: { decision: 'approve' } })
    const [early] = await write([approval(800)])
    expect((await normalizeAll([early!.inboxId])).failure).toEqual(new OrderNotYetKnown(`no order is known to demo-crm as SO-S-800 yet; event ${early!.inboxId} waits for it`))
    const [created] = await write([entry(800)])
    await normalizeAll([created!.inboxId])
    expect((await normalizeAll([early!.inboxId])).outcomes[0]!.result).not.toBe('needs_attention')

    const [orphan] = await write([approval(801)])
    await t.db.query(`update inbox_events set received_at = now() - interval '61 seconds' where id = $1`, [orphan!.inboxId])
    expect((await normalizeAll([orphan!.inboxId])).outcomes[0]).toEqual({ result: 'needs_attention', errors: ['no order is known to demo-crm as SO-S-801'] })
  })

  it('puts a document that does not map into "needs attention" with field-level errors', async () => {
    const strict = createFileCatalog(
      specs.map((s) => (s.id === 'demo-crm.to-canonical.order' ? { ...s, fields: [...s.fields, { to: 'region', from: 'region', required: true, fallback: 'error' as const, transform: [] }] } : s)),
    )
    const [o] = await write([entry(400)])
    expect(await normalize(o!.inboxId, strict)).toEqual({ result: 'needs_attention', errors: ['region: is required (from region)'] })
    const [row] = await t.db.query<{ status: string; errors: string[] }>('select status, errors from inbox_events where id = $1', [o!.inboxId])
    expect(row).toEqual({ status: 'needs_attention', errors: ['region: is required (from region)'] })
  })

  it('re-enqueues committed work that has no job (Redis flushed, or a crash before enqueue)', async () => {
    const [pending] = await write([entry(500)])
    const [applied] = await write([entry(501)])
    const { outcomes, work } = await normalizeAll([applied!.inboxId])
    expect(outcomes[0]!.result).toBe('applied')
    await deleteQueueKeys(prefix) // as FLUSHALL would
    const result = await sweep(t.db, queues, { graceSeconds: 0 })
    expect(result.inbox).toBeGreaterThanOrEqual(1)
    expect(await queues.ingest.getJob(ingestJobId([pending!.inboxId]))).toBeTruthy()
    // An approved order asks for its stock reservation and tells the CRM; the ERP step follows the reservation.
    const { jobs } = work
    expect(jobs.map((j) => `${j.connectionId} ${j.operation}`).sort()).toEqual(['demo-crm crm.status', 'demo-wms inventory.reserve'])
    expect(result.sync).toBeGreaterThanOrEqual(jobs.length)
    for (const job of jobs) expect(await queues.sync(job.connectionId).getJob(syncJobId(job)), `${job.connectionId} ${job.operation}`).toBeTruthy()
    // A second sweep finds the jobs there and adds nothing twice.
    const waitingSync = async () => (await Promise.all(stepConnections.map((id) => queues.sync(id).getJobCountByTypes('waiting')))).reduce((a, b) => a + b, 0)
    expect(await waitingSync()).toBe(result.sync)
    await sweep(t.db, queues, { graceSeconds: 0 })
    expect(await queues.ingest.getJobCountByTypes('waiting')).toBe(result.inbox)
    expect(await waitingSync()).toBe(result.sync)
  })
})
