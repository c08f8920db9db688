/**
 * The worker side: normalize inbox events, run sync steps per target connection (a bulkhead: its
 * own queue, concurrency, rate limit and circuit breaker), and sweep committed-but-unqueued work back
 * into the queues (the sweep also keeps table statistics fresh where autovacuum does not).
 */
import type { Queue, Worker } from 'bullmq'
import type { Logger } from 'pino'
import type { ConnectionRegistry } from './connections/connection-registry.ts'
import type { Database } from './db/database.ts'
import { createStatisticsKeeper } from './db/table-statistics.ts'
import type { MappingCatalog } from './mapping/mapping-catalog.ts'
import { ChannelFailure, type CrmNoteSender } from './notifications/notification-channels.ts'
import type { NotificationJob, NotificationSettings } from './notifications/notification.schemas.ts'
import { startNotificationSweeper } from './notifications/notification.sweeper.ts'
import { startNotificationWorker } from './notifications/notification.worker.ts'
import type { Lifecycle } from './orders/lifecycle.ts'
import { startStockPushWorker, sweepStockPushes, type StockPushJob } from './stock/stock-push.ts'
import { startNormalizeWorker } from './orders/normalize.worker.ts'
import { startPollers } from './polling/poller.ts'
import type { QueueSet } from './queue/queues.ts'
import { startSweeper } from './queue/sweeper.ts'
import { startSyncWorker } from './sync/sync.worker.ts'

export interface WorkerDeps {
  db: Database
  queues: QueueSet
  connections: ConnectionRegistry
  mappings: MappingCatalog
  lifecycle: Lifecycle
  notifications: NotificationSettings
  notificationQueue: Queue<NotificationJob>
  stockPushQueue: Queue<StockPushJob>
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
  const sync = deps.lifecycle
    .stepConnections()
    .map((connection) => startSyncWorker({ ...deps, log }, { connection, queue: deps.queues.sync(connection.id), redis: deps.queues.redis, prefix: deps.queues.prefix }))
  const notifier = startNotificationWorker(
    { db: deps.db, settings: deps.notifications, log, addCrmNote: crmNoteSender(deps.connections, log) },
    { redis: deps.queues.redis, prefix: deps.queues.prefix },
  )
  const stockPush = startStockPushWorker({ db: deps.db, connections: deps.connections, queue: deps.stockPushQueue, log }, { redis: deps.queues.redis, prefix: deps.queues.prefix })
  const workers: Pick<Worker, 'close'>[] = [normalize, ...sync, notifier, stockPush]
  const sweeper = startSweeper(deps.db, deps.queues, log, deps.sweepIntervalMs, [
    () => sweepStockPushes(deps.db, deps.stockPushQueue, deps.connections),
    createStatisticsKeeper(deps.db, log),
  ])
  const notificationSweeper = startNotificationSweeper(deps.db, deps.notificationQueue, log, deps.sweepIntervalMs)
  const pollers = startPollers({ db: deps.db, queues: deps.queues, connections: deps.connections, log })
  return {
    async close(timeoutMs) {
      await pollers.close()
      await sweeper.stop()
      await notificationSweeper.stop()
      const graceful = Promise.all(workers.map((w) => w.close()))
      const timedOut = await Promise.race([graceful.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref())])
      if (timedOut) {
        log.warn({ timeoutMs }, 'jobs still active at shutdown; they return to the queue through stalled-job recovery')
        await Promise.all(workers.map((w) => w.close(true)))
      }
    },
  }
}

/** Reminders' CRM channel: a note on the CRM's order through its connection, when the connector can. */
function crmNoteSender(connections: ConnectionRegistry, log: Logger): CrmNoteSender {
  return async (note) => {
    const connection = connections.get(note.sourceConnection)
    const addNote = connection?.connector.crm?.addNote
    if (!connection || !addNote) throw new ChannelFailure(`connection ${note.sourceConnection} cannot take notes on its orders`, true)
    const ctx = { connectionId: connection.id, settings: connection.settings, secrets: connection.secrets, log, idempotencyKey: note.idempotencyKey, reference: note.orderId, mayHaveWritten: true }
    try {
      await addNote(ctx, note.externalId, { title: note.title, body: note.body })
    } catch (err) {
      const failure = connection.connector.classify(err, ctx)
      throw new ChannelFailure(failure.message, !failure.retryable, { cause: err })
    }
  }
}
