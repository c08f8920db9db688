/**
 * Polls sources that have no change webhook (a connector's `poll` capability): one repeatable
 * BullMQ job per polling connection, at the interval its settings give. Each page of changes is
 * written to the inbox through the inbox writer, exactly like webhook deliveries (deduplicated per
 * event id), and the connection's cursor in `poll_cursors` is moved only after that commit, with a
 * compare-and-set. So the cursor is never ahead of what is durable: a crash between the two only
 * reads the page again, and the inbox answers its events as duplicates.
 *
 * It must not: call a connector while a transaction is open, or keep anything in memory that another
 * process needs (the cursor lives in the database, the lock in Redis).
 */
import { randomBytes } from 'node:crypto'
import { Queue, Worker, type Job } from 'bullmq'
import { z } from 'zod'
import type { Connection } from '../connections/connection-registry.ts'
import type { ConnectorContext, InboundEvent, Logger } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import { createInboxWriter, type InboxWriter } from '../ingest/inbox-writer.ts'
import { ingestJobId, type QueueSet } from '../queue/queues.ts'
import { canonicalJson } from '../shared/canonical-json.ts'

export const pollQueueName = 'poll'
export const pollJobName = 'poll'
/** The job scheduler of one connection; no `:` (BullMQ job ids). */
export const pollSchedulerId = (connectionId: string) => `poll-${connectionId}`

export const pollJobSchema = z.object({ connectionId: z.string().min(1), correlationId: z.string() })
export type PollJob = z.infer<typeof pollJobSchema>

/** What the poller needs of a connection. */
export type PollingConnection = Pick<Connection, 'id' | 'connector' | 'settings' | 'secrets'>

export const defaultPageSize = 100
/** Pages one job reads at most; the rest waits for the next interval (other connections get their turn). */
export const defaultMaxPagesPerRun = 50

export interface PollRunOptions {
  pageSize?: number
  maxPages?: number
}

export interface PollRunResult {
  connectionId: string
  pages: number
  /** Events read from the source. */
  read: number
  /** New inbox rows. */
  written: number
  /** Events the inbox already held (a page read again). */
  duplicates: number
  /** Events whose document equals the latest one stored for that order (e.g. only our writeback changed it). */
  unchanged: number
  cursor: string | null
  /** `moved`: another poller moved the cursor first, so this run stopped (its writes were harmless duplicates). */
  stopped?: 'moved'
}

/** The connections that poll, with their intervals; a connection whose settings give no interval does not poll. */
export function pollingConnections(connections: readonly PollingConnection[]): { connection: PollingConnection; intervalMs: number }[] {
  return connections.flatMap((connection) => {
    const intervalMs = connection.connector.poll?.intervalMs(connection.settings)
    return intervalMs !== undefined && intervalMs > 0 ? [{ connection, intervalMs }] : []
  })
}

export async function readCursor(db: Database, connectionId: string, resource: string): Promise<string | null> {
  const [row] = await db.query<{ cursor: string | null }>('select cursor from poll_cursors where connection_id = $1 and resource = $2', [connectionId, resource])
  return row?.cursor ?? null
}

/**
 * Reads changes page by page until the source says there are no more (or `maxPages`). Every page is
 * durable in the inbox before the cursor moves past it.
 */
