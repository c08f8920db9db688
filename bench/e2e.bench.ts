/**
 * End-to-end benchmark (`npm run bench:e2e [-- --orders 20000 --warmup 2000 --in-flight 256]`).
 *
 * One API and two worker processes on PostgreSQL and Redis, as production runs them, with the demo
 * ERP simulator in this process. Signed CRM webhooks go in; the run ends when the ERP holds a sales
 * order for every one. After `--warmup` orders that are not counted, twice: with an instant ERP,
 * then with 50 ms added to every ERP call, each after the schema is analyzed (see `analyze`). At most
 * `--in-flight` orders are between webhook and ERP at once, so the latency measured is the
 * pipeline's, not a backlog's. Prints orders/s, p50/p99 from webhook sent to sales order created in
 * the ERP, and the CPU cores each process used; the last line is one JSON object. `--cpu-prof <dir>`
 * makes the API and workers write V8 CPU profiles there (open them in Chrome DevTools).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { sampleOrder } from '../connectors/demo-crm/sender.ts'
import { startErpSimulator, type ErpSimulator } from '../connectors/generic-rest/simulator.ts'
import { signStandardWebhook } from '../src/connector-kit/index.ts'
import { openDatabase } from '../src/db/database.ts'
import { freePort } from '../src/shared/free-port.ts'
import { nodeFlags } from '../src/shared/node-flags.ts'
import { coresBetween, cpuSnapshot } from './support/cpu.ts'

const { values: args } = parseArgs({
  options: {
    orders: { type: 'string', default: '20000' },
    'in-flight': { type: 'string', default: '256' },
    senders: { type: 'string', default: '32' },
    warmup: { type: 'string', default: '2000', description: 'orders sent through first, not measured' },
    concurrency: { type: 'string', default: '64', description: 'sync concurrency of the ERP connection, per worker' },
    'cpu-prof': { type: 'string', description: 'a folder: the API and workers write V8 CPU profiles there' },
  },
})
const orderCount = Number(args.orders)
const warmupCount = Number(args.warmup)
const maxInFlight = Number(args['in-flight'])
const senders = Number(args.senders)
const targets = { instant: 1000, latency50ms: 500 }
const databaseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const root = path.resolve(import.meta.dirname, '..')
const node = path.join(root, 'node_modules/.bin/node')
const secret = `whsec_${randomBytes(24).toString('base64')}`
const adminKey = `obk_bench_${randomBytes(12).toString('hex')}`
const erpToken = randomBytes(12).toString('hex')
const run = randomBytes(4).toString('hex')
const schema = `bench_${run}`
const prefix = `bench-${run}`

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0

interface Scenario {
  name: 'warmup' | 'instant' | 'latency50ms'
  erpDelayMs: number
  orders: number
}

interface Processes {
  api: ChildProcess
  workers: ChildProcess[]
  url: string
}

async function startProcesses(configFile: string, dataDir: string): Promise<Processes> {
  const port = await freePort()
  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    ORDERBRIDGE_DB_SCHEMA: schema,
    REDIS_URL: redisUrl,
    ORDERBRIDGE_QUEUE_PREFIX: prefix,
    ORDERBRIDGE_CONFIG: configFile,
    ORDERBRIDGE_ADMIN_KEY: adminKey,
    ORDERBRIDGE_DATA_DIR: dataDir,
    PORT: String(port),
    LOG_LEVEL: 'warn',
  }
  const start = (mode: string) => spawn(node, [...nodeFlags, ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}`] : []), path.join(root, 'bin/orderbridge.mjs'), mode], { env, stdio: ['ignore', 'ignore', 'inherit'] })
  // The API migrates first; workers started together with it would wait on the same lock anyway.
  const api = start('api')
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false)
    if (ready) break
    if (i > 300) throw new Error('the API did not become ready')
    await new Promise((r) => setTimeout(r, 100))
  }
  return { api, workers: [start('worker'), start('worker')], url }
}

/** Set by the running scenario: the ERP simulator reports each sales order as it stores it. */
let onSalesOrderCreated: ((crmOrderNumber: string) => void) | undefined

/** Requests go over keep-alive node:http rather than fetch, so the bench costs the shared cores little. */
const webhookAgent = new http.Agent({ keepAlive: true, maxSockets: senders })
const baselineAgent = new http.Agent({ keepAlive: true, maxSockets: 2 * Number(args.concurrency) })
function post(agent: http.Agent, url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0)).on('error', reject)
    })
    request.on('error', reject)
    request.end(body)
  })
}

