/**
 * The reconciliation worker: runs the runs on the `reconciliation` queue one at a time per process,
 * keeps one repeatable job per reconcilable connection when `reconciliation.schedule` is set, and
 * sweeps the database for runs whose job was lost or whose worker died (Redis is only transport:
 * the run row is the record, and a resumed run goes on from its stored cursor).
 */
import { Queue, Worker, type RepeatOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Logger } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import type { Lifecycle } from '../orders/lifecycle.ts'
import { ensureJob } from '../queue/queues.ts'
import { executeRun } from './reconcile.ts'
import { staleRuns } from './reconciliation.repository.ts'
import { durationMs, reconciliationJobSchema, reconciliationSettingsSchema, type ReconciliationJob, type ReconciliationSettings } from './reconciliation.schemas.ts'
import { reconciliationQueueName, requestRun, runJobId } from './reconciliation.service.ts'
import { reconcilableConnections } from './targets.ts'

export const scheduleIdPrefix = 'reconcile-'
const scheduleId = (connectionId: string) => `${scheduleIdPrefix}${connectionId}`

export function createReconciliationQueue(redis: Redis, prefix: string): Queue<ReconciliationJob> {
  return new Queue<ReconciliationJob>(reconciliationQueueName, {
    connection: redis,
    prefix,
    // A run records its own failure; a job fails only when the worker could not even start it.
    defaultJobOptions: { attempts: 3, backoff: { type: 'exponential', delay: 5_000 }, removeOnComplete: { age: 24 * 3600, count: 1000 }, removeOnFail: { age: 7 * 24 * 3600 } },
  })
}

export interface ReconciliationWorkerDeps {
  db: Database
  queues: { redis: Redis; prefix: string }
  connections: ConnectionRegistry
  /** The lifecycle with queues: repairs are dispatched through it. */
  lifecycle: Lifecycle
  logger: Logger
  /** The configuration's `reconciliation` section; defaults when absent (no schedule). */
  settings?: ReconciliationSettings
  /** How often lost or abandoned runs are looked for. Default 60 s. */
  sweepIntervalMs?: number
}

export interface ReconciliationWorker {
  queue: Queue<ReconciliationJob>
  worker: Worker<ReconciliationJob>
  /** Resolves once the schedules are in place. */
  ready: Promise<void>
  close(): Promise<void>
}

function repeatOptions(schedule: string): Omit<RepeatOptions, 'key'> {
  const every = durationMs(schedule)
  return every !== undefined ? { every } : { pattern: schedule.trim(), tz: 'UTC' }
}

/** One repeatable job per reconcilable connection (or none without a schedule); schedulers of connections gone are removed. */
export async function syncSchedules(queue: Queue<ReconciliationJob>, connections: ConnectionRegistry, settings: ReconciliationSettings): Promise<string[]> {
  const wanted = settings.schedule ? reconcilableConnections(connections).map((c) => c.id) : []
  for (const id of wanted) {
    await queue.upsertJobScheduler(scheduleId(id), repeatOptions(settings.schedule!), { name: 'scheduled', data: { connectionId: id, correlationId: `reconcile-schedule-${id}` } })
  }
  for (const scheduler of await queue.getJobSchedulers(0, -1)) {
    const id = scheduler.id ?? scheduler.key
    if (id.startsWith(scheduleIdPrefix) && !wanted.includes(id.slice(scheduleIdPrefix.length))) await queue.removeJobScheduler(id)
  }
  return wanted.map(scheduleId)
}

/**
 * Starts the worker (concurrency 1 per process), the schedules and the sweep.
 *
 * @example
 * // src/server.ts, in the `mode !== 'api'` block, after startWorkers:
 * const reconciliation = startReconciliationWorker({ db, queues, connections, lifecycle, logger, settings: config.reconciliation })
 * closers.push(() => reconciliation.close())
 */
export function startReconciliationWorker(deps: ReconciliationWorkerDeps): ReconciliationWorker {
  const log = deps.logger
  const settings = deps.settings ?? reconciliationSettingsSchema.parse({})
  const queue = createReconciliationQueue(deps.queues.redis, deps.queues.prefix)
  const runDeps = { db: deps.db, connections: deps.connections, lifecycle: deps.lifecycle, log, settings }

  const worker = new Worker<ReconciliationJob>(
    reconciliationQueueName,
    async (job) => {
      const data = reconciliationJobSchema.parse(job.data)
      let runId = data.runId
      if (runId === undefined && data.connectionId !== undefined) {
        if (!deps.connections.get(data.connectionId)) return { skipped: `connection ${data.connectionId} is no longer configured` }
        const run = await requestRun({ db: deps.db, connections: deps.connections, settings }, { connections: [data.connectionId] }, { trigger: 'schedule' })
        runId = run.id
      }
      if (runId === undefined) return { skipped: 'the job names no run' }
      const outcome = await executeRun(runDeps, runId)
      return outcome ? { runId, status: outcome.status, discrepancies: outcome.progress.discrepancies } : { runId, skipped: 'finished already' }
    },
    // Long runs renew the job's lock as they go; one run at a time keeps a process's memory to one page per part.
    { connection: deps.queues.redis.duplicate(), prefix: deps.queues.prefix, concurrency: 1, lockDuration: 60_000 },
  )
  worker.on('error', (err) => log.error({ err }, 'reconciliation worker error'))

  const ready = syncSchedules(queue, deps.connections, settings).then(
    (ids) => {
      if (ids.length) log.info({ schedules: ids, schedule: settings.schedule }, 'reconciliation scheduled')
    },
    (err) => log.error({ err }, 'reconciliation schedules could not be set up'),
  )

  // A run row without a live job: enqueued again (its job id makes a second copy impossible while one waits or runs).
  let sweeping: Promise<void> | undefined
  const sweep = () => {
    sweeping ??= staleRuns(deps.db, { queuedForSeconds: 30, silentForSeconds: 120 })
      .then(async (ids) => {
        for (const id of ids) await ensureJob(queue, 'run', { runId: id, correlationId: runJobId(id) }, runJobId(id))
        if (ids.length) log.info({ runs: ids }, 'reconciliation runs re-enqueued')
      })
      .catch((err) => log.warn({ err }, 'reconciliation sweep failed; will try again'))
      .finally(() => (sweeping = undefined))
  }
  const timer = setInterval(sweep, deps.sweepIntervalMs ?? 60_000)
  timer.unref()

  return {
    queue,
    worker,
    ready,
    async close() {
      clearInterval(timer)
      await sweeping
      await ready
      await worker.close()
      await queue.close()
    },
  }
}
