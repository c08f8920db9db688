/**
 * `orderbridge demo --crm … --erp … [--wms …]` in-process on PGlite with a private Redis prefix: for
 * each CRM and each simulator ERP, `demo send` has the CRM create 3 orders and deliver them in its own
 * format (Standard Webhooks, Fxiaoke's signed push, Salesforce outbound messages) through the demo's
 * order desk, and the ERP's simulator ends up holding them, with the sample orders' totals. The third
 * needs finance: the ERP's credit check approves it (Kingdee, the demo ERP), or the demo's clerk does
 * (SAP). Unknown choices are refused with the valid ones.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { runDemoSend } from '../../src/cli/demo-send.ts'
import { parseDemoArgs, startChosenDemo } from '../../src/cli/demo-start.ts'
import { loadEnv } from '../../src/config.ts'
import { demoRunFile, readDemoRun } from '../../src/demo/demo-desk.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { addDecimals, compareDecimals, multiplyDecimals } from '../../src/shared/decimal.ts'
import { uniqueName } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'

const adminKey = 'obk_test_admin_key_0123456789abcdef'

/** The total of sample order `n`, as the CRM priced it. */
const sampleTotal = (n: number) => addDecimals(sampleOrder(n).items.map((i) => multiplyDecimals(String(i.qty), i.price)))

// One data folder for every run, as a user switches choices on ./data: PGlite creates it once.
const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-demo-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

describe('orderbridge demo --crm --erp --wms', () => {
  const combinations = ['--crm fxiaoke --erp kingdee', '--crm salesforce --erp sap-idoc --wms rest-wms', '--crm demo --erp generic-rest']

  it.each(combinations)('demo %s: demo send delivers 3 orders in the CRM\'s format and the ERP simulator holds them with their totals', async (flags) => {
    const prefix = uniqueName('test')
    const env = loadEnv({
      PORT: '0',
      ORDERBRIDGE_DATA_DIR: dataDir,
      REDIS_URL: redisUrl,
      ORDERBRIDGE_QUEUE_PREFIX: prefix,
      ORDERBRIDGE_ADMIN_KEY: adminKey,
      ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS: '5000',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    })
    const { choices } = parseDemoArgs(flags.split(' '))
    const demo = await startChosenDemo(env, choices, { logger: createLogger(env.LOG_LEVEL) })
    try {
      expect(readDemoRun(dataDir)).toMatchObject({ api: demo.url, crm: choices.crm, connection: demo.crm.connection.id })
      const lines: string[] = []
      const summary = await runDemoSend(env, { orders: 3, url: demo.url, concurrency: 2, timeoutMs: 30_000, until: 'synced', progress: (line) => lines.push(line) })
      expect(summary, lines.join('\n')).toMatchObject({ sent: 3, synced: 3, failed: 0, rejected: 0 })
      expect(lines[0]).toContain(`through the ${choices.crm} CRM (connection ${demo.crm.connection.id})`)

      const response = await fetch(`${demo.url}/api/v1/orders?connection=${demo.crm.connection.id}`, { headers: { authorization: `Bearer ${adminKey}` } })
      const { orders } = (await response.json()) as { orders: { id: string; total: string }[] }
      expect(orders).toHaveLength(3)
      const held = demo.erp.heldOrders()
      for (const order of orders) {
        const inErp = held.filter((h) => h.reference === order.id)
        expect(inErp, `${order.id} in the ${choices.erp} simulator`).toHaveLength(1)
        expect(compareDecimals(inErp[0]!.total, order.total), `${inErp[0]!.total} = ${order.total}`).toBe(0)
      }
      // And those are the totals of the CRM's sample orders 0, 1 and 2 (1,538.38 CNY: it needed finance).
      const expected = [0, 1, 2].map(sampleTotal).sort(compareDecimals)
      const got = held.map((h) => h.total).sort(compareDecimals)
      expect(got.map((t, i) => compareDecimals(t, expected[i]!))).toEqual([0, 0, 0])
    } finally {
      await demo.close()
      await deleteQueueKeys(prefix)
    }
    expect(existsSync(demoRunFile(dataDir))).toBe(false)
  }, 120_000)

  it('refuses unknown choices, naming the valid ones', () => {
    expect(() => parseDemoArgs(['--crm', 'hubspot'])).toThrow('--crm must be one of demo, fxiaoke, salesforce, not "hubspot"')
    expect(() => parseDemoArgs(['--erp', 'oracle'])).toThrow('--erp must be one of generic-rest, kingdee, sap-idoc, tryton, not "oracle"')
    expect(() => parseDemoArgs(['--wms', 'acme'])).toThrow('--wms must be one of demo-wms, rest-wms, not "acme"')
    expect(() => parseDemoArgs(['--erp', 'tryton', '--wms', 'demo-wms'])).toThrow('--erp tryton is the inventory as well')
    expect(() => parseDemoArgs(['--crm', 'fxiaoke', '--colour'])).toThrow(/Unknown option '--colour'; demo takes --crm demo\|fxiaoke\|salesforce/)
    expect(() => parseDemoArgs(['--erp', 'kingdee', '--no-clerk'])).toThrow('--tryton-env and --no-clerk go with --erp tryton')
  })

  it('fills in the default demo\'s systems for the choices not given', () => {
    expect(parseDemoArgs(['--crm', 'salesforce']).choices).toEqual({ crm: 'salesforce', erp: 'generic-rest', wms: 'demo-wms' })
    expect(parseDemoArgs(['--erp', 'tryton', '--no-clerk'])).toEqual({ choices: { crm: 'demo', erp: 'tryton' }, tryton: { clerk: false } })
  })
})
