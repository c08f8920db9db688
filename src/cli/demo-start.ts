/**
 * `orderbridge demo --crm <crm> --erp <erp> [--wms <wms>]`: orderbridge in one process (as `npm start`:
 * the data folder's PGlite or DATABASE_URL, the local Redis) with the chosen connectors, each against
 * its simulator on loopback (Tryton: the live server), plus the order desk through which
 * `orderbridge demo send` has the chosen CRM deliver its orders. The systems come from the table in
 * src/demo/demo-choices.ts; this file only puts them together. Without flags, `orderbridge demo` is
 * `npm start`'s demo, and src/cli.ts runs that instead.
 */
import { parseArgs } from 'node:util'
import type { Logger } from 'pino'
import type { Env, FileConfig } from '../config.ts'
import { loadOrCreateCredentials } from '../demo/demo-credentials.ts'
import { startDemoApprover } from '../demo/demo-approver.ts'
import { DemoChoiceError, crmChoiceIds, crmChoices, erpChoiceIds, erpChoices, parseDemoChoices, wmsChoiceIds, wmsChoices, type DemoChoices, type DemoContext, type DemoCrm, type DemoErp, type DemoSystem } from '../demo/demo-choices.ts'
import { removeDemoRun, startDemoDesk, writeDemoRun } from '../demo/demo-desk.ts'
import { demoApprovalPolicy } from '../demo/demo-environment.ts'
import { mergeLookupTable } from '../mapping/lookup-tables.ts'
import { startOrderbridge, type RunningOrderbridge } from '../server.ts'

export interface ChosenDemo {
  choices: DemoChoices
  orderbridge: RunningOrderbridge
  url: string
  crm: DemoCrm
  erp: DemoErp
  wms?: DemoSystem
  /** The order desk `demo send` uses (also recorded in the data folder's demo-run.json). */
  deskUrl: string
  /** The start-up banner. */
  banner(): string[]
  close(): Promise<void>
}

export interface ChosenDemoOptions {
  tryton?: DemoContext['tryton']
  /** Simulators behave like the real systems over time (default true). */
  lifelike?: boolean
  logger?: Logger
}

export async function startChosenDemo(env: Env, choices: DemoChoices, options: ChosenDemoOptions = {}): Promise<ChosenDemo> {
  const context: DemoContext = { credentials: loadOrCreateCredentials(env), lifelike: options.lifelike ?? true, tryton: options.tryton ?? { clerk: true } }
  const closers: (() => Promise<unknown>)[] = []
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((err: unknown) => console.error('orderbridge demo: error while closing', err))
  }
  try {
    const crm = await crmChoices[choices.crm].start(context)
    closers.push(() => crm.close())
    const erp = await erpChoices[choices.erp].start(context, crm.customers)
    closers.push(() => erp.close())
    const wms = choices.wms ? await wmsChoices[choices.wms].start(context) : undefined
    if (wms) closers.push(() => wms.close())
    const systems: DemoSystem[] = [crm, erp, ...(wms ? [wms] : [])]

    const config: FileConfig = {
      connections: systems.map((s) => s.connection),
      pipeline: { erp: erp.connection.id, inventory: (wms ?? erp).connection.id },
      // The default demo's rules whatever the choices: the database keeps the first rules it was given.
      approval: demoApprovalPolicy,
    }
    const orderbridge = await startOrderbridge({ mode: 'all', env, config, ...(options.logger ? { logger: options.logger } : {}) })
    closers.push(() => orderbridge.close())
    const url = orderbridge.url!
    for (const system of systems) {
      for (const [table, entries] of Object.entries(system.lookups ?? {})) await mergeLookupTable(orderbridge.db, { table, entries, actor: 'demo' })
    }
    for (const system of systems) await system.listening?.(url)
    if (!erp.creditCheck && orderbridge.adminKey) {
      const approver = startDemoApprover(url, orderbridge.adminKey)
      closers.push(() => approver.close())
    }

    const desk = await startDemoDesk(crm)
    closers.push(() => desk.close())
    writeDemoRun(env.ORDERBRIDGE_DATA_DIR, { api: url, crm: choices.crm, connection: crm.connection.id, desk: desk.url, token: desk.token })
    closers.push(async () => removeDemoRun(env.ORDERBRIDGE_DATA_DIR, desk.token))

    return {
      choices,
      orderbridge,
      url,
      crm,
      erp,
      ...(wms ? { wms } : {}),
      deskUrl: desk.url,
      banner: () => [
        `orderbridge demo: CRM ${choices.crm} (${crm.url}), ERP ${choices.erp} (${erp.url})${wms ? `, WMS ${choices.wms} (${wms.url})` : `; ${choices.erp} is the inventory too`}`,
        `storage: ${orderbridge.db.engine === 'pglite' ? `PGlite in ${env.ORDERBRIDGE_DATA_DIR}` : 'PostgreSQL'}; listening on ${url}  (ops: ${url}/admin/queues, health: ${url}/readyz)`,
        ...(orderbridge.adminKey ? [`admin key: ${orderbridge.adminKey}`] : []),
        `orders come in on connection ${crm.connection.id}: ${crm.format}`,
        `orders over 1,500 CNY need finance: ${erp.creditCheck ? `the ${choices.erp} credit check decides` : `the demo's clerk approves them (${choices.erp} gives no credit figures in CNY)`}`,
        `try: npx orderbridge demo send --orders 10${erp.completes ? '   or   --until completed' : `   (${choices.erp} sends no invoices here, so orders stop at delivered)`}`,
      ],
      close: closeAll,
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}

function demoFlags(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      options: { crm: { type: 'string' }, erp: { type: 'string' }, wms: { type: 'string' }, 'tryton-env': { type: 'string' }, 'no-clerk': { type: 'boolean', default: false } },
    }).values
  } catch (err) {
    // parseArgs names the unknown option or the missing value; say it as the demo's own error.
    throw new DemoChoiceError(`${(err as Error).message}; demo takes --crm ${crmChoiceIds.join('|')}, --erp ${erpChoiceIds.join('|')}, --wms ${wmsChoiceIds.join('|')}, --tryton-env FILE, --no-clerk`)
  }
}

/** `orderbridge demo --crm … --erp … [--wms …] [--tryton-env FILE] [--no-clerk]`; an unknown choice is a DemoChoiceError naming the valid ones. */
export function parseDemoArgs(args: readonly string[]): { choices: DemoChoices; tryton: DemoContext['tryton'] } {
  const values = demoFlags(args)
  const choices = parseDemoChoices(values)
  if (choices.erp !== 'tryton' && (values['tryton-env'] !== undefined || values['no-clerk'])) throw new DemoChoiceError('--tryton-env and --no-clerk go with --erp tryton')
  return { choices, tryton: { ...(values['tryton-env'] ? { envFile: values['tryton-env'] } : {}), clerk: !values['no-clerk'] } }
}
