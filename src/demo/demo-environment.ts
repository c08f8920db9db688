/**
 * The demo: simulators for the ERP and the WMS on loopback (real HTTP), and the configuration
 * that connects them with the demo CRM source. The demo CRM's simulator starts once the API
 * listens (server.ts), since it pushes its webhooks there.
 */
import { startErpSimulator } from '../../connectors/generic-rest/simulator.ts'
import { startWmsSimulator } from '../../connectors/demo-wms/simulator.ts'
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

/**
 * The demo's simulators. `lifelike` makes them behave like the real systems do over time: the
 * warehouse ships a few seconds after reserving and delivers after that, the ERP invoices its sales
 * orders and the customer pays, so `orderbridge demo send` shows orders going all the way through.
 */
export async function startDemoSimulators(credentials: DemoCredentials, options: { erp?: number; wms?: number; host?: string; lifelike?: boolean } = {}): Promise<DemoSimulators> {
  const lifelike = options.lifelike ?? false
  const erp = await startErpSimulator({
    port: options.erp ?? 0,
    host: options.host,
    apiToken: credentials.demoErpToken,
    ...(lifelike ? { autoInvoiceAfterMs: 4_000, autoPayAfterMs: 6_000 } : {}),
  })
  const wms = await startWmsSimulator({
    port: options.wms ?? 0,
    host: options.host,
    apiToken: credentials.demoWmsToken,
    announceReservations: true,
    ...(lifelike ? { autoShipAfterMs: 3_000, autoDeliverAfterMs: 5_000 } : {}),
  })
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

/**
 * The demo's connections: the demo CRM pushes orders and takes their status back (at `crmUrl`),
 * the demo WMS reserves and ships, the demo ERP takes sales orders, reports credit and invoices.
 * The WMS and the ERP sign their events with the demo webhook secret too.
 */
export function demoConfig(credentials: DemoCredentials, urls: { erpUrl: string; wmsUrl: string; crmUrl?: string }): FileConfig {
  const eventSecret = { webhookSecret: credentials.demoWebhookSecret }
  return {
    connections: [
      {
        id: 'demo-crm',
        connector: 'demo-crm',
        settings: urls.crmUrl ? { baseUrl: urls.crmUrl } : {},
        secrets: eventSecret,
        mappings: { inbound: 'demo-crm.to-canonical.order' },
      },
      { id: 'demo-wms', connector: 'demo-wms', settings: { baseUrl: urls.wmsUrl }, secrets: { apiToken: credentials.demoWmsToken, ...eventSecret }, mappings: {} },
      {
        id: 'demo-erp',
        connector: 'generic-rest',
        settings: { baseUrl: urls.erpUrl },
        secrets: { apiToken: credentials.demoErpToken, ...eventSecret },
        mappings: { salesOrder: 'canonical.to-demo-erp.sales-order' },
      },
    ],
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