export async function pollOnce(deps: { db: Database; inbox: InboxWriter; log: Logger }, connection: PollingConnection, options: PollRunOptions = {}): Promise<PollRunResult> {
  const poll = connection.connector.poll
  if (!poll) throw new Error(`connector ${connection.connector.manifest.id} cannot be polled`)
  const { db, inbox, log } = deps
  const pageSize = options.pageSize ?? defaultPageSize
  const maxPages = options.maxPages ?? defaultMaxPagesPerRun
  const ctx: ConnectorContext = { connectionId: connection.id, settings: connection.settings, secrets: connection.secrets, log }
  await db.query('insert into poll_cursors (connection_id, resource) values ($1, $2) on conflict (connection_id, resource) do nothing', [connection.id, poll.resource])
  let cursor = await readCursor(db, connection.id, poll.resource)
  const result: PollRunResult = { connectionId: connection.id, pages: 0, read: 0, written: 0, duplicates: 0, unchanged: 0, cursor }
  while (result.pages < maxPages) {
    const changes = await poll.fetchChanges(ctx, cursor, pageSize)
    result.pages += 1
    result.read += changes.events.length
    const fresh = await withoutUnchanged(db, connection.id, changes.events)
    result.unchanged += changes.events.length - fresh.length
    // The writer answers only after its batch has committed: when these resolve, the page is durable.
    const outcomes = await Promise.all(
      fresh.map((event) =>
        inbox.write({ connectionId: connection.id, eventId: event.eventId, type: event.type, externalId: event.externalId, sourceVersion: event.sourceVersion, document: event.document }),
      ),
    )
    result.duplicates += outcomes.filter((o) => o.duplicate).length
    result.written += outcomes.filter((o) => !o.duplicate).length
    const moved = await db.query(
      `update poll_cursors set cursor = $3, updated_at = now()
       where connection_id = $1 and resource = $2 and cursor is not distinct from $4 returning 1`,
      [connection.id, poll.resource, changes.nextCursor, cursor],
    )
    if (!moved.length) {
      log.warn({ connectionId: connection.id, resource: poll.resource }, 'another poller moved the cursor; this run stops')
      return { ...result, stopped: 'moved' }
    }
    cursor = changes.nextCursor
    result.cursor = cursor
    if (!changes.more) break
  }
  return result
}

/**
 * Drops events whose document (and kind: an order version, or a cancellation) equal the latest stored
 * for the same order. Polling reads
 * every change of a record's modification time, including the ones our own writeback makes; those
 * carry nothing new, and taking them as new versions would make every writeback come back as an
 * update (and, through the targets, another writeback).
 */
async function withoutUnchanged<E extends InboundEvent & { eventId: string }>(db: Database, connectionId: string, events: readonly E[]): Promise<E[]> {
  const ids = [...new Set(events.map((e) => e.externalId).filter((id) => id !== ''))]
  if (!ids.length) return [...events]
  const latest = await db.query<{ external_id: string; event_type: string; document: unknown }>(
    `select distinct on (external_id) external_id, event_type, document from inbox_events
     where connection_id = $1 and external_id = any($2::text[]) order by external_id, id desc`,
    [connectionId, ids],
  )
  // Created and updated both say "the order is now this"; a first poll of an old order sees a creation.
  const kind = (type: string) => (type === 'order.created' || type === 'order.updated' ? 'order' : type)
  const stored = new Map(latest.map((r) => [r.external_id, `${kind(r.event_type)}\u0000${canonicalJson(r.document)}`]))
  return events.filter((e) => e.externalId === '' || stored.get(e.externalId) !== `${kind(e.type)}\u0000${canonicalJson(e.document)}`)
}

export interface PollerDeps {
  db: Database
  queues: QueueSet
  connections: { all(): readonly PollingConnection[] }
  log: Logger
  pageSize?: number
  maxPagesPerRun?: number
  /** How many connections one process polls at once (default: up to 4). */
  concurrency?: number
}

export interface Pollers {
  queue: Queue<PollJob>
  /** Resolves once every polling connection's job scheduler is in place (and stale ones removed). */
  ready: Promise<void>
  /** The connections that poll, with their intervals. */
  scheduled: { connectionId: string; intervalMs: number }[]
  /** Polls one connection now (the job the scheduler runs), e.g. from tests or an admin action. */
  runNow(connectionId: string): Promise<PollRunResult | 'busy'>
  close(): Promise<void>
}

