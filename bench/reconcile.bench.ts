/**
 * Reconciliation benchmark (`npm run bench:reconcile [-- --orders 100000 --sample 5000 --batch 500]`).
 *
 * Seeds N orders straight into PostgreSQL (its own schema), each with a synced link to the demo ERP,
 * a third of them invoiced and paid, and the matching sales orders and invoices into the demo ERP
 * simulator in bulk (`erp.seed`, no HTTP). A little drift is made on purpose (sales orders deleted,
 * totals changed, orphans added: 0.02% each), so the run has something to find. Then a full
 * reconciliation run (every order, report-only: ERP sales orders, invoices, and the orphan scan)
 * runs in a child process, whose peak RSS is what is reported; the simulator stays in this one.
 * The child runs with the V8 flags orderbridge's processes run with (src/shared/node-flags.ts).
 * In the same child, the baseline: a naive loop over a sample of orders (one query per order, one
 * call for its sales orders and one for its invoices, the same comparisons). Then the same run again
 * with Node's defaults, for comparison: on a large machine V8 grows the young generation to 128 MB,
 * which is most of the RSS then.
 *
 * Prints readable lines and, as its last line, one JSON object. Targets: ≥ 5,000 orders/s and a
 * peak RSS under 300 MB. Exits 0 whether or not they are met (it is a measurement); non-zero on
 * errors, or when a run did not find exactly the drift that was made. `--node-flags="…"` adds Node
 * flags to both runs (with `=`: parseArgs refuses a separate value that starts with `-`). PostgreSQL
 * defaults to 127.0.0.1 (BENCH_DATABASE_URL); the schema is dropped at the end, on errors and on
 * Ctrl-C as well.
 */
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { demoCrm } from '../connectors/demo-crm/index.ts'
import { genericRest } from '../connectors/generic-rest/index.ts'
import { startErpSimulator, type SeedSalesOrder } from '../connectors/generic-rest/simulator.ts'
import { createConnectionRegistry } from '../src/connections/connection-registry.ts'
import type { FileConfig } from '../src/config.ts'
import { openDatabase, type Database } from '../src/db/database.ts'
import { migrate } from '../src/db/migrate.ts'
import { createDatabaseCatalog, loadMappingFiles } from '../src/mapping/mapping-catalog.ts'
import { createLifecycle } from '../src/orders/lifecycle.ts'
import { withTotals } from '../src/orders/order.schemas.ts'
import { compareInvoices, compareSalesOrders } from '../src/reconciliation/compare.ts'
import { executeRun } from '../src/reconciliation/reconcile.ts'
import { loadOrderPage } from '../src/reconciliation/reconciliation.repository.ts'
import { driftKinds, reconciliationSettingsSchema, type ReconciliationPolicy } from '../src/reconciliation/reconciliation.schemas.ts'
import { requestRun } from '../src/reconciliation/reconciliation.service.ts'
import { nodeFlags } from '../src/shared/node-flags.ts'
import { coresBetween, cpuSnapshot } from './support/cpu.ts'

const { values: args } = parseArgs({
  options: {
    orders: { type: 'string', default: '100000' },
    sample: { type: 'string', default: '5000' },
    batch: { type: 'string', default: '500' },
    'node-flags': { type: 'string', description: 'V8/Node flags for the reconciling process, e.g. "--optimize-for-size"' },
    // Internal: the child process that runs the reconciliation.
    child: { type: 'boolean', default: false },
    schema: { type: 'string' },
    'erp-url': { type: 'string' },
    'erp-token': { type: 'string' },
  },
})

const targets = { ordersPerSec: 5_000, peakRssMb: 300 }
const databaseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const root = path.resolve(import.meta.dirname, '..')
const node = path.join(root, 'node_modules/.bin/node')
const webhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const quiet = { info() {}, warn() {}, error() {} }
const reportAll = Object.fromEntries(driftKinds.map((k) => [k, 'report'])) as ReconciliationPolicy

function benchConfig(erpUrl: string, erpToken: string): FileConfig {
  return {
    connections: [
      // A push-only CRM source: no status is written back, so the run compares the ERP alone.
      { id: 'demo-crm', connector: 'demo-crm', settings: {}, secrets: { webhookSecret }, mappings: { inbound: 'demo-crm.to-canonical.order' } },
      { id: 'demo-erp', connector: 'generic-rest', settings: { baseUrl: erpUrl }, secrets: { apiToken: erpToken }, mappings: { salesOrder: 'canonical.to-demo-erp.sales-order' } },
    ],
    pipeline: { erp: 'demo-erp' },
  }
}

