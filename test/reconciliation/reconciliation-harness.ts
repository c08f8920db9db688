/**
 * Reconciliation against a whole running orderbridge (test/support's stack on PostgreSQL, with the
 * demo simulators): this harness opens the stack's own database schema and queue prefix, builds the
 * same connections and a lifecycle that dispatches to the stack's sync queues, and runs a
 * reconciliation in-process (executeRun), so repairs go through the stack's real workers. It can
 * also start the reconciliation worker and the routes on the stack's Redis, as server.ts and app.ts
 * would once wired.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { connectors } from '../../connectors/index.ts'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import type { Principal } from '../../src/auth/api-keys.ts'
import { createConnectionRegistry, type ConnectionRegistry } from '../../src/connections/connection-registry.ts'
import type { Database } from '../../src/db/database.ts'
import { demoConfig } from '../../src/demo/demo-environment.ts'
import type { FileConfig } from '../../src/config.ts'
import { createDatabaseCatalog, loadMappingFiles } from '../../src/mapping/mapping-catalog.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { createLifecycle, type Lifecycle } from '../../src/orders/lifecycle.ts'
import { createQueueSet, type QueueSet } from '../../src/queue/queues.ts'
import { executeRun, type RunOutcome } from '../../src/reconciliation/reconcile.ts'
import { findRun, listDiscrepancies, type DiscrepancyRow, type RunRow } from '../../src/reconciliation/reconciliation.repository.ts'
import { reconciliationRoutes } from '../../src/reconciliation/reconciliation.routes.ts'
import { reconciliationSettingsSchema, type ReconciliationSettings, type RunRequest } from '../../src/reconciliation/reconciliation.schemas.ts'
import { requestRun } from '../../src/reconciliation/reconciliation.service.ts'
import { startReconciliationWorker, type ReconciliationWorker } from '../../src/reconciliation/reconciliation.worker.ts'
import { startTestStack, testCredentials, type TestStack, type TestStackOptions } from '../support/test-orderbridge.ts'

export interface SettledRun {
  run: RunRow
  outcome: RunOutcome | undefined
  discrepancies: DiscrepancyRow[]
}

export interface ReconciliationHarness {
  stack: TestStack
  db: Database
  connections: ConnectionRegistry
  lifecycle: Lifecycle
  settings: ReconciliationSettings
  /** Records a run for `request` (with these settings) and runs it here, to the end. */
  reconcile(request?: RunRequest, settings?: Partial<Omit<ReconciliationSettings, 'policy'>> & { policy?: Partial<ReconciliationSettings['policy']> }): Promise<SettledRun>
  /** Sends `count` demo CRM orders and answers their ids once each is settled everywhere (ERP, WMS, CRM status). */
  sendOrders(prefix: string, count: number, first?: number): Promise<string[]>
  /** Waits until these orders' links are all settled (nothing pending, retrying or leased). */
  waitSettled(orderIds: readonly string[], what?: string): Promise<void>
  orderIdOf(externalId: string): Promise<string>
  link(orderId: string, operation: string): Promise<{ external_id: string | null; status: string } | undefined>
  /** The reconciliation worker on the stack's Redis, and the routes on a bare Fastify (the caller's role, no key check). */
  startWorker(settings?: ReconciliationSettings): ReconciliationWorker
  routes(principal?: Partial<Principal>): Promise<FastifyInstance>
  close(): Promise<void>
}

const silent = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent')

