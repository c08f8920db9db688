/**
 * The demo: simulators for the ERP and the WMS on loopback (real HTTP), and the configuration
 * that connects them with the demo CRM source. The demo CRM's simulator starts once the API
 * listens (server.ts), since it pushes its webhooks there.
 */
import { startErpSimulator } from '../../connectors/generic-rest/simulator.ts'
import { startWmsSimulator } from '../../connectors/demo-wms/simulator.ts'
import type { FileConfig } from '../config.ts'
import type { DemoCredentials } from './demo-credentials.ts'

export interface DemoSimulators {
  erpUrl: string
  wmsUrl: string
  close(): Promise<void>
}

export async function startDemoSimulators(credentials: DemoCredentials, ports: { erp?: number; wms?: number; host?: string } = {}): Promise<DemoSimulators> {
  const erp = await startErpSimulator({ port: ports.erp ?? 0, host: ports.host, apiToken: credentials.demoErpToken })
  const wms = await startWmsSimulator({ port: ports.wms ?? 0, host: ports.host, apiToken: credentials.demoWmsToken })
  return {
    erpUrl: erp.url,
    wmsUrl: wms.url,
    async close() {
      await Promise.all([erp.close(), wms.close()])
    },
  }
}

export function demoConfig(credentials: DemoCredentials, urls: { erpUrl: string; wmsUrl: string }): FileConfig {
  return {
    connections: [
      { id: 'demo-crm', connector: 'demo-crm', settings: {}, secrets: { webhookSecret: credentials.demoWebhookSecret }, mappings: { inbound: 'demo-crm.to-canonical.order' } },
      { id: 'demo-wms', connector: 'demo-wms', settings: { baseUrl: urls.wmsUrl }, secrets: { apiToken: credentials.demoWmsToken }, mappings: {} },
      { id: 'demo-erp', connector: 'generic-rest', settings: { baseUrl: urls.erpUrl }, secrets: { apiToken: credentials.demoErpToken }, mappings: { salesOrder: 'canonical.to-demo-erp.sales-order' } },
    ],
    pipeline: { erp: 'demo-erp', inventory: 'demo-wms' },
  }
}
