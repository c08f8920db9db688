/**
 * The `orderbridge` command: process modes (all, api, worker, migrate), the demo simulators, `demo`
 * (the default demo, or chosen connectors: src/cli/demo-start.ts), `demo send`, and the offline `mappings` commands. Parses arguments and hands over; owns signals and exit codes.
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadEnv, type Env } from './config.ts'
import { migrate } from './db/migrate.ts'
import { RedisUnavailable } from './queue/redis-bootstrap.ts'
import { openStorage, startOrderbridge, type Mode } from './server.ts'
import { runDemoSend } from './cli/demo-send.ts'
import { parseDemoArgs, startChosenDemo } from './cli/demo-start.ts'
import { reconcileUsage, runReconcileCommand } from './cli/reconcile-command.ts'
import { runMappingsCommand } from './cli/mappings-command.ts'
import { runConnectorsCommand } from './cli/connectors-command.ts'
import { loadOrCreateCredentials } from './demo/demo-credentials.ts'
import { DemoChoiceError, crmChoiceIds, erpChoiceIds, wmsChoiceIds } from './demo/demo-choices.ts'
import { startDemoSimulators } from './demo/demo-environment.ts'

const usage = `orderbridge — order-collaboration middleware

usage:
  orderbridge [all]          API, workers and (without ORDERBRIDGE_CONFIG) the demo, in one process
  orderbridge api            the HTTP API only
  orderbridge worker         the queue workers only
  orderbridge migrate        apply database migrations and exit
  orderbridge simulators     run the demo ERP and WMS simulators (ports 4103, 4102)
  orderbridge demo           the demo in one process, as \`npm start\` runs it (demo CRM, demo ERP, demo WMS)
  orderbridge demo --crm ${crmChoiceIds.join('|')} --erp ${erpChoiceIds.join('|')} [--wms ${wmsChoiceIds.join('|')}]
                             the demo with the chosen connectors, each against its simulator (tryton: a live
                             Tryton, as ERP and inventory: [--tryton-env FILE] [--no-clerk], see connectors/tryton/README.md)
  orderbridge demo send [--orders N] [--url URL] [--concurrency N] [--timeout SECONDS] [--until synced|completed]
                             have the demo's CRM send N orders and wait until they are synced
  orderbridge mappings validate [files...]
                             check mapping files (all of ./mappings by default)
  orderbridge mappings preview <id> <document.json> [--lookups lookups.json]
                             apply a mapping to a document and print the output
  orderbridge mappings test [--dir mappings/examples]
                             run the golden examples of every mapping
  ${reconcileUsage}
  orderbridge connectors new <id> [--dir DIR] [--name NAME]
                             scaffold a connector (DIR/<id>/, DIR defaults to ./connectors)

configuration: environment variables (see README.md) and ORDERBRIDGE_CONFIG.`

function fail(message: string): never {
  console.error(`orderbridge: ${message}`)
  process.exit(1)
}

function onSignals(close: () => Promise<void>, timeoutMs: number): void {
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    console.error(`orderbridge: ${signal} received, draining (at most ${timeoutMs} ms)`)
    // The drain is bounded: whatever is still running after the timeout is left to stalled-job recovery.
    setTimeout(() => {
      console.error('orderbridge: drain timed out; exiting')
      process.exit(1)
    }, timeoutMs + 5_000).unref()
    close().then(() => process.exit(0), () => process.exit(1))
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

async function main(argv: string[]): Promise<void> {
  const [command = 'all', ...rest] = argv
  if (command === 'help' || command === '--help' || command === '-h') return void console.log(usage)
  // Before the environment: the mappings commands read files only, in CI as much as on a server.
  if (command === 'mappings') {
    process.exitCode = await runMappingsCommand(rest)
    return
  }
  if (command === 'connectors') {
    process.exitCode = await runConnectorsCommand(rest)
    return
  }
  const env = loadEnv()

  if (command === 'migrate') {
    const db = await openStorage(env)
    const applied = await migrate(db)
    await db.close()
    console.log(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date')
    return
  }
  if (command === 'reconcile') {
    process.exitCode = await runReconcileCommand(rest, env)
    return
  }
  if (command === 'simulators') {
    const { values } = parseArgs({ args: rest, options: { host: { type: 'string', default: '127.0.0.1' } } })
    const sims = await startDemoSimulators(loadOrCreateCredentials(env), { erp: 4103, wms: 4102, host: values.host })
    console.log(`demo ERP simulator: ${sims.erpUrl}\ndemo WMS simulator: ${sims.wmsUrl}`)
    onSignals(() => sims.close(), env.ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS)
    return
  }
  if (command === 'demo' && rest.length === 0) return startProcess('all', { ...env, ORDERBRIDGE_CONFIG: undefined })
  if (command === 'demo' && rest[0]?.startsWith('--')) {
    const { choices, tryton } = parseDemoArgs(rest)
    const demo = await startChosenDemo(env, choices, { tryton })
    onSignals(demo.close, env.ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS)
    // Printed, not logged: the operator's start-up banner (it holds the admin key).
    console.log(demo.banner().join('\n'))
    return
  }
  if (command === 'demo') {
    const [sub, ...args] = rest
    if (sub !== 'send') fail(`unknown demo command "${sub ?? ''}"\n\n${usage}`)
    const { values } = parseArgs({
      args,
      options: {
        orders: { type: 'string', default: '10' },
        url: { type: 'string' },
        concurrency: { type: 'string', default: '10' },
        timeout: { type: 'string', default: '120' },
        until: { type: 'string', default: 'synced' },
      },
    })
    if (values.until !== 'synced' && values.until !== 'completed') fail(`--until must be synced or completed, not "${values.until}"`)
    const summary = await runDemoSend(env, {
      orders: Number(values.orders),
      url: values.url ?? `http://127.0.0.1:${env.PORT}`,
      concurrency: Number(values.concurrency),
      timeoutMs: Number(values.timeout) * 1000,
      until: values.until,
      progress: (line) => console.error(line),
    })
    console.log(JSON.stringify(summary))
    const reached = values.until === 'completed' ? (summary.states.completed ?? 0) : summary.synced
    process.exitCode = reached === summary.sent ? 0 : 1
    return
  }
  if (!['all', 'api', 'worker'].includes(command)) fail(`unknown command "${command}"\n\n${usage}`)
  await startProcess(command as Mode, env)
}

/** A process mode; `all` without ORDERBRIDGE_CONFIG is the default demo. */
async function startProcess(command: Mode, env: Env): Promise<void> {
  const running = await startOrderbridge({ mode: command, env })
  onSignals(running.close, env.ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS)
  const lines = [`orderbridge ${command} mode, storage: ${running.db.engine === 'pglite' ? `PGlite in ${env.ORDERBRIDGE_DATA_DIR}` : 'PostgreSQL'}`]
  if (running.url) lines.push(`listening on ${running.url}  (ops: ${running.url}/admin/queues, health: ${running.url}/readyz)`)
  if (running.adminKey) lines.push(`admin key: ${running.adminKey}`)
  if (running.demo) {
    lines.push(
      `demo: webhooks to ${running.url}/webhooks/demo-crm, signed with ${running.demo.webhookSecret}`,
      `demo CRM ${running.demo.crmUrl}, demo ERP ${running.demo.erpUrl}, demo WMS ${running.demo.wmsUrl}`,
      `try: npx orderbridge demo send --orders 100   or   curl -X POST ${running.demo.crmUrl}/orders -H 'content-type: application/json' -d '{"count": 5}'`,
    )
  }
  // Printed, not logged: this is the operator's start-up banner; logs never carry keys.
  console.log(lines.join('\n'))
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(err.message)
  if (err instanceof RedisUnavailable) fail(err.message)
  if (err instanceof DemoChoiceError) fail(err.message)
  console.error(err)
  process.exit(1)
})
