import { Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../connector-kit/index.ts'
import { ingestJobSchema, ingestQueueName, syncJobId, type IngestJob, type QueueSet } from '../queue/queues.ts'
import { normalizeInboxEvent, type NormalizeDeps } from './normalize.job.ts'

/** Runs normalize for each inbox event, then enqueues the sync steps it committed. */
export function startNormalizeWorker(deps: NormalizeDeps & { queues: QueueSet; log: Logger }, options: { redis: Redis; concurrency: number }): Worker<IngestJob> {
  const worker = new Worker<IngestJob>(
    ingestQueueName,
    async (job: Job<IngestJob>) => {
      const { inboxId, correlationId } = ingestJobSchema.parse(job.data)
      const outcome = await normalizeInboxEvent(deps, inboxId)
      if (outcome.result === 'applied') {
        for (const step of outcome.syncJobs) {
          await deps.queues.sync(step.connectionId).add(step.operation, { ...step, correlationId }, { jobId: syncJobId(step) })
        }
      }
      if (outcome.result === 'needs_attention') deps.log.warn({ correlationId, inboxId, errors: outcome.errors.length }, 'event needs attention')
      return outcome.result
    },
    { connection: options.redis.duplicate(), prefix: deps.queues.prefix, concurrency: options.concurrency },
  )
  worker.on('error', (err) => deps.log.error({ err }, 'normalize worker error'))
  return worker
}
