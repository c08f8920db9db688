/**
 * The one place where failure kinds become queue terms: conflicts and Retry-After wait without
 * using an attempt, other retryable failures back off, permanent ones stop at once.
 * It is also the connection's bulkhead: its own queue, concurrency, rate limit (in Redis, shared by
 * every worker process) and circuit breaker, which hears the evidence of every step.
 */
import { DelayedError, UnrecoverableError, Worker, type Job, type Queue, type RateLimiterOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { RateLimit } from '../config.ts'
import type { Connection } from '../connections/connection-registry.ts'
import { isSyncFailure } from '../connector-kit/index.ts'
import { cappedBackoff, syncJobSchema, syncQueueName, type SyncJob } from '../queue/queues.ts'
import { createCircuitBreaker, type CircuitBreaker, type StepEvidence } from './circuit-breaker.ts'
import { stepFor } from './steps.ts'
import type { StepOutcome, SyncDeps } from './step-runtime.ts'

const conflictDelayMs = 500
/** Waits (conflicts, Retry-After) use no attempt; this bounds them so a remote can't keep a job forever. */
export const maxWaits = 100
/** Below this spacing an even spread costs more Redis round trips than it is worth; see `limiterFor`. */
const minEvenSpacingMs = 10

export interface SyncWorkerOptions {
  connection: Pick<Connection, 'id' | 'concurrency' | 'rateLimit' | 'circuitBreaker' | 'retry'>
  /** The connection's sync queue (the one the breaker pauses). */
  queue: Queue<SyncJob>
  redis: Redis
  prefix: string
}

export interface SyncWorker {
  worker: Worker<SyncJob>
  breaker: CircuitBreaker
  /** Stops taking jobs; `force` leaves active ones to stalled-job recovery. */
  close(force?: boolean): Promise<void>
}

/**
 * BullMQ's limiter counts jobs started per window in one Redis key, so every worker of the queue
 * shares it. Its window is fixed, not sliding: `max` per `perMs` lets up to 2×max through across a
 * window's edge, which a remote that counts a sliding second answers with 429s. So the steps are
 * spread evenly instead — one per perMs/max — and no `perMs` span ever sees more than `max`. Only
 * for limits above 100 a second, where one Redis round trip per step would cap the rate itself, is
 * the fixed window used.
 */
export function limiterFor(rateLimit: RateLimit): RateLimiterOptions {
  const spacing = rateLimit.perMs / rateLimit.max
  return spacing >= minEvenSpacingMs ? { max: 1, duration: Math.ceil(spacing) } : { max: rateLimit.max, duration: rateLimit.perMs }
}

export function startSyncWorker(deps: SyncDeps, options: SyncWorkerOptions): SyncWorker {
  const { connection } = options
  const breaker = createCircuitBreaker({
    redis: options.redis,
    prefix: options.prefix,
    connectionId: connection.id,
    queue: options.queue,
    db: deps.db,
    log: deps.log,
    settings: connection.circuitBreaker,
  })
  const worker = new Worker<SyncJob>(
    syncQueueName(connection.id),
    async (job: Job<SyncJob>, token?: string) => {
      const data = syncJobSchema.parse(job.data)
      const jobId = job.id ?? `${data.orderId}-${data.sourceVersion}`
      const gate = await breaker.admit(jobId)
      if (!gate.run && token) {
        // The breaker is open (or another job is probing): back in line, no attempt used. Not counted
        // as a wait either; the breaker bounds these itself.
        await job.moveToDelayed(Date.now() + gate.retryInMs, token)
        throw new DelayedError()
      }
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      try {
        // The job id owns the lease, so the same job recovered after its worker died takes it back at once.
        const step = stepFor(data.operation)
        if (!step) throw new UnrecoverableError(`no step runs operation ${data.operation}`)
        const outcome = await step(deps, { job: data, runId: jobId, lastTry })
        await breaker.record(jobId, evidenceOf(outcome))
        return outcome
      } catch (err) {
        await breaker.record(
          jobId,
          isSyncFailure(err)
            ? { outcome: 'failure', kind: err.kind, message: err.message, ...(err.details.retryAfterMs !== undefined ? { retryAfterMs: err.details.retryAfterMs } : {}) }
            : { outcome: 'none' },
        )
        if (!isSyncFailure(err)) throw err
        const waits = data.waits ?? 0
        // A conflict polls for the other step's lease, which bounds it (a dead holder's lease runs
        // out): it uses neither an attempt nor one of the bounded waits.
        const conflict = err.kind === 'conflict'
        const waitMs = conflict ? conflictDelayMs + Math.floor(Math.random() * conflictDelayMs) : err.retryable ? err.details.retryAfterMs : undefined
        if (waitMs !== undefined && token && (conflict || waits < maxWaits)) {
          if (!conflict) await job.updateData({ ...data, waits: waits + 1 })
          await job.moveToDelayed(Date.now() + waitMs, token)
          throw new DelayedError()
        }
        if (!err.retryable) throw new UnrecoverableError(`${err.kind}: ${err.message}`)
        throw err
      }
    },
    {
      connection: options.redis.duplicate(),
      prefix: options.prefix,
      concurrency: connection.concurrency,
      settings: { backoffStrategy: cappedBackoff(connection.retry) },
      ...(connection.rateLimit ? { limiter: limiterFor(connection.rateLimit) } : {}),
    },
  )
  worker.on('error', (err) => deps.log.error({ err, connectorId: connection.id }, 'sync worker error'))
  breaker.start()
  return {
    worker,
    breaker,
    async close(force) {
      await breaker.stop()
      await worker.close(force)
    },
  }
}

/** A step that never called the remote says nothing about it: skipped, or nothing to cancel. */
function evidenceOf(outcome: StepOutcome): StepEvidence {
  if (outcome.result === 'synced' || outcome.result === 'waiting') return { outcome: 'success' }
  if (outcome.result === 'cancelled' && outcome.externalId !== undefined) return { outcome: 'success' }
  return { outcome: 'none' }
}
