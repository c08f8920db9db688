/**
 * The worker side: normalize inbox events, run sync steps per target connection (a bulkhead: its
 * own queue, concurrency, rate limit and circuit breaker), and sweep committed-but-unqueued work back
 * into the queues.
 */
import type { Worker } from 'bullmq'
import type { Logger } from 'pino'
import type { ConnectionRegistry } from './connections/connection-registry.ts'
import type { Database } from './db/database.ts'
import type { MappingCatalog } from './mapping/mapping-catalog.ts'
import { startNormalizeWorker } from './orders/normalize.worker.ts'
import type { QueueSet } from './queue/queues.ts'
import { startSweeper } from './queue/sweeper.ts'
import { startSyncWorker } from './sync/sync.worker.ts'

export interface WorkerDeps {
  db: Database
  queues: QueueSet
  connections: ConnectionRegistry
  mappings: MappingCatalog
  logger: Logger
  sweepIntervalMs: number
}

export interface Workers {
  /** Stops taking jobs; waits up to `timeoutMs` for active ones, then leaves them to stalled-job recovery. */
  close(timeoutMs: number): Promise<void>
}

export function startWorkers(deps: WorkerDeps): Workers {
  const log = deps.logger
  const normalize = startNormalizeWorker({ ...deps, log }, { redis: deps.queues.redis, concurrency: 16 })
  const erp = deps.connections.pipeline.erp
  const sync = startSyncWorker({ ...deps, log }, { connection: erp, queue: deps.queues.sync(erp.id), redis: deps.queues.redis, prefix: deps.queues.prefix })
  const workers: Pick<Worker, 'close'>[] = [normalize, sync]
  const sweeper = startSweeper(deps.db, deps.queues, log, deps.sweepIntervalMs)
  return {
    async close(timeoutMs) {
      await sweeper.stop()
      const graceful = Promise.all(workers.map((w) => w.close()))
      const timedOut = await Promise.race([graceful.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref())])
      if (timedOut) {
        log.warn({ timeoutMs }, 'jobs still active at shutdown; they return to the queue through stalled-job recovery')
        await Promise.all(workers.map((w) => w.close(true)))
      }
    },
  }
}
