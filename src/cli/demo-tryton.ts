/**
 * `orderbridge demo --erp tryton`: the demo with a live Tryton (../shared/tryton/setup.sh) as ERP and
 * inventory instead of the simulators. The demo CRM still sends the orders and takes their status;
 * a "clerk" plays the warehouse and accounting in Tryton (ships, invoices, pays) unless `--no-clerk`.
 */
import { parseArgs } from 'node:util'
import { startCrmSimulator } from '../../connectors/demo-crm/simulator.ts'
import { prepareTrytonForDemo, readTrytonEnvFile, startTrytonDemoClerk, trytonDemoApprovalPolicy, trytonDemoConnection } from '../../connectors/tryton/demo.ts'
import type { Env, FileConfig } from '../config.ts'
import { loadOrCreateCredentials } from '../demo/demo-credentials.ts'
import { demoConfig } from '../demo/demo-environment.ts'
import { startOrderbridge } from '../server.ts'
import { freePort } from '../shared/free-port.ts'

export interface RunningTrytonDemo {
  url: string
  adminKey: string | undefined
  trytonUrl: string
  close(): Promise<void>
}

export async function runTrytonDemo(env: Env, args: readonly string[]): Promise<RunningTrytonDemo> {
  const { values } = parseArgs({ args: [...args], options: { erp: { type: 'string' }, 'tryton-env': { type: 'string' }, 'no-clerk': { type: 'boolean', default: false } } })
  if (values.erp !== 'tryton') throw new Error(`demo --erp takes "tryton", not "${values.erp ?? ''}"`)
  const tryton = readTrytonEnvFile(values['tryton-env'])
  await prepareTrytonForDemo(tryton)
  const credentials = loadOrCreateCredentials(env)
  const crmPort = await freePort()
  const crm = demoConfig(credentials, { erpUrl: 'http://127.0.0.1:1', wmsUrl: 'http://127.0.0.1:1', crmUrl: `http://127.0.0.1:${crmPort}` }).connections.filter((c) => c.id === 'demo-crm')
  const config: FileConfig = { connections: [...crm, trytonDemoConnection(tryton)], pipeline: { erp: 'tryton', inventory: 'tryton' }, approval: trytonDemoApprovalPolicy as FileConfig['approval'] }
  const running = await startOrderbridge({ mode: 'all', env, config })
  const crmSimulator = await startCrmSimulator({ webhookUrl: `${running.url}/webhooks/demo-crm`, secret: credentials.demoWebhookSecret, port: crmPort })
  const clerk = values['no-clerk'] ? undefined : startTrytonDemoClerk(tryton, { intervalMs: 3_000 })
  return {
    url: running.url!,
    adminKey: running.adminKey,
    trytonUrl: `${tryton.url}${tryton.database}`,
    async close() {
      await clerk?.close()
      await crmSimulator.close()
      await running.close()
    },
  }
}