export interface ChildResult {
  orders: number
  seconds: number
  ordersPerSec: number
  peakRssMb: number
  status: string
  discrepancies: number
  byKind: Record<string, number>
  targetRecordsChecked: number
  /** CPU cores the reconciling process used during the run (its own measure: it has exited when the parent looks). */
  runnerCores: number
  naive: { orders: number; seconds: number; ordersPerSec: number; discrepancies: number }
}

/** Tells the parent where the child is (a line on stdout) and waits for its go-ahead on stdin. */
async function mark(phase: string): Promise<void> {
  process.stdout.write(`${JSON.stringify({ phase })}\n`)
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()))
}

/** The child: one full run, then the naive baseline over a sample; prints one JSON line. */
async function child(): Promise<void> {
  let peakRss = process.memoryUsage.rss()
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20)
  const db = await openDatabase({ engine: 'postgres', url: databaseUrl, schema: args.schema!, poolSize: 10 })
  try {
    const mappings = createDatabaseCatalog(db, loadMappingFiles().map((f) => f.spec.id))
    const connections = createConnectionRegistry(benchConfig(args['erp-url']!, args['erp-token']!), [demoCrm, genericRest], mappings, 'the bench configuration')
    const lifecycle = createLifecycle({ connections, notifications: { rules: [] } })
    const settings = reconciliationSettingsSchema.parse({ batchSize: Number(args.batch), policy: reportAll })

    const run = await requestRun({ db, connections, settings }, { since: 'all' }, { trigger: 'cli', requestedBy: 'bench' })
    const started = performance.now()
    // The parent reads CPU figures at these two marks, while this process and its database sessions are alive.
    await mark('run-started')
    const cpuBefore = process.cpuUsage()
    const outcome = await executeRun({ db, connections, lifecycle, log: quiet, settings }, run.id)
    const cpu = process.cpuUsage(cpuBefore)
    await mark('run-done')
    // Nothing more comes from the parent; an open stdin would keep this process alive.
    process.stdin.destroy()
    const seconds = (performance.now() - started) / 1000
    if (!outcome) throw new Error('the run did not start')
    const checked = outcome.progress.ordersChecked + outcome.progress.ordersSkipped
    // The run's peak: sampled every 20 ms, and the kernel's high-water mark, taken before the baseline starts.
    const runPeakRss = Math.max(peakRss, process.memoryUsage.rss(), process.resourceUsage().maxRSS * 1024)
    clearInterval(sampler)

    // Baseline: the same comparisons, one order at a time.
    const erp = connections.pipeline.erp
    const ctx = { connectionId: erp.id, settings: erp.settings, secrets: erp.secrets, log: quiet }
    const sample = (await db.query<{ id: string }>('select id from orders order by id limit $1', [Number(args.sample)])).map((r) => r.id)
    const baseRun = { since: null, until: new Date(), orderIds: [] as string[] }
    let naiveFound = 0
    const naiveStarted = performance.now()
    for (const id of sample) {
      const { orders } = await loadOrderPage(db, { ...baseRun, orderIds: [id] }, null, 1, { erp: erp.id, inventory: null })
      const order = orders[0]!
      const salesOrders = await erp.connector.salesOrders!.findManyByReference!(ctx, [id])
      const { invoices } = await erp.connector.invoices!.list(ctx, { orderRefs: [id] })
      naiveFound += compareSalesOrders(order, salesOrders, erp.id, run.tolerance).length + (compareInvoices(order, invoices, erp.id, run.tolerance) ? 1 : 0)
    }
    const naiveSeconds = (performance.now() - naiveStarted) / 1000
    const result: ChildResult = {
      orders: checked,
      seconds: Math.round(seconds * 100) / 100,
      ordersPerSec: Math.round(checked / seconds),
      peakRssMb: Math.round(runPeakRss / 1024 / 1024),
      status: outcome.status,
      discrepancies: outcome.progress.discrepancies,
      byKind: Object.fromEntries(Object.entries(outcome.progress.counts.byKind).filter(([, n]) => (n ?? 0) > 0)) as Record<string, number>,
      targetRecordsChecked: outcome.progress.targetRecordsChecked,
      runnerCores: Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100,
      naive: { orders: sample.length, seconds: Math.round(naiveSeconds * 100) / 100, ordersPerSec: Math.round(sample.length / naiveSeconds), discrepancies: naiveFound },
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
  } finally {
    clearInterval(sampler)
    await db.close()
  }
}

