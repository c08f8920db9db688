/**
 * Stock levels flow back to the CRM, so sales see stock when they quote. The inventory system's
 * `stock.changed` events are recorded in `stock_levels`; a push job per CRM connection, debounced
 * (one job id, delayed), sends every level changed since the last push through `pushStockLevels`.
 * The table is the record: a lost job is re-created by the sweep.
 */
import { Queue, Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Logger } from '../connector-kit/index.ts'
import type { Database, Queryable } from '../db/database.ts'

export const stockPushQueueName = 'stock-push'
/** Changes within this window go out together. */
export const stockPushDebounceMs = 2_000

export interface StockPushJob {
  crmConnectionId: string
  inventoryConnectionId: string
}

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
    // Removed when done, so the next change can schedule the same job id again.
    defaultJobOptions: { attempts: 8, backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 }, removeOnComplete: true, removeOnFail: { age: 24 * 3600 } },
  })
}

/** After commit: one delayed push per receiver; a push already waiting takes these changes too. */
export async function requestStockPush(queue: Queue<StockPushJob>, receivers: readonly Connection[], inventoryConnectionId: string): Promise<void> {
  for (const crm of receivers) {
    await queue.add('push', { crmConnectionId: crm.id, inventoryConnectionId }, { jobId: `stock-push-${crm.id}-${inventoryConnectionId}`, delay: stockPushDebounceMs })
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

export function startStockPushWorker(deps: { db: Database; connections: ConnectionRegistry; log: Logger }, options: { redis: Redis; prefix: string }): Worker<StockPushJob> {
  const worker = new Worker<StockPushJob>(
    stockPushQueueName,
    async (job) => {
      const crm = deps.connections.get(job.data.crmConnectionId)
      const push = crm?.connector.crm?.pushStockLevels
      if (!crm || !push) return { pushed: 0 }
      const [{ now }] = (await deps.db.query<{ now: Date }>('select now() as now')) as [{ now: Date }]
      const levels = await deps.db.query<{ sku: string; available: string }>(
        `select sku, available::text as available from stock_levels where connection_id = $1 and (pushed_at is null or pushed_at < updated_at) order by sku`,
        [job.data.inventoryConnectionId],
      )
      if (!levels.length) return { pushed: 0 }
      const ctx = { connectionId: crm.id, settings: crm.settings, secrets: crm.secrets, log: deps.log, idempotencyKey: `stock-${job.data.inventoryConnectionId}-${now.getTime()}`, reference: job.data.inventoryConnectionId, mayHaveWritten: true }
      try {
        await push(ctx, levels)
      } catch (err) {
        const failure = crm.connector.classify(err, ctx)
        deps.log.warn({ connectorId: crm.id, kind: failure.kind, err }, 'stock push failed')
        throw failure
      }
      // Only what was read: a level that changed during the push goes out next time.
      await deps.db.query(`update stock_levels set pushed_at = $3 where connection_id = $1 and sku = any($2::text[]) and updated_at <= $3`, [job.data.inventoryConnectionId, levels.map((l) => l.sku), now])
      return { pushed: levels.length }
    },
    { connection: options.redis.duplicate(), prefix: options.prefix, concurrency: 2 },
  )
  worker.on('error', (err) => deps.log.error({ err }, 'stock push worker error'))
  return worker
}