export async function startReconciliationHarness(options: TestStackOptions = {}): Promise<ReconciliationHarness> {
  const stack = await startTestStack('postgres', options)
  const env = stack.env
  const db = await stack.openDatabase(4)
  const demo: FileConfig = demoConfig(testCredentials, { erpUrl: stack.erp.url, wmsUrl: stack.wms.url, crmUrl: stack.crmSimulator.url })
  const config = options.configure ? options.configure(demo) : demo
  const mappings = createDatabaseCatalog(db, loadMappingFiles().map((f) => f.spec.id))
  const connections = createConnectionRegistry(config, connectors, mappings, 'the test configuration')
  const stepConnections = createLifecycle({ connections, notifications: { rules: [] } }).stepConnections()
  const queues: QueueSet = createQueueSet({ redisUrl: env.REDIS_URL!, prefix: env.ORDERBRIDGE_QUEUE_PREFIX!, syncConnections: stepConnections.map((c) => c.id) })
  const lifecycle = createLifecycle({ connections, notifications: { rules: [] }, queues })
  const settings = reconciliationSettingsSchema.parse({})
  const workers: ReconciliationWorker[] = []
  const apps: FastifyInstance[] = []

  const harness: ReconciliationHarness = {
    stack,
    db,
    connections,
    lifecycle,
    settings,
    async reconcile(request = { since: 'all' }, overrides = {}) {
      const runSettings = reconciliationSettingsSchema.parse({ ...overrides, policy: { ...overrides.policy } })
      const run = await requestRun({ db, connections, settings: runSettings }, request, { trigger: 'cli', requestedBy: 'test' })
      const outcome = await executeRun({ db, connections, lifecycle, log: silent, settings: runSettings }, run.id)
      return { run: (await findRun(db, run.id))!, outcome, discrepancies: await listDiscrepancies(db, run.id, { limit: 10_000 }) }
    },
    async sendOrders(prefix, count, first = 1) {
      const externalIds = Array.from({ length: count }, (_, i) => `${prefix}-${first + i}`)
      for (const [i, externalId] of externalIds.entries()) {
        const answer = await stack.crm.send('order.created', sampleOrder(first + i, externalId))
        if (answer.status !== 202) throw new Error(`order ${externalId} was answered ${answer.status}`)
      }
      const ids = await stack.waitFor(async () => {
        const rows = await db.query<{ id: string }>(
          `select id from orders where source_connection = 'demo-crm' and external_id = any($1::text[]) and state = 'pending_shipment' order by external_id`,
          [externalIds],
        )
        return rows.length === count ? rows.map((r) => r.id) : undefined
      }, `${count} orders in pending_shipment`, 60_000)
      await harness.waitSettled(ids)
      return ids
    },
    async waitSettled(orderIds, what = 'links settled') {
      await stack.waitFor(async () => {
        const [row] = await db.query<{ open: number; crm: number }>(
          `select (select count(*)::int from links where order_id = any($1::uuid[]) and (status not in ('synced', 'cancelled') or lease_until > now() or coalesce(last_synced_version, -1) < coalesce(target_version, 0))) as open,
                  (select count(*)::int from links where order_id = any($1::uuid[]) and operation = 'crm.status') as crm`,
          [orderIds],
        )
        return row!.open === 0 && row!.crm === orderIds.length
      }, `${orderIds.length} orders: ${what}`, 60_000)
    },
    async orderIdOf(externalId) {
      const [row] = await db.query<{ id: string }>(`select id from orders where source_connection = 'demo-crm' and external_id = $1`, [externalId])
      if (!row) throw new Error(`no order ${externalId}`)
      return row.id
    },
    async link(orderId, operation) {
      const [row] = await db.query<{ external_id: string | null; status: string }>('select external_id, status from links where order_id = $1 and operation = $2', [orderId, operation])
      return row
    },
    startWorker(workerSettings = settings) {
      const worker = startReconciliationWorker({ db, queues, connections, lifecycle, logger: silent, settings: workerSettings, sweepIntervalMs: 500 })
      workers.push(worker)
      return worker
    },
    async routes(principal = {}) {
      const app = Fastify()
      app.addHook('onRequest', async (req) => {
        req.principal = { keyId: 'k1', name: 'test key', role: 'ops', ...principal } as Principal
      })
      await app.register(reconciliationRoutes, { prefix: '/api/v1', db, queues, connections, settings })
      await app.ready()
      apps.push(app)
      return app
    },
    async close() {
      for (const app of apps) await app.close()
      for (const worker of workers) await worker.close()
      await queues.close()
      await db.close()
      await stack.close()
    },
  }
  return harness
}