async function runScenario(scenario: Scenario, erp: ErpSimulator, processes: Processes) {
  erp.faults.reset()
  erp.faults.delayMs(scenario.erpDelayMs)
  const sentAt = new Map<string, number>()
  const doneAt = new Map<string, number>()
  onSalesOrderCreated = (externalId) => {
    if (sentAt.has(externalId) && !doneAt.has(externalId)) doneAt.set(externalId, Date.now())
  }

  const before = cpuSnapshot({ api: processes.api.pid!, worker1: processes.workers[0]!.pid!, worker2: processes.workers[1]!.pid!, bench: process.pid })
  const started = Date.now()
  let next = 0
  let rejected = 0
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (next < scenario.orders) {
        if (sentAt.size - doneAt.size >= maxInFlight) {
          await new Promise((r) => setTimeout(r, 5))
          continue
        }
        const n = next++
        const externalId = `E2E-${scenario.name}-${run}-${n}`
        const body = JSON.stringify({ type: 'order.created', data: sampleOrder(n, externalId) })
        const headers = signStandardWebhook(secret, `msg_${externalId}`, Math.floor(Date.now() / 1000), body)
        sentAt.set(externalId, Date.now())
        if ((await post(webhookAgent, `${processes.url}/webhooks/demo-crm`, { ...headers }, body)) !== 202) rejected++
      }
    }),
  )
  const deadline = Date.now() + 10 * 60_000
  while (doneAt.size < sentAt.size - rejected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  onSalesOrderCreated = undefined
  const after = cpuSnapshot({ api: processes.api.pid!, worker1: processes.workers[0]!.pid!, worker2: processes.workers[1]!.pid!, bench: process.pid })
  const finished = Math.max(...doneAt.values())
  const latencies = [...doneAt].map(([id, at]) => at - sentAt.get(id)!).sort((a, b) => a - b)
  const ordersPerSec = Math.round(doneAt.size / ((finished - started) / 1000))
  return {
    orders: sentAt.size,
    synced: doneAt.size,
    rejected,
    erpDelayMs: scenario.erpDelayMs,
    ordersPerSec,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    elapsedSec: Math.round((finished - started) / 100) / 10,
    cpuCores: coresBetween(before, after),
  }
}

/**
 * The baseline, in this process on the same ERP: the least a queue-backed integration does per
 * order, one BullMQ job that POSTs the sales order, at the two workers' combined concurrency. No
 * database, webhook, mapping or bookkeeping, so it is the machine's ceiling for "queue + one call".
 */
async function runBaseline(scenario: Scenario, erp: ErpSimulator) {
  erp.faults.reset()
  erp.faults.delayMs(scenario.erpDelayMs)
  const connection = { url: redisUrl, maxRetriesPerRequest: null }
  const queue = new Queue(`baseline-${scenario.name}`, { connection, prefix: `{${prefix}}` })
  let done = 0
  const finished = new Promise<void>((resolve) => {
    onSalesOrderCreated = () => {
      if (++done === orderCount) resolve()
    }
  })
  const worker = new Worker(
    queue.name,
    async (job) => {
      const status = await post(baselineAgent, `${erp.url}/sales-orders`, { authorization: `Bearer ${erpToken}`, 'idempotency-key': job.data.reference }, JSON.stringify(job.data))
      if (status !== 201) throw new Error(`the ERP answered ${status}`)
    },
    { connection, prefix: `{${prefix}}`, concurrency: 2 * Number(args.concurrency), autorun: false },
  )
  const jobs = Array.from({ length: orderCount }, (_, n) => {
    const order = sampleOrder(n, `BASE-${scenario.name}-${run}-${n}`)
    const lines = order.items.map((item) => ({ itemCode: item.product_code, qty: String(item.qty), price: item.price }))
    return { name: 'salesOrder', data: { reference: order.order_id, crmOrderNumber: order.order_id, customerCode: order.account.id, customerName: order.account.name, currency: order.currency, lines } }
  })
  for (let i = 0; i < jobs.length; i += 1000) await queue.addBulk(jobs.slice(i, i + 1000))
  const before = cpuSnapshot({ bench: process.pid })
  const started = Date.now()
  void worker.run()
  await finished
  const elapsed = Date.now() - started
  const after = cpuSnapshot({ bench: process.pid })
  onSalesOrderCreated = undefined
  await worker.close()
  await queue.close()
  return { orders: orderCount, ordersPerSec: Math.round(orderCount / (elapsed / 1000)), elapsedSec: Math.round(elapsed / 100) / 10, cpuCores: coresBetween(before, after) }
}

