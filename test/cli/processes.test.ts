/**
 * The real entry point as a user runs it: `orderbridge all` on PGlite in a data folder, `demo send`
 * against it, a bounded drain on SIGTERM, and one clear line when something is missing.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { uniqueName } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'

const root = new URL('../../', import.meta.url).pathname
const bin = path.join(root, 'bin/orderbridge.mjs')
// The Node 24 that npm installed, as `npm start` and `npx orderbridge` use it.
const node = path.join(root, 'node_modules/.bin/node')
const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-cli-'))
const prefix = uniqueName('test')
const env = { ...process.env, ORDERBRIDGE_DATA_DIR: dataDir, PORT: '0', REDIS_URL: redisUrl, ORDERBRIDGE_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' }

afterAll(async () => {
  await deleteQueueKeys(prefix)
  rmSync(dataDir, { recursive: true, force: true })
})

function run(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(node, [bin, ...args], { env: { ...env, ...extraEnv }, cwd: root })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Collects a child's output from the start, so a pattern printed before we ask is still found. */
function watchOutput(child: ChildProcess) {
  let seen = ''
  child.stdout!.on('data', (d) => (seen += d))
  child.stderr!.on('data', (d) => (seen += d))
  return async (pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const match = seen.match(pattern)
      if (match) return match
      if (Date.now() > deadline) throw new Error(`no ${pattern} in output:\n${seen}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

describe('the orderbridge command', () => {
  it('runs the demo in one process, syncs demo orders sent by the CLI, and drains on SIGTERM', async () => {
    const server = spawn(node, [bin, 'all'], { env, cwd: root })
    const waitForOutput = watchOutput(server)
    try {
      const [, url] = await waitForOutput(/listening on (http:\/\/\S+)/)
      const credentials = JSON.parse(readFileSync(path.join(dataDir, 'credentials.json'), 'utf8'))
      expect(credentials.adminKey).toMatch(/^obk_/)
      expect(credentials.demoWebhookSecret).toMatch(/^whsec_/)

      const [, crmUrl] = await waitForOutput(/demo CRM (http:\/\/\S+),/)
      const created = await fetch(`${crmUrl}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count: 2 }) })
      expect(created.status).toBe(201)
      const deliveries = (await created.json()) as { orderId: string; delivery: { status: number } }[]
      expect(deliveries.map((d) => [d.orderId, d.delivery.status])).toEqual([['SO-1001', 202], ['SO-1002', 202]])

      const port = new URL(url!).port
      const sent = await run(['demo', 'send', '--orders', '20', '--timeout', '60'], { PORT: port })
      expect(sent.code, sent.stderr).toBe(0)
      const summary = JSON.parse(sent.stdout.trim().split('\n').at(-1)!)
      expect(summary).toMatchObject({ sent: 20, synced: 20, failed: 0, rejected: 0 })
      const headers = { authorization: `Bearer ${credentials.adminKey}` }
      // The order the CRM simulator pushed went through too: its ERP sales order is synced (the
      // order's other links are its stock reservation and its status written back to the CRM).
      const erpLinkOf = async (externalId: string) => {
        const fromCrm = await fetch(`${url}/api/v1/orders?connection=demo-crm&externalId=${externalId}`, { headers })
        const { orders } = (await fromCrm.json()) as { orders: { links: { operation: string; status: string }[] }[] }
        return orders[0]?.links.find((l) => l.operation === 'salesOrders.upsert')
      }
      const deadline = Date.now() + 20_000
      while ((await erpLinkOf('SO-1002'))?.status !== 'synced' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      expect((await erpLinkOf('SO-1002'))?.status).toBe('synced')
      expect(sent.stderr).toMatch(/sent 20, synced 20, failed 0, rejected 0, elapsed [\d.]+ s/)

      // Followed to the end, the demo's orders show the whole lifecycle: one of these five is large
      // enough to wait for finance, every one is reserved, shipped, delivered, invoiced and paid.
      const completed = await run(['demo', 'send', '--orders', '5', '--until', 'completed', '--timeout', '90'], { PORT: port })
      expect(completed.code, completed.stderr).toBe(0)
      expect(JSON.parse(completed.stdout.trim().split('\n').at(-1)!)).toMatchObject({
        sent: 5,
        failed: 0,
        states: { completed: 5 },
        passedThrough: { pending_approval: 1, approved: 5, reserved: 5, pending_shipment: 5, shipped: 5, delivered: 5, completed: 5, 'payment invoiced': 5, 'payment paid': 5 },
      })
      expect(completed.stderr).toMatch(/passed through: pending_approval 1, approved 5, reserved 5, pending_shipment 5, shipped 5, delivered 5, completed 5, payment invoiced 5, payment paid 5/)

      const ready = await fetch(`${url}/readyz`)
      expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok', redis: 'ok' } })
    } finally {
      const started = Date.now()
      const exited = new Promise<number | null>((resolve) => server.on('exit', resolve))
      server.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(Date.now() - started).toBeLessThan(15_000)
    }
  }, 150_000)

  it('migrates and says so', async () => {
    const first = await run(['migrate'], { ORDERBRIDGE_DATA_DIR: path.join(dataDir, 'fresh') })
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/^applied 001_initial\.sql(, \d{3}_\w+\.sql)+\n$/)
    const again = await run(['migrate'], { ORDERBRIDGE_DATA_DIR: path.join(dataDir, 'fresh') })
    expect(again.stdout).toBe('database is up to date\n')
  })

  it('exits with one clear line when Redis is not there', async () => {
    const result = await run(['all'], { REDIS_URL: 'redis://127.0.0.1:1', ORDERBRIDGE_DATA_DIR: path.join(dataDir, 'noredis') })
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('orderbridge: no Redis answers at redis://127.0.0.1:1: start it or set REDIS_URL to a reachable Redis')
  })

  it('names the variable and what was expected when the environment is wrong', async () => {
    const result = await run(['api'], { PORT: 'eighty', ORDERBRIDGE_DEMO_WEBHOOK_SECRET: 'secret' })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('orderbridge: the environment is invalid:')
    expect(result.stderr).toContain('PORT: Invalid input: expected number, received NaN')
    expect(result.stderr).toContain('ORDERBRIDGE_DEMO_WEBHOOK_SECRET: a Standard Webhooks secret: whsec_ followed by base64')
    expect(result.stderr).not.toContain('secret\n')
  })

  it('refuses the api mode without a configuration file', async () => {
    const result = await run(['api'], { ORDERBRIDGE_DATA_DIR: path.join(dataDir, 'api') })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('the api mode needs ORDERBRIDGE_CONFIG')
  })
})
