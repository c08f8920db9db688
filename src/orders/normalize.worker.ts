import { Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../connector-kit/index.ts'
import { ingestJobSchema, ingestQueueName, syncJobId, type IngestJob, type QueueSet, type SyncJob } from '../queue/queues.ts'
import { normalizeInboxEvents, type NormalizeDeps } from './normalize.job.ts'

/**
 * Runs normalize for each inbox event of a job, one after the other (jobs run in parallel), then
 * enqueues the sync steps they committed. A retried job skips the events already done.
 */
export function startNormalizeWorker(deps: NormalizeDeps & { queues: QueueSet; log: Logger }, options: { redis: Redis; concurrency: number }): Worker<IngestJob> {
  const worker = new Worker<IngestJob>(
    ingestQueueName,
    async (job: Job<IngestJob>) => {
      const { inboxIds, correlationId } = ingestJobSchema.parse(job.data)
      const results: Record<string, number> = {}
      const steps = new Map<string, SyncJob[]>()
      const outcomes = await normalizeInboxEvents(deps, inboxIds)
      for (const [i, outcome] of outcomes.entries()) {
        const inboxId = inboxIds[i]
        results[outcome.result] = (results[outcome.result] ?? 0) + 1
        if (outcome.result === 'applied') {
          for (const step of outcome.syncJobs) steps.set(step.connectionId, [...(steps.get(step.connectionId) ?? []), { ...step, correlationId }])
        }
        if (outcome.result === 'needs_attention') deps.log.warn({ correlationId, inboxId, errors: outcome.errors.length }, 'event needs attention')
      }
      // Committed already: if this enqueue is lost, the sweeper finds the links pending.
      for (const [connectionId, jobs] of steps) {
        await deps.queues.sync(connectionId).addBulk(jobs.map((data) => ({ name: data.operation, data, opts: { jobId: syncJobId(data) } })))
      }
      return results
    },
    { connection: options.redis.duplicate(), prefix: deps.queues.prefix, concurrency: options.concurrency },
  )
  worker.on('error', (err) => deps.log.error({ err }, 'normalize worker error'))
  return worker
}
