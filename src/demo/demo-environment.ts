/**
 * The demo: simulators for the ERP and the WMS on loopback (real HTTP), and the configuration
 * that connects them with the demo CRM source. The demo CRM's simulator starts once the API
 * listens (server.ts), since it pushes its webhooks there. Each system has its own starter and
 * connection here, so `orderbridge demo --crm … --erp … --wms …` (demo-choices.ts) reuses them.
 */
import { startErpSimulator, type ErpSimulator } from '../../connectors/generic-rest/simulator.ts'
import { startWmsSimulator, type WmsSimulator } from '../../connectors/demo-wms/simulator.ts'
import type { FileConfig } from '../config.ts'
import { freePort } from '../shared/free-port.ts'
import type { DemoCredentials } from './demo-credentials.ts'

export interface DemoSimulators {
  erpUrl: string
  wmsUrl: string
  /** Where the demo CRM simulator will listen (server.ts starts it once the API listens). */
  crmUrl: string
  crmPort: number
  /** Points the WMS's and the ERP's events at orderbridge once it listens. */
  sendEventsTo(apiUrl: string, secret: string): void
  close(): Promise<void>
}

interface SimulatorOptions {
  port?: number
  host?: string
  /** Behave like the real system over time (see startDemoSimulators). */
  lifelike?: boolean
}

/** The demo ERP (generic REST): with `lifelike`, it invoices its sales orders after 4 s and the customer pays after 6 s. */
export function startDemoErp(credentials: DemoCredentials, options: SimulatorOptions = {}): Promise<ErpSimulator> {
  return startErpSimulator({
    port: options.port ?? 0,
    host: options.host,
    apiToken: credentials.demoErpToken,
    ...(options.lifelike ? { autoInvoiceAfterMs: 4_000, autoPayAfterMs: 6_000 } : {}),
  })
}

/** The demo WMS: with `lifelike`, it ships 3 s after reserving and delivers 5 s after shipping. */
export function startDemoWms(credentials: DemoCredentials, options: SimulatorOptions = {}): Promise<WmsSimulator> {
  return startWmsSimulator({
    port: options.port ?? 0,
    host: options.host,
    apiToken: credentials.demoWmsToken,
    announceReservations: true,
    ...(options.lifelike ? { autoShipAfterMs: 3_000, autoDeliverAfterMs: 5_000 } : {}),
  })
}

/**
 * The demo's simulators. `lifelike` makes them behave like the real systems do over time: the
 * warehouse ships a few seconds after reserving and delivers after that, the ERP invoices its sales
 * orders and the customer pays, so `orderbridge demo send` shows orders going all the way through.
 */
export async function startDemoSimulators(credentials: DemoCredentials, options: { erp?: number; wms?: number; host?: string; lifelike?: boolean } = {}): Promise<DemoSimulators> {
  const lifelike = options.lifelike ?? false
  const erp = await startDemoErp(credentials, { port: options.erp, host: options.host, lifelike })
  const wms = await startDemoWms(credentials, { port: options.wms, host: options.host, lifelike })
  const crmPort = await freePort()
  return {
    erpUrl: erp.url,
    wmsUrl: wms.url,
    crmUrl: `http://${options.host ?? '127.0.0.1'}:${crmPort}`,
    crmPort,
    sendEventsTo(apiUrl, secret) {
      wms.setWebhookTarget({ url: `${apiUrl}/webhooks/demo-wms`, secret })
      erp.setWebhookTarget({ url: `${apiUrl}/webhooks/demo-erp`, secret })
    },
    async close() {
      await Promise.all([erp.close(), wms.close()])
    },
  }
}

type ConnectionInput = FileConfig['connections'][number]

/** The demo CRM: pushes orders, and takes their status back when it has a `crmUrl`. */
export function demoCrmConnection(credentials: DemoCredentials, crmUrl?: string): ConnectionInput {
  return {
    id: 'demo-crm',
    connector: 'demo-crm',
    settings: crmUrl ? { baseUrl: crmUrl } : {},
    secrets: { webhookSecret: credentials.demoWebhookSecret },
    mappings: { inbound: 'demo-crm.to-canonical.order' },
  }
}

/** The demo WMS: reserves and ships, and signs its events with the demo webhook secret. */
export function demoWmsConnection(credentials: DemoCredentials, wmsUrl: string): ConnectionInput {
  return { id: 'demo-wms', connector: 'demo-wms', settings: { baseUrl: wmsUrl }, secrets: { apiToken: credentials.demoWmsToken, webhookSecret: credentials.demoWebhookSecret }, mappings: {} }
}

/** The demo ERP (generic REST): takes sales orders, reports credit, invoices; signs its events with the demo webhook secret. */
export function demoErpConnection(credentials: DemoCredentials, erpUrl: string): ConnectionInput {
  return {
    id: 'demo-erp',
    connector: 'generic-rest',
    settings: { baseUrl: erpUrl },
    secrets: { apiToken: credentials.demoErpToken, webhookSecret: credentials.demoWebhookSecret },
    mappings: { salesOrder: 'canonical.to-demo-erp.sales-order' },
  }
}

/**
 * The demo's connections: the demo CRM pushes orders and takes their status back (at `crmUrl`),
 * the demo WMS reserves and ships, the demo ERP takes sales orders, reports credit and invoices.
 * The WMS and the ERP sign their events with the demo webhook secret too.
 */
export function demoConfig(credentials: DemoCredentials, urls: { erpUrl: string; wmsUrl: string; crmUrl?: string }): FileConfig {
  return {
    connections: [demoCrmConnection(credentials, urls.crmUrl), demoWmsConnection(credentials, urls.wmsUrl), demoErpConnection(credentials, urls.erpUrl)],
    pipeline: { erp: 'demo-erp', inventory: 'demo-wms' },
  }
}

/**
 * The demo's approval rules: larger orders need finance, which the demo ERP's credit check grants on
 * its own while the customer has credit, so `demo send` shows approval without anyone deciding.
 */
export const demoApprovalPolicy: NonNullable<FileConfig['approval']> = {
  rules: [{ id: 'demo-large', description: 'Orders over 1,500 CNY need finance approval', when: { amount: { CNY: { above: '1500' } } }, require: ['finance'] }],
  unmatchedCurrency: { require: ['sales_manager', 'finance'] },
}