/**
 * Gives the planner statistics of the tables as they are now, as a database that has been running
 * a while has them: from autovacuum, or where it is off (as on the PostgreSQL the tests and benches
 * share) from orderbridge's own sweep, which runs at most once a minute, so not within a scenario.
 * Tables that were never analyzed are planned with default selectivities: hash joins over
 * whole-table scans instead of index lookups, whose cost grows with every order (docs/BENCHMARKS.md).
 */
async function analyze() {
  const db = await openDatabase({ engine: 'postgres', url: databaseUrl })
  try {
    await db.query(`analyze ${(await db.query<{ name: string }>(`select format('%I.%I', schemaname, relname) as name from pg_stat_user_tables where schemaname = $1`, [schema])).map((t) => t.name).join(', ')}`)
  } finally {
    await db.close()
  }
}

async function cleanUp(processes: Processes | undefined, erp: ErpSimulator | undefined, dataDir: string) {
  for (const child of [processes?.api, ...(processes?.workers ?? [])]) child?.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 1500))
  for (const child of [processes?.api, ...(processes?.workers ?? [])]) if (child && child.exitCode === null) child.kill('SIGKILL')
  await erp?.close()
  const db = await openDatabase({ engine: 'postgres', url: databaseUrl })
  await db.query(`drop schema if exists ${schema} cascade`)
  await db.close()
  const redis = new Redis(redisUrl)
  let cursor = '0'
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 1000)
    if (keys.length) await redis.del(...keys)
    cursor = nextCursor
  } while (cursor !== '0')
  redis.disconnect()
  rmSync(dataDir, { recursive: true, force: true })
}

async function main() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-bench-e2e-'))
  let erp: ErpSimulator | undefined
  let processes: Processes | undefined
  try {
    erp = await startErpSimulator({ apiToken: erpToken, onSalesOrderCreated: (order) => onSalesOrderCreated?.(String(order.crmOrderNumber)) })
    const configFile = path.join(dataDir, 'orderbridge.yaml')
    writeFileSync(
      configFile,
      [
        'connections:',
        '  - id: demo-crm',
        '    connector: demo-crm',
        `    secrets: { webhookSecret: "${secret}" }`,
        '    mappings: { inbound: demo-crm.to-canonical.order }',
        '  - id: demo-erp',
        '    connector: generic-rest',
        `    settings: { baseUrl: "${erp.url}" }`,
        `    secrets: { apiToken: "${erpToken}" }`,
        '    mappings: { salesOrder: canonical.to-demo-erp.sales-order }',
        `    concurrency: ${Number(args.concurrency)}`,
        'pipeline: { erp: demo-erp }',
        '',
      ].join('\n'),
    )
    processes = await startProcesses(configFile, dataDir)
    if (warmupCount > 0) {
      const warmup = await runScenario({ name: 'warmup', erpDelayMs: 0, orders: warmupCount }, erp, processes)
      console.log(`warm-up: ${warmup.synced}/${warmup.orders} orders at ${warmup.ordersPerSec} orders/s, not counted`)
    }
    const results: Record<string, Awaited<ReturnType<typeof runScenario>> & { target: number; met: boolean; baseline: Awaited<ReturnType<typeof runBaseline>>; ratio: number }> = {}
    for (const scenario of [{ name: 'instant', erpDelayMs: 0, orders: orderCount }, { name: 'latency50ms', erpDelayMs: 50, orders: orderCount }] as const) {
      await analyze()
      const measured = await runScenario(scenario, erp, processes)
      const result = { ...measured, target: targets[scenario.name], met: measured.ordersPerSec >= targets[scenario.name] }
      const baseline = await runBaseline(scenario, erp)
      results[scenario.name] = { ...result, baseline, ratio: Math.round((result.ordersPerSec / baseline.ordersPerSec) * 1000) / 1000 }
      console.log(
        `${scenario.name}: ${result.synced}/${result.orders} orders in ${result.elapsedSec} s = ${result.ordersPerSec} orders/s (target ${result.target}), ` +
          `webhook → ERP p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms; cores: ${JSON.stringify(result.cpuCores)}; ` +
          `baseline (one BullMQ job + one ERP call per order, in-process): ${baseline.ordersPerSec} orders/s`,
      )
    }
    console.log(JSON.stringify({ bench: 'e2e', ordersPerScenario: orderCount, warmupOrders: warmupCount, maxInFlight, apiProcesses: 1, workerProcesses: 2, syncConcurrencyPerWorker: Number(args.concurrency), ...results }))
  } finally {
    await cleanUp(processes, erp, dataDir)
  }
}

await main()
