/**
 * Ingest benchmark (`npm run bench:ingest [-- --duration 10 --warmup 2 --connections 100]`).
 *
 * Posts signed 2 KB demo CRM orders over 100 keep-alive connections (autocannon) first at a bare
 * Fastify route that answers 202, then at orderbridge in the API mode on PostgreSQL and Redis, in
 * the same run, each server in its own process (bench/ingest-target.ts). Every delivery sent to
 * orderbridge has its own webhook-id and order id and a valid Standard Webhooks signature, signed
 * before the run so the load generator spends no time on HMAC; the bare route gets the same kind
 * of requests, built the same way, from a smaller pool reused in a loop. After the orderbridge run,
 * every webhook-id answered 202 must be in the inbox.
 *
 * The machine is shared: the CPU used by each process group is read from /proc and reported, and a
 * run in which other processes were busy is flagged. PostgreSQL and Redis default to 127.0.0.1
 * (BENCH_DATABASE_URL, BENCH_REDIS_URL); `--cpu-prof DIR` profiles the orderbridge process.
 *
 * Prints readable lines, then, as its last line, one JSON object with the figures. Exits 0 whether
 * or not the targets are met (it is a measurement); non-zero on errors, including an acknowledged
 * delivery missing from the inbox. Leaves nothing behind: child processes, the PostgreSQL schema
 * and the Redis keys of the run are removed at the end.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism, tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { signStandardWebhook } from '../src/connector-kit/index.ts'
import { openDatabase } from '../src/db/database.ts'
import { createQueueSet } from '../src/queue/queues.ts'
import type { BenchCommand, TargetKind, TargetMessage } from './ingest-target.ts'
import { coresBetween, cpuSnapshot } from './support/cpu.ts'

const targets = { ratio: 0.25, p99Ms: 50 }
const bodyBytes = 2048
const webhookPath = '/webhooks/demo-crm'
const databaseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
// Signatures are valid for 5 minutes; the pool is signed once, just before its run.
const maxRunSeconds = 240
// Pool size per second of the orderbridge run; past it, deliveries are signed on the fly (counted).
const poolRatePerSecond = 20_000
// CPU used by unrelated processes (or stolen by the hypervisor) above which a run is flagged.
const noisyCores = 0.15

// autocannon ships no types; this is the part of its programmatic API used here.
interface AutocannonResult {
  requests: { average: number }
  latency: { p50: number; p99: number; max: number }
  non2xx: number
  /** Connection errors and timeouts. */
  errors: number
  statusCodeStats: Record<string, { count: number }>
}
interface AutocannonClient {
  requestIterator: { currentRequest: { requestBuffer?: Buffer } }
}
interface AutocannonRequest {
  method: string
  path: string
  headers: Record<string, string>
  body?: string | Buffer
}
interface AutocannonRun extends PromiseLike<AutocannonResult> {
  on(event: 'response', listener: (client: AutocannonClient, statusCode: number) => void): void
}
type Autocannon = (options: {
  url: string
  connections: number
  duration: number
  timeout: number
  requests: { method: string; path: string; setupRequest(req: AutocannonRequest): AutocannonRequest }[]
}) => AutocannonRun
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon

// ---------------------------------------------------------------------------------------------
// Deliveries

interface OrderTemplate {
  prefix: string
  suffix: string
  lineCount: number
}

/**
 * A demo CRM `order.created` document of exactly `size` bytes, split around its order id so each
 * delivery gets its own id without serializing the document again.
 */
function orderTemplate(size: number, orderIdLength: number): OrderTemplate {
  const placeholder = '~'.repeat(orderIdLength)
  const document = (lineCount: number, ownerPadding: number) =>
    JSON.stringify({
      type: 'order.created',
      data: {
        order_id: placeholder,
        version: 1,
        account: { id: 'ACC-7', name: 'Hangzhou Yuntu Trading' },
        currency: 'CNY',
        items: Array.from({ length: lineCount }, (_, i) => ({
          product_code: `SKU-${100 + (i % 37)}`,
          qty: 1 + (i % 5),
          price: `${99 + ((i * 13) % 400)}.${String((i * 7) % 100).padStart(2, '0')}`,
        })),
        owner: `rep-1${'x'.repeat(ownerPadding)}`,
        created_at: '2026-11-26T08:00:00.000Z',
      },
    })
  let lines = 1
  while (Buffer.byteLength(document(lines + 1, 0)) <= size) lines++
  const text = document(lines, size - Buffer.byteLength(document(lines, 0)))
  if (Buffer.byteLength(text) !== size) throw new Error(`could not build a ${size}-byte order (got ${Buffer.byteLength(text)})`)
  const at = text.indexOf(placeholder)
  return { prefix: text.slice(0, at), suffix: text.slice(at + placeholder.length), lineCount: lines }
}

