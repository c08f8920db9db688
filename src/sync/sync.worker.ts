/**
 * The one place where failure kinds become queue terms: conflicts and Retry-After wait without
 * using an attempt, other retryable failures back off, permanent ones stop at once.
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import { isSyncFailure } from '../connector-kit/index.ts'
import { syncJobSchema, syncQueueName, type SyncJob } from '../queue/queues.ts'
import { upsertSalesOrder, type SyncDeps } from './upsert-sales-order.step.ts'

const conflictDelayMs = 500
/** Waits (conflicts, Retry-After) use no attempt; this bounds them so a remote can't keep a job forever. */
export const maxWaits = 100

export function startSyncWorker(deps: SyncDeps, options: { connectionId: string; concurrency: number; redis: Redis; prefix: string }): Worker<SyncJob> {
  const worker = new Worker<SyncJob>(
    syncQueueName(options.connectionId),
    async (job: Job<SyncJob>, token?: string) => {
      const data = syncJobSchema.parse(job.data)
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      try {
        return await upsertSalesOrder(deps, { job: data, runId: `${job.id}-${job.attemptsMade}-${token ?? ''}`, lastTry })
      } catch (err) {
        if (!isSyncFailure(err)) throw err
        const waits = data.waits ?? 0
        const waitMs = err.kind === 'conflict' ? conflictDelayMs + Math.floor(Math.random() * conflictDelayMs) : err.retryable ? err.details.retryAfterMs : undefined
        if (waitMs !== undefined && token && waits < maxWaits) {
          await job.updateData({ ...data, waits: waits + 1 })
          await job.moveToDelayed(Date.now() + waitMs, token)
          throw new DelayedError()
        }
        if (!err.retryable) throw new UnrecoverableError(`${err.kind}: ${err.message}`)
        throw err
      }
    },
    { connection: options.redis.duplicate(), prefix: options.prefix, concurrency: options.concurrency },
  )
  worker.on('error', (err) => deps.log.error({ err, connectorId: options.connectionId }, 'sync worker error'))
  return worker
}
