/**
 * Stock levels flow back to the CRM, so sales see stock when they quote. The inventory system's
 * `stock.changed` events are recorded in `stock_levels`; a push job per CRM and inventory connection,
 * debounced (one job id, delayed), sends every level that CRM was not told yet through
 * `pushStockLevels`; `stock_pushes` records what each CRM was told. A level that changes while its
 * push runs goes out in a push right after it. The tables are the record: a lost job is re-created
 * by the sweep.
 */
import { Queue, UnrecoverableError, Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Logger } from '../connector-kit/index.ts'
import type { Database, Queryable } from '../db/database.ts'
import { ensureJob } from '../queue/queues.ts'

export const stockPushQueueName = 'stock-push'
/** Changes within this window go out together. */
export const stockPushDebounceMs = 2_000

export interface StockPushJob {
  crmConnectionId: string
  inventoryConnectionId: string
}

/** One id per CRM and inventory connection: a change finding the push waiting goes out with it. */
export const stockPushJobId = (job: StockPushJob) => `stock-push-${job.crmConnectionId}-${job.inventoryConnectionId}`

/** CRM connections that take stock levels. */
export function stockReceivers(connections: ConnectionRegistry): Connection[] {
  return connections.all().filter((c) => c.connector.crm?.pushStockLevels && (c.connector.crm.enabled?.(c.settings) ?? true))
}

/** Records reported levels inside the caller's transaction. */
export async function recordStockLevels(tx: Queryable, inventoryConnectionId: string, levels: readonly { sku: string; available: string }[]): Promise<void> {
  if (!levels.length) return
  await tx.query(
    `insert into stock_levels (connection_id, sku, available) select $1, sku, available from unnest($2::text[], $3::numeric[]) as l(sku, available)
     on conflict (connection_id, sku) do update set available = excluded.available, updated_at = now()`,
    [inventoryConnectionId, levels.map((l) => l.sku), levels.map((l) => l.available)],
  )
}

export function createStockPushQueue(redis: Redis, prefix: string): Queue<StockPushJob> {
  return new Queue<StockPushJob>(stockPushQueueName, {
    connection: redis,
    prefix,
    // Every push waits out the debounce window, so changes within it find it waiting. A failed push
    // stays a day for the dashboard; the next change replaces it (requestStockPush).
    defaultJobOptions: { delay: stockPushDebounceMs, attempts: 8, backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 }, removeOnComplete: true, removeOnFail: { age: 24 * 3600 } },
  })
}

/**
 * After commit: one delayed push per receiver. A push already waiting takes these changes too; one
 * running leaves them to the push after it (see the worker); a finished one is replaced.
 */
export async function requestStockPush(queue: Queue<StockPushJob>, receivers: readonly Connection[], inventoryConnectionId: string): Promise<void> {
  for (const crm of receivers) {
    const job = { crmConnectionId: crm.id, inventoryConnectionId }
    await ensureJob(queue, 'push', job, stockPushJobId(job))
  }
}

/** Re-creates pushes for levels that changed but never went out (after a Redis flush). */
export async function sweepStockPushes(db: Queryable, queue: Queue<StockPushJob>, connections: ConnectionRegistry): Promise<number> {
  let requested = 0
  for (const receiver of stockReceivers(connections)) {
    const pending = await db.query<{ connection_id: string }>(
      `select distinct s.connection_id from stock_levels s ${unpushedFor('$1')} and s.updated_at < now() - interval '10 seconds'`,
      [receiver.id],
    )
    for (const row of pending) await requestStockPush(queue, [receiver], row.connection_id)
    requested += pending.length
  }
  return requested
}

/** Levels the receiver (`param`) was not told, or was told another value of: joined onto `stock_levels s`. */
const unpushedFor = (param: string) =>
  `left join stock_pushes p on p.receiver_id = ${param} and p.connection_id = s.connection_id and p.sku = s.sku where (p.sku is null or p.available <> s.available)`

export function startStockPushWorker(deps: { db: Database; connections: ConnectionRegistry; queue: Queue<StockPushJob>; log: Logger }, options: { redis: Redis; prefix: string }): Worker<StockPushJob> {
  const worker = new Worker<StockPushJob>(
    stockPushQueueName,
    async (job) => {
      const crm = deps.connections.get(job.data.crmConnectionId)
      const push = crm?.connector.crm?.pushStockLevels
      if (!crm || !push) return { pushed: 0 }
      const levels = await deps.db.query<{ sku: string; available: string }>(
        `select s.sku, s.available::text as available from stock_levels s ${unpushedFor('$2')} and s.connection_id = $1 order by s.sku`,
        [job.data.inventoryConnectionId, crm.id],
      )
      if (!levels.length) return { pushed: 0 }
      const ctx = { connectionId: crm.id, settings: crm.settings, secrets: crm.secrets, log: deps.log, idempotencyKey: `${job.id}-${job.timestamp}-${job.attemptsMade}`, reference: job.data.inventoryConnectionId, mayHaveWritten: true }
      try {
        await push(ctx, levels)
      } catch (err) {
        const failure = crm.connector.classify(err, ctx)
        deps.log.warn({ connectorId: crm.id, kind: failure.kind, err }, 'stock push failed')
        // Trying again would be refused again; the next change asks for a new push.
        if (!failure.retryable) throw new UnrecoverableError(`${failure.kind}: ${failure.message}`)
        throw failure
      }
      // What was sent, as it was read: a level that changed during the push differs, so stays unpushed.
      await deps.db.query(
        `insert into stock_pushes (receiver_id, connection_id, sku, available) select $1, $2, sku, available from unnest($3::text[], $4::numeric[]) as r(sku, available)
         on conflict (receiver_id, connection_id, sku) do update set available = excluded.available, pushed_at = now()`,
        [crm.id, job.data.inventoryConnectionId, levels.map((l) => l.sku), levels.map((l) => l.available)],
      )
      return { pushed: levels.length }
    },
    { connection: options.redis.duplicate(), prefix: options.prefix, concurrency: 2 },
  )
  // A change committed while the push ran found its job active and added none, and a job cannot
  // add its own id. Once it is gone, whatever is still unpushed gets the next push.
  worker.on('completed', (job) => {
    const receiver = stockReceivers(deps.connections).find((c) => c.id === job.data.crmConnectionId)
    if (!receiver) return
    hasUnpushedLevels(deps.db, receiver.id, job.data.inventoryConnectionId)
      .then((unpushed) => (unpushed ? requestStockPush(deps.queue, [receiver], job.data.inventoryConnectionId) : undefined))
      .catch((err) => deps.log.warn({ err, connectorId: receiver.id }, 'could not ask for the next stock push; the sweep will'))
  })
  worker.on('error', (err) => deps.log.error({ err }, 'stock push worker error'))
  return worker
}

async function hasUnpushedLevels(db: Queryable, receiverId: string, inventoryConnectionId: string): Promise<boolean> {
  const rows = await db.query(`select 1 from stock_levels s ${unpushedFor('$2')} and s.connection_id = $1 limit 1`, [inventoryConnectionId, receiverId])
  return rows.length > 0
}