interface Deliveries {
  /** Headers and body of the next delivery; never the same webhook-id twice unless `wrap`. */
  next(): { headers: Record<string, string>; body: string }
  readonly signedLive: number
}

// Order ids are `SO-<6 hex>-<8 digits>`, so every body has the same length.
const orderIdLength = 'SO-'.length + 6 + '-'.length + 8

/**
 * Signs `size` deliveries up front. With `wrap` the pool is reused in a loop (the bare route does
 * not care); without, deliveries past the pool are signed when sent and counted in `signedLive`.
 */
function signDeliveries(secret: string, template: OrderTemplate, size: number, wrap: boolean): Deliveries {
  const tag = randomBytes(3).toString('hex')
  const timestamp = Math.floor(Date.now() / 1000)
  const webhookId = (n: number) => `msg_${tag}_${n}`
  const body = (n: number) => `${template.prefix}SO-${tag}-${String(n).padStart(8, '0')}${template.suffix}`
  const signature = (n: number) => signStandardWebhook(secret, webhookId(n), timestamp, body(n))['webhook-signature']
  const signatures = Array.from({ length: size }, (_, n) => signature(n))
  let issued = 0
  let signedLive = 0
  return {
    next() {
      const n = wrap ? issued % size : issued
      issued++
      let sig = signatures[n]
      if (sig === undefined) {
        sig = signature(n)
        signedLive++
      }
      return {
        headers: { 'content-type': 'application/json', 'webhook-id': webhookId(n), 'webhook-timestamp': String(timestamp), 'webhook-signature': sig },
        body: body(n),
      }
    },
    get signedLive() {
      return signedLive
    },
  }
}

const webhookIdMarker = Buffer.from('\r\nwebhook-id: ')

/** The webhook-id of the request a connection has just been answered for (pipelining is 1). */
function answeredWebhookId(client: AutocannonClient): string | undefined {
  const buffer = client.requestIterator.currentRequest.requestBuffer
  const at = buffer?.indexOf(webhookIdMarker) ?? -1
  if (!buffer || at < 0) return undefined
  const start = at + webhookIdMarker.length
  return buffer.toString('latin1', start, buffer.indexOf('\r\n', start))
}

// ---------------------------------------------------------------------------------------------
// Target processes

interface Target {
  url: string
  pid: number
  close(): Promise<void>
  kill(): void
}

const targetFile = path.join(import.meta.dirname, 'ingest-target.ts')