// Releases the lock only if it is still ours: a run that outlived its lease must not free another's.
const releaseScript = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`

/**
 * Starts the poll queue's worker and one job scheduler per polling connection (removing schedulers
 * of connections that no longer poll). One run per connection at a time, across processes: a run
 * takes a lease in Redis, and a run that finds it taken skips its turn.
 *
 * @example
 * const pollers = startPollers({ db, queues, connections, log })
 * // at shutdown
 * await pollers.close()
 */
export function startPollers(deps: PollerDeps): Pollers {
  const { db, queues, log } = deps
  const polling = pollingConnections(deps.connections.all())
  const byId = new Map(polling.map((p) => [p.connection.id, p]))
  const queue = new Queue<PollJob>(pollQueueName, {
    connection: queues.redis,
    prefix: queues.prefix,
    // A failed run is not retried: the next interval is the retry.
    defaultJobOptions: { attempts: 1, removeOnComplete: { count: 200 }, removeOnFail: { count: 200 } },
  })
  const inbox = createInboxWriter(db, (ids) =>
    // Committed already; if this enqueue is lost, the sweeper re-enqueues from the inbox.
    queues.ingest.add('normalize', { inboxIds: ids, correlationId: ingestJobId(ids) }, { jobId: ingestJobId(ids) }).then(
      () => {},
      (err: unknown) => log.warn({ err, count: ids.length }, 'enqueue after commit failed; the sweeper will pick these up'),
    ),
  )

  async function run(connectionId: string): Promise<PollRunResult | 'busy'> {
    const entry = byId.get(connectionId)
    if (!entry) throw new Error(`connection ${connectionId} does not poll`)
    const lockKey = `${queues.prefix}:poll-lock:${connectionId}`
    const token = randomBytes(12).toString('hex')
    const leaseMs = Math.max(60_000, entry.intervalMs * 2)
    if ((await queues.redis.set(lockKey, token, 'PX', leaseMs, 'NX')) !== 'OK') return 'busy'
    const ctx = { connectionId, settings: entry.connection.settings, secrets: entry.connection.secrets, log }
    try {
      const result = await pollOnce({ db, inbox, log }, entry.connection, { pageSize: deps.pageSize, maxPages: deps.maxPagesPerRun })
      if (result.written || result.stopped) log.info({ ...result }, 'polled changes')
      return result
    } catch (err) {
      const failure = entry.connection.connector.classify(err, ctx)
      log.warn({ connectionId, kind: failure.kind, err }, 'poll failed; the next interval tries again')
      // The job shows the safe message; the raw error was logged.
      throw new Error(`${failure.kind}: ${failure.message}`, { cause: err })
    } finally {
      await queues.redis.eval(releaseScript, 1, lockKey, token).catch(() => {})
    }
  }

  const worker = new Worker<PollJob>(
    pollQueueName,
    async (job: Job<PollJob>) => {
      const { connectionId } = pollJobSchema.parse(job.data)
      return run(connectionId)
    },
    { connection: queues.redis.duplicate(), prefix: queues.prefix, concurrency: deps.concurrency ?? Math.max(1, Math.min(4, polling.length)) },
  )
  worker.on('error', (err) => log.error({ err }, 'poll worker error'))

  async function schedule(): Promise<void> {
    for (const scheduler of await queue.getJobSchedulers()) {
      if (scheduler.key && !polling.some((p) => pollSchedulerId(p.connection.id) === scheduler.key)) await queue.removeJobScheduler(scheduler.key)
    }
    for (const { connection, intervalMs } of polling) {
      await queue.upsertJobScheduler(pollSchedulerId(connection.id), { every: intervalMs }, { name: pollJobName, data: { connectionId: connection.id, correlationId: pollSchedulerId(connection.id) } })
    }
  }
  // Every start does this again, so a Redis that lost its schedulers gets them back at the next start.
  const ready = schedule().catch((err: unknown) => {
    log.error({ err }, 'could not schedule the pollers; polling waits for the next start')
  })

  return {
    queue,
    ready,
    scheduled: polling.map((p) => ({ connectionId: p.connection.id, intervalMs: p.intervalMs })),
    runNow: run,
    async close() {
      await ready
      await worker.close()
      await inbox.drain()
      await queue.close()
    },
  }
}
