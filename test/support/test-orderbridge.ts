/**
 * A whole orderbridge for a test: real HTTP on an ephemeral port, real Redis under its own queue
 * prefix, its own database (PGlite or a PostgreSQL schema), the demo connections pointed at
 * simulators the test owns (so it can inject faults), and a signed demo CRM sender.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createDemoCrmSender, type DemoCrmSender } from '../../connectors/demo-crm/sender.ts'
import { startErpSimulator, type ErpSimulator, type ErpSimulatorOptions } from '../../connectors/generic-rest/simulator.ts'
import { startWmsSimulator, type WmsSimulator, type WmsSimulatorOptions } from '../../connectors/demo-wms/simulator.ts'
import { startCrmSimulator, type CrmSimulator } from '../../connectors/demo-crm/simulator.ts'
import { loadEnv, type FileConfig } from '../../src/config.ts'
import { openDatabase, type Database } from '../../src/db/database.ts'
import { demoConfig } from '../../src/demo/demo-environment.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { startOrderbridge, type Mode, type RunningOrderbridge } from '../../src/server.ts'
import { postgresUrl, uniqueName, type Engine } from './test-database.ts'
import { deleteQueueKeys, redisUrl } from './test-redis.ts'

export const testCredentials = {
  adminKey: 'obk_test_admin_key_0123456789abcdef',
  demoWebhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  demoErpToken: 'erp-token-for-tests',
  demoWmsToken: 'wms-token-for-tests',
}

export interface TestStack {
  url: string
  env: Record<string, string>
  erp: ErpSimulator
  wms: WmsSimulator
  /** The demo CRM's side that takes status, notes and stock back. */
  crmSimulator: CrmSimulator
  crm: DemoCrmSender
  /** The processes of this stack (restartable). */
  start(mode?: Mode): Promise<RunningOrderbridge>
  stop(): Promise<void>
  api<T = any>(path: string, init?: { method?: string; body?: unknown; key?: string }): Promise<{ status: number; body: T }>
  /**
   * A connection of the test's own to the stack's database (PostgreSQL stacks only: PGlite has one
   * connection, the stack's), to read or do what the API does not; the caller closes it.
   */
  openDatabase(poolSize?: number): Promise<Database>
  /** `what` names what is awaited in the timeout's error; as a function it can tell what was last seen. */
  waitFor<T>(probe: () => Promise<T | undefined | false>, what: string | (() => string), timeoutMs?: number): Promise<T>
  close(): Promise<void>
}

export interface TestStackOptions {
  sweepIntervalMs?: number
  configure?: (config: FileConfig) => FileConfig
  /** Simulator options, e.g. the WMS's stock or the ERP's credit per customer. */
  wms?: Omit<WmsSimulatorOptions, 'apiToken'>
  erp?: Omit<ErpSimulatorOptions, 'apiToken'>
}

export async function startTestStack(engine: Engine, options: TestStackOptions = {}): Promise<TestStack> {
  const erp = await startErpSimulator({ ...options.erp, apiToken: testCredentials.demoErpToken })
  const wms = await startWmsSimulator({ announceReservations: true, ...options.wms, apiToken: testCredentials.demoWmsToken })
  // Its own webhooks are not used here (tests send through `crm`); it takes the status written back.
  const crmSimulator = await startCrmSimulator({ webhookUrl: 'http://127.0.0.1:9/unused', secret: testCredentials.demoWebhookSecret, retries: 0 })
  const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-test-'))
  const schema = uniqueName('t')
  const prefix = uniqueName('test')
  const env: Record<string, string> = {
    PORT: '0',
    ORDERBRIDGE_DATA_DIR: dataDir,
    REDIS_URL: redisUrl,
    ORDERBRIDGE_QUEUE_PREFIX: prefix,
    ORDERBRIDGE_ADMIN_KEY: testCredentials.adminKey,
    ORDERBRIDGE_DEMO_WEBHOOK_SECRET: testCredentials.demoWebhookSecret,
    ORDERBRIDGE_SWEEP_INTERVAL_MS: String(options.sweepIntervalMs ?? 60_000),
    ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS: '5000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...(engine === 'postgres' ? { DATABASE_URL: postgresUrl, ORDERBRIDGE_DB_SCHEMA: schema } : {}),
  }
  const demo = demoConfig(testCredentials, { erpUrl: erp.url, wmsUrl: wms.url, crmUrl: crmSimulator.url })
  // Tests may change the demo configuration, e.g. a connection's retry policy.
  const config = options.configure ? options.configure(demo) : demo
  let running: RunningOrderbridge | undefined
  let port = 0
  const stack: TestStack = {
    url: '',
    env,
    erp,
    wms,
    crmSimulator,
    crm: createDemoCrmSender({ webhookUrl: '', secret: testCredentials.demoWebhookSecret, retries: 0 }),
    async start(mode = 'all') {
      // A restart reuses the port, as a process manager would.
      running = await startOrderbridge({ mode, env: loadEnv({ ...env, PORT: String(port) }), config, logger: createLogger(env.LOG_LEVEL!) })
      if (running.url) {
        stack.url = running.url
        port = Number(new URL(running.url).port)
        stack.crm = createDemoCrmSender({ webhookUrl: `${running.url}/webhooks/demo-crm`, secret: testCredentials.demoWebhookSecret, retries: 0 })
        for (const system of [wms, erp] as const) system.setWebhookTarget({ url: `${running.url}/webhooks/${system === wms ? 'demo-wms' : 'demo-erp'}`, secret: testCredentials.demoWebhookSecret })
      }
      return running
    },
    async stop() {
      await running?.close()
      running = undefined
    },
    async api(p, init = {}) {
      const response = await fetch(`${stack.url}${p}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${init.key ?? testCredentials.adminKey}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      })
      return { status: response.status, body: (await response.json()) as never }
    },
    async waitFor(probe, what, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const value = await probe()
        if (value) return value
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    async openDatabase(poolSize = 2) {
      if (engine !== 'postgres') throw new Error('only a PostgreSQL stack can be opened a second time')
      return openDatabase({ engine: 'postgres', url: postgresUrl, schema, poolSize })
    },
    async close() {
      await stack.stop()
      await Promise.all([erp.close(), wms.close(), crmSimulator.close()])
      await deleteQueueKeys(prefix)
      if (engine === 'postgres') {
        const db = await openDatabase({ engine: 'postgres', url: postgresUrl })
        await db.query(`drop schema if exists ${schema} cascade`)
        await db.close()
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
  await stack.start()
  return stack
}
