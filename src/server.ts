/**
 * Starts orderbridge in one of its modes: `all` (API, workers and, with no configuration file,
 * the demo), `api`, `worker`. Owns start-up order and the bounded drain on SIGTERM.
 */
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { startCrmSimulator } from '../connectors/demo-crm/simulator.ts'
import { connectors } from '../connectors/index.ts'
import { buildApp } from './app.ts'
import { seedApprovalRules } from './approvals/approval-rule-versions.ts'
import { createKeyResolver, ensureAdminKey } from './auth/api-keys.ts'
import { loadConfigFile, validateConfig, type Env, type FileConfig } from './config.ts'
import { createConnectionRegistry } from './connections/connection-registry.ts'
import { openDatabase, type Database } from './db/database.ts'
import { migrate } from './db/migrate.ts'
import { loadOrCreateCredentials } from './demo/demo-credentials.ts'
import { demoApprovalPolicy, demoConfig, startDemoSimulators, type DemoSimulators } from './demo/demo-environment.ts'
import { createInboxWriter } from './ingest/inbox-writer.ts'
import { createDatabaseCatalog, loadMappingFiles, syncMappingFiles } from './mapping/mapping-catalog.ts'
import { notificationSettingsSchema } from './notifications/notification.schemas.ts'
import { createNotificationQueue } from './notifications/notification.worker.ts'
import { createLogger } from './observability/logger.ts'
import { createLifecycle } from './orders/lifecycle.ts'
import { createQueueSet, ingestJobId } from './queue/queues.ts'
import { locateRedis } from './queue/redis-bootstrap.ts'
import { postgresListener } from './status/change-signal.ts'
import { createStockPushQueue } from './stock/stock-push.ts'
import { startReconciliationWorker } from './reconciliation/reconciliation.worker.ts'
import { startWorkers } from './worker.ts'

export type Mode = 'all' | 'api' | 'worker'

export function openStorage(env: Env): Promise<Database> {
  return env.DATABASE_URL
    ? openDatabase({ engine: 'postgres', url: env.DATABASE_URL, schema: env.ORDERBRIDGE_DB_SCHEMA })
    : openDatabase({ engine: 'pglite', dataDir: path.resolve(env.ORDERBRIDGE_DATA_DIR, 'pglite') })
}

export interface RunningOrderbridge {
  url?: string
  app?: FastifyInstance
  db: Database
  adminKey?: string
  demo?: { webhookSecret: string; crmUrl: string; erpUrl: string; wmsUrl: string }
  logger: Logger
  /** The bounded drain: stop accepting, finish or return in-flight work, close everything. */
  close(): Promise<void>
}

export interface StartOptions {
  mode: Mode
  env: Env
  /** Replaces the configuration file (tests). */
  config?: FileConfig
  logger?: Logger
}