const customers = [
  { externalId: 'ACC-1', name: 'Hangzhou Yuntu Trading' },
  { externalId: 'ACC-2', name: 'Suzhou Lanting Supplies' },
  { externalId: 'ACC-3', name: 'Ningbo Haiyun Logistics' },
]

/** Seeds `count` orders, their links and a third of them invoiced and paid, in PostgreSQL and in the ERP. */
async function seed(db: Database, erp: Awaited<ReturnType<typeof startErpSimulator>>, count: number): Promise<{ drift: Record<string, number> }> {
  const chunk = 5_000
  for (let from = 0; from < count; from += chunk) {
    const ids: string[] = []
    const externalIds: string[] = []
    const documents: string[] = []
    const totals: string[] = []
    const salesOrders: SeedSalesOrder[] = []
    for (let i = from; i < Math.min(count, from + chunk); i++) {
      const id = randomUUID()
      const customer = customers[i % customers.length]!
      const order = withTotals({
        externalId: `B-${i}`,
        customer,
        currency: 'CNY',
        owner: `rep-${1 + (i % 4)}`,
        lines: Array.from({ length: 1 + (i % 3) }, (_, l) => ({ sku: `SKU-${100 + ((i + l) % 10)}`, quantity: String(1 + ((i + l) % 5)), unitPrice: `${99 + ((i * 7 + l * 13) % 400)}.${String((i + l) % 100).padStart(2, '0')}` })),
      })
      ids.push(id)
      externalIds.push(order.externalId)
      documents.push(JSON.stringify(order))
      totals.push(order.total)
      salesOrders.push({
        reference: id,
        customerCode: customer.externalId,
        customerName: customer.name,
        currency: 'CNY',
        total: order.total,
        salesRep: order.owner,
        crmOrderNumber: order.externalId,
        lines: order.lines.map((l) => ({ itemCode: l.sku, qty: l.quantity, price: l.unitPrice, amount: l.lineTotal })),
      })
    }
    const { salesOrderIds } = erp.seed({ salesOrders })
    // Every third order is invoiced and paid in full, here and in the ERP.
    const invoiced = salesOrderIds.flatMap((soId, k) => ((from + k) % 3 === 0 ? [{ k, soId }] : []))
    erp.seed({ invoices: invoiced.map(({ k, soId }) => ({ salesOrderId: soId, paid: totals[k]! })) })
    const numbers = new Map(erp.invoices().filter((inv) => invoiced.some((x) => x.soId === inv.salesOrderId)).map((inv) => [inv.salesOrderId, inv.number]))
    const paid = ids.map((_, k) => ((from + k) % 3 === 0 ? totals[k]! : '0'))
    await db.query(
      `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total, payment_state, amount_paid, updated_at)
       select id, 'demo-crm', external_id, 'pending_shipment', 1, document, 'CNY', total, case when paid = '0' then 'not_invoiced' else 'paid' end, paid::numeric,
         now() - interval '1 hour' + (ord * interval '1 millisecond')
       from unnest($1::uuid[], $2::text[], $3::jsonb[], $4::numeric[], $5::text[]) with ordinality as t(id, external_id, document, total, paid, ord)`,
      [ids, externalIds, documents, totals, paid],
    )
    await db.query(
      `insert into links (order_id, connection_id, operation, external_id, status, last_synced_version, target_version)
       select id, 'demo-erp', 'salesOrders.upsert', external_id, 'synced', 1, 1 from unnest($1::uuid[], $2::text[]) as t(id, external_id)`,
      [ids, salesOrderIds],
    )
    await db.query(
      `insert into invoices (order_id, connection_id, invoice_number, amount, currency) select id, 'demo-erp', num, amount, 'CNY' from unnest($1::uuid[], $2::text[], $3::numeric[]) as t(id, num, amount)`,
      [invoiced.map(({ k }) => ids[k]!), invoiced.map(({ soId }) => numbers.get(soId)!), invoiced.map(({ k }) => totals[k]!)],
    )
  }
  await db.query('analyze orders')
  await db.query('analyze links')
  await db.query('analyze invoices')

  // A little drift, so the run has something to find: 0.02% of each kind, at least one.
  const each = Math.max(1, Math.round(count * 0.0002))
  const salesOrders = erp.salesOrders()
  for (let k = 0; k < each; k++) {
    erp.drift.deleteSalesOrder(salesOrders[(k * 7919) % salesOrders.length]!.id)
    const changed = salesOrders[(k * 7919 + 3) % salesOrders.length]!
    erp.drift.updateSalesOrder(changed.id, { total: '0.01' })
    erp.drift.addSalesOrder({ reference: `HAND-${k}`, currency: 'CNY', total: '1.00', lines: [{ itemCode: 'SKU-100', qty: '1', price: '1.00', amount: '1.00' }] })
  }
  return { drift: { missing_in_target: each, amount_mismatch: each, orphan_in_target: each } }
}

