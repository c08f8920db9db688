import { Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../connector-kit/index.ts'
import { ingestJobSchema, ingestQueueName, type IngestJob, type QueueSet } from '../queue/queues.ts'
import { normalizeInboxEvents, type NormalizeDeps } from './normalize.job.ts'

/**
 * Runs normalize for each inbox event of a job, one after the other (jobs run in parallel), then
 * enqueues the steps and reminders they committed. A retried job skips the events already done.
 */
export function startNormalizeWorker(deps: NormalizeDeps & { queues: QueueSet }, options: { redis: Redis; concurrency: number }): Worker<IngestJob> {
  const worker = new Worker<IngestJob>(
    ingestQueueName,
    async (job: Job<IngestJob>) => {
      const { inboxIds, correlationId } = ingestJobSchema.parse(job.data)
      const results: Record<string, number> = {}
      const { outcomes, work, failure } = await normalizeInboxEvents(deps, inboxIds)
      outcomes.forEach((outcome, i) => {
        results[outcome.result] = (results[outcome.result] ?? 0) + 1
        if (outcome.result === 'needs_attention') deps.log.warn({ correlationId, inboxId: inboxIds[i], errors: outcome.errors.length }, 'event needs attention')
      })
      // Committed already: if this enqueue is lost, the sweepers find the links pending and the reminders scheduled.
      await deps.lifecycle.dispatch(work, correlationId)
      // The events after a failed one wait for the job's retry; those before it are on their way.
      if (failure) {
        deps.log.warn({ correlationId, err: failure }, 'normalize stopped before the last event; the job will retry')
        throw failure
      }
      return results
    },
    { connection: options.redis.duplicate(), prefix: deps.queues.prefix, concurrency: options.concurrency },
  )
  worker.on('error', (err) => deps.log.error({ err }, 'normalize worker error'))
  return worker
}
