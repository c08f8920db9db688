/**
 * The conformance suite must fail a connector that breaks the rules, not only pass good ones: it runs
 * here (in a child vitest, from a temporary folder) against a connector that gets everything wrong,
 * and each rule it breaks must show up as a failed test.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, expect, it } from 'vitest'

const root = new URL('../../', import.meta.url).pathname
const work = mkdtempSync(path.join(tmpdir(), 'orderbridge-conformance-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const brokenConnector = `
import { z } from 'zod'
import { SyncFailure, defineConnector } from '${root}src/connector-kit/index.ts'
import { describeConnectorConformance } from '${root}src/connector-kit/conformance.ts'

const orders: { id: string; reference: string }[] = []

const broken = defineConnector({
  manifest: {
    id: 'Broken_Connector',
    version: 'v1',
    displayName: 'Broken',
    roles: ['erp'],
    // A password among the settings, and an undescribed secret.
    settingsSchema: z.object({ baseUrl: z.string(), password: z.string() }),
    secretsSchema: z.object({ apiToken: z.string() }),
  },
  // Never calls anything: a wrong token passes.
  check: async () => {},
  // Everything is transient, and the raw error (with the token) becomes the message.
  classify: (err) => new SyncFailure('transient', 'failed: ' + String((err as Error).message)),
  salesOrders: {
    upsert: {
      inputSchema: z.record(z.string(), z.unknown()),
      idempotency: 'native-key',
      // Ignores the key: every call creates another order.
      run: async (ctx) => {
        const order = { id: 'SO-' + (orders.length + 1), reference: ctx.reference }
        orders.push(order)
        return { externalId: order.id }
      },
    },
    findByReference: async (_ctx, reference) => {
      const found = orders.find((order) => order.reference === reference)
      return found && { externalId: found.id }
    },
  },
})

describeConnectorConformance('broken', async () => ({
  connector: broken,
  ctx: { settings: { baseUrl: 'http://127.0.0.1:9', password: 'settings-password' }, secrets: { apiToken: 'the-real-token' } },
  sampleSalesOrder: (reference) => ({ reference }),
  countSalesOrders: (reference) => orders.filter((order) => order.reference === reference).length,
  close: async () => {},
}))
`

function run(args: string[], cwd: string): Promise<number | null> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VITEST') && name !== 'NODE_OPTIONS'))
  return new Promise((resolve) => {
    const child = spawn(path.join(root, 'node_modules/.bin/node'), args, { cwd, env: { ...env, NO_COLOR: '1' }, stdio: 'ignore' })
    child.on('exit', resolve)
  })
}

it('fails a connector for each rule it breaks', async () => {
  symlinkSync(path.join(root, 'node_modules'), path.join(work, 'node_modules'), 'dir')
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  writeFileSync(path.join(work, 'broken.test.ts'), brokenConnector)
  const report = path.join(work, 'report.json')
  const code = await run([path.join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--root', work, '--reporter=json', `--outputFile=${report}`], work)
  expect(code).toBe(1)

  const results = (JSON.parse(readFileSync(report, 'utf8')) as { testResults: { assertionResults: { title: string; status: string }[] }[] }).testResults.flatMap((file) => file.assertionResults)
  const failed = new Set(results.filter((result) => result.status === 'failed').map((result) => result.title))
  for (const title of [
    'declares a kebab-case id, a semver version, a display name and roles',
    'keeps every secret in the secrets schema, described, and none in settings',
    'fails as auth with a wrong secret',
    'fails as transient when the remote is unreachable',
    'maps HTTP 401 as the kit does',
    'maps HTTP 429 as the kit does',
    'maps a timeout (ECONNABORTED) as the kit does',
    'keeps a SyncFailure it is given, and turns an unexpected error into one',
    'creates one order for two creates under one idempotency key',
  ]) {
    expect(failed, title).toContain(title)
  }
  // What it does right still passes: an unknown reference finds nothing.
  expect(results.find((result) => result.title === 'finds nothing under an unknown reference')?.status).toBe('passed')
}, 120_000)