/** CPU seconds of each PostgreSQL process, from /proc. */
function postgresSeconds(): Map<number, number> {
  const seconds = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      seconds.set(Number(entry), (Number(rest[11]) + Number(rest[12])) / 100)
    } catch {
      // exited meanwhile
    }
  }
  return seconds
}

/** What the PostgreSQL processes alive now used since `before` (a process started since counts whole). */
function postgresSecondsSince(before: Map<number, number>): number {
  let total = 0
  for (const [pid, seconds] of postgresSeconds()) total += Math.max(0, seconds - (before.get(pid) ?? 0))
  return total
}

interface Measured {
  result: ChildResult
  cores: Record<string, number>
  noisy: boolean
  foundDrift: boolean
  flags: string[]
}

/** Runs the reconciling child with these Node flags; CPU is read at its run's start and end marks. */
async function measure(flags: string[], withBaseline: boolean, ctx: { schema: string; erpUrl: string; erpToken: string; drift: Record<string, number>; track: (child: ReturnType<typeof spawn>) => void }): Promise<Measured> {
  const child = spawn(
    node,
    [...flags, path.join(root, 'bench/reconcile.bench.ts'), '--child', '--schema', ctx.schema, '--erp-url', ctx.erpUrl, '--erp-token', ctx.erpToken, '--batch', String(args.batch), '--sample', withBaseline ? String(args.sample) : '0'],
    { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, BENCH_DATABASE_URL: databaseUrl } },
  )
  ctx.track(child)
  let output = ''
  let before: ReturnType<typeof cpuSnapshot> | undefined
  let pgBefore = new Map<number, number>()
  let cores: Record<string, number> = {}
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8')
    for (;;) {
      const newline = output.indexOf('\n')
      if (newline < 0 || !output.startsWith('{"phase"')) break
      const { phase } = JSON.parse(output.slice(0, newline)) as { phase: string }
      output = output.slice(newline + 1)
      const named = { runner: child.pid!, simulator: process.pid }
      if (phase === 'run-started') {
        before = cpuSnapshot(named)
        pgBefore = postgresSeconds()
      } else {
        cores = coresBetween(before!, cpuSnapshot(named))
        // Per process: a session of someone else's that ends during the run must not cancel ours out.
        const pgCores = Math.round((postgresSecondsSince(pgBefore) / ((performance.now() - before!.at) / 1000)) * 100) / 100
        cores.other = Math.max(0, Math.round((cores.other! - (pgCores - cores.postgres!)) * 100) / 100)
        cores.postgres = pgCores
      }
      child.stdin.write('go\n')
    }
  })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  if (code !== 0) throw new Error(`the reconciliation process exited with ${code}`)
  const result = JSON.parse(output.trim().split('\n').at(-1)!) as ChildResult
  const foundDrift = Object.entries(ctx.drift).every(([kind, n]) => result.byKind[kind] === n) && result.discrepancies === Object.values(ctx.drift).reduce((a, b) => a + b, 0)
  return { result, cores, noisy: (cores.other ?? 0) + (cores.steal ?? 0) > 0.15, foundDrift, flags }
}

