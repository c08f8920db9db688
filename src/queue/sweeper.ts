/**
 * Redis is transport only: this finds work the database says is committed but not done and makes
 * sure a job exists for it (after a Redis flush, or an API that died between commit and enqueue).
 */
import type { Logger } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import { reservingStates } from '../orders/order-state.ts'
import { ensureJob, ingestJobId, syncJobId, type QueueSet } from './queues.ts'

export interface SweepResult {
  inbox: number
  sync: number
}

/** Work younger than this is left alone: its own job is most likely about to run. */
const graceSeconds = 5
/** How often an order on hold for stock re-checks it when no stock event arrives. */
const holdRecheckSeconds = 60

export async function sweep(db: Database, queues: QueueSet, options: { graceSeconds?: number; holdRecheckSeconds?: number } = {}): Promise<SweepResult> {
  const grace = options.graceSeconds ?? graceSeconds
  const inbox = await db.query<{ id: number }>(
    `select id from inbox_events where status = 'pending' and received_at < now() - make_interval(secs => $1) order by id limit 5000`,
    [grace],
  )
  for (const { id } of inbox) await ensureJob(queues.ingest, 'normalize', { inboxIds: [id], correlationId: `sweep-inbox-${id}` }, ingestJobId([id]))
  // Orders held for stock, and backorders, try again now and then, in case no stock event comes; only while they
  // still want the stock: in any other state the step would skip, leaving the link pending for every sweep.
  await db.query(
    `update links l set status = 'pending', updated_at = now() - make_interval(secs => $1)
     from orders o
     where o.id = l.order_id and o.state = any($3::text[]) and l.updated_at < now() - make_interval(secs => $2)
       and (l.status = 'held' or (l.status = 'synced' and l.operation = 'inventory.reserve' and jsonb_array_length(coalesce(o.hold -> 'backordered', '[]')) > 0))`,
    [grace, options.holdRecheckSeconds ?? holdRecheckSeconds, reservingStates],
  )
  const links = await db.query<{ order_id: string; connection_id: string; operation: string; version: number }>(
    `select l.order_id, l.connection_id, l.operation, coalesce(l.target_version, o.source_version) as version from links l join orders o on o.id = l.order_id
     where l.status in ('pending', 'retrying') and (l.lease_until is null or l.lease_until < now())
       and l.updated_at <= now() - make_interval(secs => $1)
     order by l.updated_at limit 5000`,
    [grace],
  )
  for (const l of links) {
    const job = { orderId: l.order_id, connectionId: l.connection_id, operation: l.operation, sourceVersion: l.version }
    await ensureJob(queues.sync(l.connection_id), l.operation, { ...job, correlationId: `sweep-${l.order_id}` }, syncJobId(job))
  }
  return { inbox: inbox.length, sync: links.length }
}

/** `also`: further sweeps that run on the same schedule (e.g. stock pushes). */
export function startSweeper(db: Database, queues: QueueSet, log: Logger, intervalMs: number, also: readonly (() => Promise<unknown>)[] = []): { stop(): Promise<void> } {
  let running: Promise<void> | undefined
  const run = () => {
    running ??= Promise.all(also.map((s) => s()))
      .then(() => sweep(db, queues))
      .then((r) => {
        if (r.inbox || r.sync) log.info({ ...r }, 'sweeper re-enqueued committed work')
      })
      .catch((err) => log.warn({ err }, 'sweep failed; will try again'))
      .finally(() => (running = undefined))
  }
  run()
  const timer = setInterval(run, intervalMs)
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
