/**
 * The shipped connectors against the conformance suite, each with its own simulator.
 */
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { demoCrm } from '../../connectors/demo-crm/index.ts'
import { startCrmSimulator } from '../../connectors/demo-crm/simulator.ts'
import { demoWms } from '../../connectors/demo-wms/index.ts'
import { startWmsSimulator } from '../../connectors/demo-wms/simulator.ts'
import { genericRest } from '../../connectors/generic-rest/index.ts'
import { startErpSimulator } from '../../connectors/generic-rest/simulator.ts'

const webhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'

describeConnectorConformance('generic-rest', async () => {
  const apiToken = 'conformance-erp-token'
  const erp = await startErpSimulator({ apiToken })
  return {
    connector: genericRest,
    ctx: { settings: { baseUrl: erp.url, timeoutMs: 5_000 }, secrets: { apiToken, webhookSecret } },
    sampleSalesOrder: (reference) => ({
      reference,
      customerCode: 'C-CONF',
      currency: 'CNY',
      total: '19.00',
      lines: [{ itemCode: 'SKU-100', qty: '2', price: '9.50', amount: '19.00' }],
    }),
    countSalesOrders: (reference) => erp.salesOrders().filter((order) => order.reference === reference).length,
    sampleCustomerId: 'C-CONF',
    faults: {
      failNext: (status, headers) => erp.faults.failNext(1, status, headers),
      commitThenDropNext: () => erp.faults.commitThenDrop(1),
    },
    reset: () => erp.faults.reset(),
    close: () => erp.close(),
  }
})

describeConnectorConformance('demo-wms', async () => {
  const apiToken = 'conformance-wms-token'
  const wms = await startWmsSimulator({ apiToken, stock: { 'SKU-CONF-1': 1000, 'SKU-CONF-2': 1000 } })
  return {
    connector: demoWms,
    ctx: { settings: { baseUrl: wms.url, timeoutMs: 5_000 }, secrets: { apiToken, webhookSecret } },
    sampleReservation: () => ({
      allowPartial: false,
      lines: [
        { lineId: '1', sku: 'SKU-CONF-1', quantity: '2' },
        { lineId: '2', sku: 'SKU-CONF-2', quantity: '1' },
      ],
    }),
    faults: { failNext: (status, headers) => wms.faults.failNext(1, status, headers) },
    reset: () => wms.faults.reset(),
    close: () => wms.close(),
  }
})

describeConnectorConformance('demo-crm', async () => {
  const apiToken = 'conformance-crm-token'
  // Deliveries of new orders would go to this URL; the suite creates none.
  const crm = await startCrmSimulator({ webhookUrl: 'http://127.0.0.1:9/webhooks/demo-crm', secret: webhookSecret, apiToken, retries: 0 })
  return {
    connector: demoCrm,
    ctx: { settings: { baseUrl: crm.url, timeoutMs: 5_000 }, secrets: { webhookSecret, apiToken } },
    countCrmStatuses: (crmOrderId) => crm.statuses().find((entry) => entry.orderId === crmOrderId)?.history.length ?? 0,
    faults: { failNext: (status, headers) => crm.faults.failNext(1, status, headers) },
    reset: () => crm.faults.reset(),
    close: () => crm.close(),
  }
})
