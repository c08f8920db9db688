/**
 * BullMQ queues: transport only. Every job is derived from a database row, so losing Redis loses
 * no work (the sweeper re-enqueues from the database). Job ids are deterministic and contain no `:`.
 */
import { Queue, type JobsOptions } from 'bullmq'
import { Redis } from 'ioredis'
import { z } from 'zod'
import { retryDefaults, type RetryPolicy } from '../config.ts'

export const ingestQueueName = 'ingest'
export const syncQueueName = (connectionId: string) => `sync-${connectionId}`

/** The inbox events of one commit: one job per batch costs Redis one script instead of one per event. */
export const ingestJobSchema = z.object({ inboxIds: z.array(z.number().int().positive()).min(1), correlationId: z.string() })
export type IngestJob = z.infer<typeof ingestJobSchema>

export const syncJobSchema = z.object({
  orderId: z.uuid(),
  connectionId: z.string(),
  operation: z.string(),
  sourceVersion: z.number().int(),
  correlationId: z.string(),
  /** How many times the job waited without using an attempt (conflicts, Retry-After). */
  waits: z.number().int().min(0).optional(),
})
export type SyncJob = z.infer<typeof syncJobSchema>

export const ingestJobId = (inboxIds: readonly number[]) => (inboxIds.length === 1 ? `inbox-${inboxIds[0]}` : `inbox-${inboxIds[0]}-n${inboxIds.length}`)
export const syncJobId = (job: Pick<SyncJob, 'orderId' | 'connectionId' | 'operation' | 'sourceVersion'>) =>
  `sync-${job.orderId}-${job.connectionId}-${job.operation}-v${job.sourceVersion}`

const defaultJobOptions: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
  // Finished jobs stay a while for the dashboard; the database keeps the history for good.
  // ensureJob() replaces a finished job whose id is needed again.
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600 },
}

export interface QueueSet {
  readonly redis: Redis
  /** The BullMQ prefix; a hash tag so each queue's keys share a Redis Cluster slot. */
  readonly prefix: string
  readonly ingest: Queue<IngestJob>
  sync(connectionId: string): Queue<SyncJob>
  all(): Queue[]
  close(): Promise<void>
}

export function createRedis(url: string): Redis {
  // Workers block on Redis; BullMQ requires that commands wait for a reconnect instead of failing.
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false })
}

/** Sync jobs back off with this strategy: BullMQ's exponential, with jitter, capped (see `cappedBackoff`). */
export const syncBackoffType = 'capped-exponential'

/** A sync queue's job options. They are set on the queue, so every place that adds its jobs uses them. */
export function syncJobOptions(retry: RetryPolicy): JobsOptions {
  return { ...defaultJobOptions, attempts: retry.attempts, backoff: { type: syncBackoffType, delay: retry.backoffMs, jitter: 0.5 } }
}

/**
 * The sync workers' backoff: the first delay doubles with each try, as BullMQ's exponential does, but
 * never beyond `maxBackoffMs`, so a connection allowed many tries still tries every few minutes
 * instead of waiting hours. Jitter takes up to half off, so retries of a burst spread out.
 */
export function cappedBackoff(retry: RetryPolicy): (attemptsMade: number) => number {
  return (attemptsMade) => {
    const ceiling = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** Math.max(0, attemptsMade - 1))
    return Math.floor(ceiling * (1 - 0.5 * Math.random()))
  }
}

export function createQueueSet(options: { redisUrl: string; prefix: string; syncConnections: readonly string[]; retry?: Readonly<Record<string, RetryPolicy>> }): QueueSet {
  const redis = createRedis(options.redisUrl)
  redis.on('error', () => {}) // reported by /readyz and by the calls that fail
  const prefix = `{${options.prefix}}`
  const ingest = new Queue<IngestJob>(ingestQueueName, { connection: redis, prefix, defaultJobOptions })
  const sync = new Map(
    options.syncConnections.map((id) => [id, new Queue<SyncJob>(syncQueueName(id), { connection: redis, prefix, defaultJobOptions: syncJobOptions(options.retry?.[id] ?? retryDefaults) })]),
  )
  return {
    redis,
    prefix,
    ingest,
    sync(connectionId) {
      const queue = sync.get(connectionId)
      if (!queue) throw new Error(`no sync queue for connection ${connectionId}`)
      return queue
    },
    all: () => [ingest, ...sync.values()],
    async close() {
      await Promise.all([ingest.close(), ...[...sync.values()].map((q) => q.close())])
      redis.disconnect()
    },
  }
}

/**
 * Adds a job unless one with its id is waiting, delayed or active. A finished job with the same id
 * is removed first, so a re-enqueue from the database is never swallowed by a stale id.
 */
export async function ensureJob<T>(queue: Queue<T>, name: string, data: T, jobId: string): Promise<void> {
  const existing = await queue.getJob(jobId)
  if (existing) {
    const state = await existing.getState()
    if (state !== 'completed' && state !== 'failed') return
    await existing.remove().catch(() => {})
  }
  await queue.add(name as never, data as never, { jobId } as never)
}