function describeRun(label: string, m: Measured): string {
  const r = m.result
  return (
    `${label}: ${r.orders} orders in ${r.seconds} s = ${r.ordersPerSec} orders/s (target ${targets.ordersPerSec}), peak RSS ${r.peakRssMb} MB (target < ${targets.peakRssMb}); ` +
    `${r.targetRecordsChecked} ERP records scanned for orphans; ${r.discrepancies} discrepancies ${JSON.stringify(r.byKind)}${m.foundDrift ? ' = the drift made' : ' ≠ THE DRIFT MADE'}\n` +
    `  CPU cores: reconciling process ${m.cores.runner}, ERP simulator ${m.cores.simulator}, postgres ${m.cores.postgres}, other ${m.cores.other}, steal ${m.cores.steal}${m.noisy ? '  (FLAGGED: other processes were busy; the machine is shared)' : ''}`
  )
}


async function parent(): Promise<void> {
  const orderCount = Number(args.orders)
  const schema = `bench_recon_${randomBytes(4).toString('hex')}`
  const erpToken = randomBytes(12).toString('hex')
  const db = await openDatabase({ engine: 'postgres', url: databaseUrl, schema, poolSize: 4 })
  const erp = await startErpSimulator({ apiToken: erpToken })
  let failed = false
  let runner: ReturnType<typeof spawn> | undefined
  // Ctrl-C: the child, the schema and the simulator go too.
  const interrupted = async () => {
    runner?.kill('SIGKILL')
    await erp.close().catch(() => {})
    await db.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await db.close().catch(() => {})
    process.exit(130)
  }
  process.once('SIGINT', () => void interrupted())
  process.once('SIGTERM', () => void interrupted())
  try {
    await migrate(db)
    const seeding = performance.now()
    const { drift } = await seed(db, erp, orderCount)
    console.log(`seeded ${orderCount} orders (and ${Math.ceil(orderCount / 3)} invoices) in PostgreSQL and the ERP simulator in ${((performance.now() - seeding) / 1000).toFixed(1)} s; drift made: ${JSON.stringify(drift)}`)
    const ctx = { schema, erpUrl: erp.url, erpToken, drift, track: (child: ReturnType<typeof spawn>) => (runner = child) }

    const extraFlags = args['node-flags']?.split(' ').filter(Boolean) ?? []
    const shipped = await measure([...nodeFlags, ...extraFlags], true, ctx)
    console.log(describeRun(`full run, as orderbridge runs (${shipped.flags.join(' ')})`, shipped))
    const naive = shipped.result.naive
    const ratio = Math.round((shipped.result.ordersPerSec / naive.ordersPerSec) * 10) / 10
    console.log(`baseline (per order: one query, one call for its sales orders, one for its invoices; ${naive.orders} orders): ${naive.seconds} s = ${naive.ordersPerSec} orders/s; batched ÷ naive = ${ratio}×`)
    const defaults = await measure(extraFlags, false, ctx)
    console.log(describeRun(`full run, Node's defaults${defaults.flags.length ? ` + ${defaults.flags.join(' ')}` : ''} (for comparison)`, defaults))
    failed = !shipped.foundDrift || !defaults.foundDrift || shipped.result.status !== 'succeeded' || defaults.result.status !== 'succeeded'
    const summary = (m: Measured) => ({
      nodeFlags: m.flags,
      orders: m.result.orders,
      seconds: m.result.seconds,
      ordersPerSec: m.result.ordersPerSec,
      peakRssMb: m.result.peakRssMb,
      discrepancies: m.result.discrepancies,
      byKind: m.result.byKind,
      foundDrift: m.foundDrift,
      targetRecordsChecked: m.result.targetRecordsChecked,
      cpuCores: m.cores,
      noisy: m.noisy,
      met: { ordersPerSec: m.result.ordersPerSec >= targets.ordersPerSec, peakRssMb: m.result.peakRssMb < targets.peakRssMb },
    })
    console.log(JSON.stringify({ bench: 'reconcile', orders: orderCount, batchSize: Number(args.batch), targets, run: summary(shipped), naive, ratio, nodeDefaults: summary(defaults) }))
  } finally {
    await erp.close()
    await db.query(`drop schema if exists ${schema} cascade`).catch(() => {})
    await db.close()
  }
  if (failed) process.exitCode = 1
}

await (args.child ? child() : parent())