export async function startOrderbridge({ mode, env, config: given, logger = createLogger(env.LOG_LEVEL) }: StartOptions): Promise<RunningOrderbridge> {
  const closers: (() => Promise<unknown>)[] = []
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((err) => logger.error({ err }, 'error during shutdown'))
  }
  try {
    const db = await openStorage(env)
    closers.push(() => db.close())
    await migrate(db)

    let config = given ? validateConfig(given, 'the given configuration') : env.ORDERBRIDGE_CONFIG ? loadConfigFile(env.ORDERBRIDGE_CONFIG) : undefined
    let simulators: DemoSimulators | undefined
    // Only the single-process mode generates credentials into the data folder: API replicas must
    // share one admin key (ORDERBRIDGE_ADMIN_KEY or keys already in the database), not make their own.
    const credentials = mode === 'all' ? loadOrCreateCredentials(env) : undefined
    if (!config) {
      if (!credentials) throw new Error(`the ${mode} mode needs ORDERBRIDGE_CONFIG (the demo runs only in the all mode)`)
      simulators = await startDemoSimulators(credentials, { lifelike: true })
      closers.push(() => simulators!.close())
      config = { ...demoConfig(credentials, simulators), approval: demoApprovalPolicy }
    }
    const mappingFiles = loadMappingFiles()
    await syncMappingFiles(db, mappingFiles)
    // Mappings created through the API have no file; the configuration may use them too.
    const storedIds = (await db.query<{ id: string }>('select id from mappings')).map((r) => r.id)
    const mappings = createDatabaseCatalog(db, [...mappingFiles.map((f) => f.spec.id), ...storedIds])
    const connections = createConnectionRegistry(config, connectors, mappings, env.ORDERBRIDGE_CONFIG ?? 'the demo configuration')

    const redis = await locateRedis({ url: env.REDIS_URL, allowPrivate: mode === 'all', dataDir: env.ORDERBRIDGE_DATA_DIR })
    if (redis.stop) closers.push(redis.stop)
    const notifications = config.notifications ?? notificationSettingsSchema.parse({})
    const stepConnections = createLifecycle({ connections, notifications }).stepConnections()
    const queues = createQueueSet({ redisUrl: redis.url, prefix: env.ORDERBRIDGE_QUEUE_PREFIX, syncConnections: stepConnections.map((c) => c.id), retry: Object.fromEntries(stepConnections.map((c) => [c.id, c.retry])) })
    closers.push(() => queues.close())
    const notificationQueue = createNotificationQueue(queues.redis, queues.prefix)
    closers.push(() => notificationQueue.close())
    const stockPushQueue = createStockPushQueue(queues.redis, queues.prefix)
    closers.push(() => stockPushQueue.close())
    const lifecycle = createLifecycle({ connections, notifications, queues, notificationQueue, stockPushQueue })
    await seedApprovalRules(db, config.approval)

    const running: RunningOrderbridge = { db, logger, close: closeAll }
    // Closers run in reverse: the API stops accepting first, then the workers drain.
    if (mode !== 'api') {
      const workers = startWorkers({ db, queues, connections, mappings, lifecycle, notifications, notificationQueue, stockPushQueue, logger, sweepIntervalMs: env.ORDERBRIDGE_SWEEP_INTERVAL_MS })
      closers.push(() => workers.close(env.ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS))
      const reconciliation = startReconciliationWorker({ db, queues, connections, lifecycle, logger, ...(config.reconciliation ? { settings: config.reconciliation } : {}) })
      closers.push(() => reconciliation.close())
    }
    if (mode !== 'worker') {
      const adminKey = env.ORDERBRIDGE_ADMIN_KEY ?? credentials?.adminKey
      if (adminKey) await ensureAdminKey(db, adminKey)
      const inbox = createInboxWriter(db, (ids) =>
        // Acknowledged already (committed); if this enqueue is lost, the sweeper re-enqueues from the inbox.
        queues.ingest
          .add('normalize', { inboxIds: ids, correlationId: ingestJobId(ids) }, { jobId: ingestJobId(ids) })
          .then(
            () => {},
            (err) => logger.warn({ err, count: ids.length }, 'enqueue after commit failed; the sweeper will pick these up'),
          ),
      )
      const app = await buildApp({ db, queues, connections, mappings, inbox, resolveKey: createKeyResolver(db), lifecycle, ...(config.reconciliation ? { reconciliation: config.reconciliation } : {}), ...(env.DATABASE_URL ? { listen: postgresListener({ url: env.DATABASE_URL, ...(env.ORDERBRIDGE_DB_SCHEMA ? { schema: env.ORDERBRIDGE_DB_SCHEMA } : {}) }) } : {}), bodyLimit: env.ORDERBRIDGE_BODY_LIMIT_BYTES, logger })
      closers.push(async () => {
        await app.close()
        await inbox.drain()
      })
      const address = await app.listen({ port: env.PORT, host: env.HOST })
      Object.assign(running, { app, url: address, adminKey })
      if (simulators) {
        simulators.sendEventsTo(address, credentials!.demoWebhookSecret)
        const crm = await startCrmSimulator({ webhookUrl: `${address}/webhooks/demo-crm`, secret: credentials!.demoWebhookSecret, port: simulators.crmPort })
        closers.push(() => crm.close())
        running.demo = { webhookSecret: credentials!.demoWebhookSecret, crmUrl: crm.url, erpUrl: simulators.erpUrl, wmsUrl: simulators.wmsUrl }
      }
    }
    return running
  } catch (err) {
    await closeAll()
    throw err
  }
}