async function startTarget(kind: TargetKind, env: NodeJS.ProcessEnv, cpuProfileDir?: string): Promise<Target> {
  const child: ChildProcess = fork(targetFile, [kind], {
    env,
    execArgv: cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`] : [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`the ${kind} target was not ready within 60 s`)), 60_000)
    const onMessage = (message: TargetMessage) => message.type === 'ready' && finish(undefined, message.url)
    const onExit = (code: number | null) => finish(new Error(`the ${kind} target exited (code ${code}) before it was ready`))
    function finish(err?: Error, url?: string) {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(url!)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
  try {
    const url = await ready
    return {
      url,
      pid: child.pid!,
      async close() {
        child.send({ type: 'close' } satisfies BenchCommand)
        const timer = setTimeout(kill, 30_000)
        const code = await exited
        clearTimeout(timer)
        if (code !== 0) throw new Error(`the ${kind} target did not shut down cleanly (exit code ${code})`)
      },
      kill,
    }
  } catch (err) {
    kill()
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/** Cores used by group; `other` is everything else on the machine, `steal` the hypervisor's share. */
type CpuCores = ReturnType<typeof coresBetween<'server' | 'loadGenerator'>>

interface Measured {
  reqPerSec: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  non2xx: number
  errors: number
  statusCodes: Record<string, number>
  /** CPU cores used on average during the measured window. */
  cpuCores: CpuCores
}

interface RunOptions {
  connections: number
  durationSec: number
  warmupSec: number
}

/** Warm-up (not counted), then the measured window; `acked` collects the webhook-ids answered 202. */
async function load(target: Target, deliveries: Deliveries, options: RunOptions, acked: Set<string>): Promise<Measured> {
  const run = (seconds: number) => {
    const running = autocannon({
      url: target.url,
      connections: options.connections,
      duration: seconds,
      timeout: 10,
      requests: [
        {
          method: 'POST',
          path: webhookPath,
          setupRequest(req) {
            const next = deliveries.next()
            req.headers = next.headers
            req.body = next.body
            return req
          },
        },
      ],
    })
    running.on('response', (client, statusCode) => {
      if (statusCode !== 202) return
      const id = answeredWebhookId(client)
      if (id) acked.add(id)
    })
    return running
  }
  if (options.warmupSec > 0) await run(options.warmupSec)
  const before = cpuSnapshot({ server: target.pid, loadGenerator: process.pid })
  const result = await run(options.durationSec)
  const after = cpuSnapshot({ server: target.pid, loadGenerator: process.pid })
  return {
    reqPerSec: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count])),
    cpuCores: coresBetween(before, after),
  }
}

/** One signed delivery over fetch before loading, so a misconfiguration fails fast instead of measuring 401s. */
async function probe(target: Target, deliveries: Deliveries, acked: Set<string>): Promise<void> {
  const { headers, body } = deliveries.next()
  const response = await fetch(`${target.url}${webhookPath}`, { method: 'POST', headers, body })
  const text = await response.text()
  if (response.status !== 202) throw new Error(`probe delivery answered ${response.status}, expected 202: ${text.slice(0, 300)}`)
  acked.add(headers['webhook-id']!)
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits

// ---------------------------------------------------------------------------------------------
// Cleanup

async function deleteQueueKeys(prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  let deleted = 0
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `{${prefix}}:*`, 'COUNT', 1000)
      if (keys.length) deleted += await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
  return deleted
}

async function dropSchema(schema: string): Promise<void> {
  const db = await openDatabase({ engine: 'postgres', url: databaseUrl, poolSize: 1 })
  try {
    await db.query(`drop schema if exists ${schema} cascade`)
  } finally {
    await db.close()
  }
}

// ---------------------------------------------------------------------------------------------

interface Durability {
  acked: number
  inboxRows: number
  ackedMissing: number
  queuedEvents: number
  batches: number
  avgBatch: number
  maxBatch: number
}

/** After the server has drained: every acknowledged delivery must be a row, and every row a job. */
async function checkDurability(schema: string, prefix: string, acked: Set<string>): Promise<Durability> {
  const db = await openDatabase({ engine: 'postgres', url: databaseUrl, schema, poolSize: 1 })
  try {
    const rows = await db.query<{ event_id: string }>(`select event_id from inbox_events where connection_id = 'demo-crm'`)
    const stored = new Set(rows.map((r) => r.event_id))
    let ackedMissing = 0
    for (const id of acked) if (!stored.has(id)) ackedMissing++
    // received_at defaults to now(), the start of the transaction: one value per group commit.
    const [batches] = await db.query<{ batches: number; max_batch: number }>(
      `select count(*)::int8 as batches, coalesce(max(n), 0)::int8 as max_batch
       from (select count(*) as n from inbox_events group by received_at) b`,
    )
    const queues = createQueueSet({ redisUrl, prefix, syncConnections: [] })
    let queuedEvents: number
    try {
      // A job carries the inbox ids of one commit: count the events queued, not the jobs.
      const waiting = await queues.ingest.getWaiting(0, -1)
      queuedEvents = waiting.reduce((sum, job) => sum + job.data.inboxIds.length, 0)
    } finally {
      await queues.close()
    }
    const batchCount = batches?.batches ?? 0
    return {
      acked: acked.size,
      inboxRows: rows.length,
      ackedMissing,
      queuedEvents,
      batches: batchCount,
      avgBatch: batchCount ? round(rows.length / batchCount, 1) : 0,
      maxBatch: batches?.max_batch ?? 0,
    }
  } finally {
    await db.close()
  }
}

function line(label: string, m: Measured): string {
  const c = m.cpuCores
  return (
    `${label.padEnd(22)} ${m.reqPerSec.toLocaleString('en-US').padStart(7)} req/s   p50 ${m.p50Ms} ms   p99 ${m.p99Ms} ms   max ${m.maxMs} ms   non-2xx ${m.non2xx}   errors ${m.errors}\n` +
    `${''.padEnd(22)} CPU cores: server ${c.server}, load generator ${c.loadGenerator}, postgres ${c.postgres}, redis ${c.redis}, other ${c.other} (machine ${c.machine} of ${availableParallelism()}, hypervisor steal ${c.steal})`
  )
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '100' },
      // Writes a .cpuprofile of the orderbridge process into this folder.
      'cpu-prof': { type: 'string' },
    },
  })
  const options: RunOptions = { durationSec: Number(values.duration), warmupSec: Number(values.warmup), connections: Number(values.connections) }
  if (!(options.durationSec > 0) || !(options.warmupSec >= 0) || !Number.isInteger(options.connections) || options.connections < 1) {
    throw new Error('usage: ingest.bench.ts [--duration seconds] [--warmup seconds] [--connections n] [--cpu-prof dir]')
  }
  if (options.durationSec + options.warmupSec > maxRunSeconds) throw new Error(`warm-up + duration must stay under ${maxRunSeconds} s: the signatures are valid for 5 minutes`)

  const secret = `whsec_${randomBytes(24).toString('base64')}`
  const template = orderTemplate(bodyBytes, orderIdLength)
  const cleanups: (() => Promise<unknown>)[] = []
  const cleanUp = async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => console.error('cleanup failed:', err))
    cleanups.length = 0
  }
  const onSignal = () => void cleanUp().finally(() => process.exit(130))
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  console.log(
    `ingest bench: ${bodyBytes}-byte signed demo CRM orders (${template.lineCount} lines each), ${options.connections} connections, ` +
      `${options.warmupSec} s warm-up + ${options.durationSec} s measured per target, ${availableParallelism()} CPUs, node ${process.version}`,
  )
  try {
    // 1. The bare route.
    const bareAcked = new Set<string>()
    const bareDeliveries = signDeliveries(secret, template, poolRatePerSecond, true)
    const bareTarget = await startTarget('bare', { ...process.env })
    cleanups.push(async () => bareTarget.kill())
    await probe(bareTarget, bareDeliveries, bareAcked)
    const bare = await load(bareTarget, bareDeliveries, options, bareAcked)
    await bareTarget.close()
    console.log(line('bare fastify 202', bare))

    // 2. orderbridge, API mode, on PostgreSQL.
    const schema = `bench_${randomBytes(5).toString('hex')}`
    const prefix = `bench_${randomBytes(5).toString('hex')}`
    const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-bench-'))
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }))
    cleanups.push(() => deleteQueueKeys(prefix))
    cleanups.push(() => dropSchema(schema))
    const poolSize = Math.ceil((options.durationSec + options.warmupSec) * poolRatePerSecond) + options.connections * 2
    const deliveries = signDeliveries(secret, template, poolSize, false)
    const acked = new Set<string>()
    const target = await startTarget(
      'orderbridge',
      {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: databaseUrl,
        ORDERBRIDGE_DB_SCHEMA: schema,
        REDIS_URL: redisUrl,
        ORDERBRIDGE_QUEUE_PREFIX: prefix,
        ORDERBRIDGE_DATA_DIR: dataDir,
        ORDERBRIDGE_ADMIN_KEY: `obk_bench_${randomBytes(16).toString('hex')}`,
        ORDERBRIDGE_DEMO_WEBHOOK_SECRET: secret,
        ORDERBRIDGE_CONFIG: '',
        LOG_LEVEL: 'warn',
      },
      values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined,
    )
    cleanups.push(async () => target.kill())
    await probe(target, deliveries, acked)
    const ours = await load(target, deliveries, options, acked)
    // The graceful close waits for every accepted write, so the inbox is final when it returns.
    await target.close()
    console.log(line('orderbridge api (pg)', ours))
    const durability = await checkDurability(schema, prefix, acked)
    console.log(
      `durability: ${durability.acked.toLocaleString('en-US')} deliveries acknowledged (warm-up included), ${durability.inboxRows.toLocaleString('en-US')} inbox rows ` +
        `(${(durability.inboxRows - durability.acked).toLocaleString('en-US')} committed after the client hung up), ${durability.ackedMissing} acknowledged but missing; ` +
        `${durability.queuedEvents.toLocaleString('en-US')} events queued for normalize; ${durability.batches.toLocaleString('en-US')} group commits, ` +
        `${durability.avgBatch} rows each on average (max ${durability.maxBatch})` +
        (deliveries.signedLive ? `; ${deliveries.signedLive} deliveries signed during the run (pool too small)` : ''),
    )

    const throughputRatio = round(ours.reqPerSec / bare.reqPerSec, 3)
    const met = throughputRatio >= targets.ratio && ours.p99Ms < targets.p99Ms && ours.non2xx === 0 && ours.errors === 0 && durability.ackedMissing === 0
    console.log(
      `throughput ratio ${throughputRatio} (target >= ${targets.ratio}), p99 ${ours.p99Ms} ms (target < ${targets.p99Ms} ms), ` +
        `non-2xx ${ours.non2xx}, errors ${ours.errors}: ${met ? 'target met' : 'target NOT met'}`,
    )
    if (durability.ackedMissing) console.error(`ERROR: ${durability.ackedMissing} acknowledged deliveries are not in the inbox`)
    const neighbours = Math.max(bare.cpuCores.other, ours.cpuCores.other, bare.cpuCores.steal, ours.cpuCores.steal)
    if (neighbours > noisyCores) {
      console.log(`WARNING: other processes (or the hypervisor) took up to ${neighbours} cores during a measured window; the ratio is not reliable, run again when the machine is quiet`)
    }
    await cleanUp()
    console.log(
      JSON.stringify({
        bench: 'ingest',
        durationSec: options.durationSec,
        warmupSec: options.warmupSec,
        connections: options.connections,
        bodyBytes,
        bare,
        orderbridge: { ...ours, ...durability, signedLive: deliveries.signedLive },
        throughputRatio,
        targets,
        met,
      }),
    )
    return durability.ackedMissing ? 1 : 0
  } finally {
    await cleanUp()
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('bench:ingest failed:', err)
    process.exit(1)
  },
)
