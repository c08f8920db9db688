/**
 * Stock levels flow back to the CRM, so sales see stock when they quote. The inventory system's
 * `stock.changed` events are recorded in `stock_levels`; a push job per CRM and inventory connection,
 * debounced (one job id, delayed), sends every level not pushed yet through `pushStockLevels`. A
 * level that changes while its push runs goes out in a push right after it. The table is the
 * record: a lost job is re-created by the sweep.
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

/**
 * Records reported levels inside the caller's transaction, as not pushed yet. `pushed_at` is
 * cleared rather than compared with `updated_at`: that is the transaction's start, which can be
 * earlier than a push that ran while it was open.
 */
export async function recordStockLevels(tx: Queryable, inventoryConnectionId: string, levels: readonly { sku: string; available: string }[]): Promise<void> {
  if (!levels.length) return
  await tx.query(
    `insert into stock_levels (connection_id, sku, available) select $1, sku, available from unnest($2::text[], $3::numeric[]) as l(sku, available)
     on conflict (connection_id, sku) do update set available = excluded.available, updated_at = now(), pushed_at = null`,
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
  const pending = await db.query<{ connection_id: string }>(
    `select distinct connection_id from stock_levels where (pushed_at is null or pushed_at < updated_at) and updated_at < now() - interval '10 seconds'`,
  )
  for (const row of pending) await requestStockPush(queue, stockReceivers(connections), row.connection_id)
  return pending.length
}

export function startStockPushWorker(deps: { db: Database; connections: ConnectionRegistry; queue: Queue<StockPushJob>; log: Logger }, options: { redis: Redis; prefix: string }): Worker<StockPushJob> {
  const worker = new Worker<StockPushJob>(
    stockPushQueueName,
    async (job) => {
      const crm = deps.connections.get(job.data.crmConnectionId)
      const push = crm?.connector.crm?.pushStockLevels
      if (!crm || !push) return { pushed: 0 }
      const levels = await deps.db.query<{ sku: string; available: string }>(
        `select sku, available::text as available from stock_levels where connection_id = $1 and (pushed_at is null or pushed_at < updated_at) order by sku`,
        [job.data.inventoryConnectionId],
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
      // Only the levels as they were read: one that changed during the push stays unpushed.
      await deps.db.query(
        `update stock_levels s set pushed_at = now() from unnest($2::text[], $3::numeric[]) as r(sku, available)
         where s.connection_id = $1 and s.sku = r.sku and s.available = r.available`,
        [job.data.inventoryConnectionId, levels.map((l) => l.sku), levels.map((l) => l.available)],
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
    hasUnpushedLevels(deps.db, job.data.inventoryConnectionId)
      .then((unpushed) => (unpushed ? requestStockPush(deps.queue, [receiver], job.data.inventoryConnectionId) : undefined))
      .catch((err) => deps.log.warn({ err, connectorId: receiver.id }, 'could not ask for the next stock push; the sweep will'))
  })
  worker.on('error', (err) => deps.log.error({ err }, 'stock push worker error'))
  return worker
}

async function hasUnpushedLevels(db: Queryable, inventoryConnectionId: string): Promise<boolean> {
  const rows = await db.query(`select 1 from stock_levels where connection_id = $1 and (pushed_at is null or pushed_at < updated_at) limit 1`, [inventoryConnectionId])
  return rows.length > 0
}
