/**
 * SAP as the ERP of a whole orderbridge, through its HTTP API: the demo CRM's order becomes an
 * ORDERS05 IDoc in the SAP simulator; what SAP then posts back to POST /webhooks/sap (DESADV with
 * carrier and tracking number, its proof of delivery, INVOIC) moves the order to shipped, delivered
 * and invoiced; an IDoc SAP sends again is stored once, a delivery with a wrong password is refused
 * and recorded; a cancelled order is deleted in SAP with an ORDCHG whose header action is 003.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../../test/support/test-orderbridge.ts'
import { belnrOf } from './idoc.ts'
import { startSapIdocSimulator, type SapIdocSimulator, type SapWebhookTarget } from './simulator.ts'

const sapUser = { username: 'IDOC_INBOUND', password: 'Sap-Idoc-Pass-123' }
const outbound = { username: 'SAP_OUTBOUND', password: 'Outbound-Pass-456' }

type Link = { connection: string; operation: string; externalId: string | null; status: string }
type Order = { id: string; state: string; paymentState: string; links: Link[] }

describe('orderbridge with SAP (IDoc) as the ERP', () => {
  let sap: SapIdocSimulator
  let stack: TestStack
  let target: SapWebhookTarget

  beforeAll(async () => {
    sap = await startSapIdocSimulator({ ...sapUser, logicalSystem: 'S4HCLNT100', receiverPort: 'SAPS4H', partnerProfiles: ['ORDERBRIDG'], webhookRetries: 0 })
    stack = await startTestStack('pglite', {
      wms: { stock: { 'SKU-100': 100, 'SKU-101': 100, 'SKU-102': 100, 'SKU-103': 100 } },
      configure: (config) => ({
        ...config,
        connections: [
          ...config.connections.filter((c) => c.id !== 'demo-erp'),
          {
            id: 'sap',
            connector: 'sap-idoc',
            settings: {
              baseUrl: sap.url,
              sapClient: '100',
              timeoutMs: 5_000,
              controlRecord: { senderPort: 'ORDERBRIDG', senderPartner: 'ORDERBRIDG', receiverPort: 'SAPS4H', receiverPartner: 'S4HCLNT100' },
              statusLookup: { path: sap.statusPath },
              inbound: { messageTypes: ['DESADV', 'INVOIC', 'ORDRSP'] },
            },
            secrets: { ...sapUser, inboundUsername: outbound.username, inboundPassword: outbound.password },
            mappings: { salesOrder: 'canonical.to-sap.orders05' },
          },
        ],
        pipeline: { erp: 'sap', inventory: 'demo-wms' },
      }),
    })
    // The media type of IDoc-XML over HTTP; text/xml and application/xml are taken too.
    target = { url: `${stack.url}/webhooks/sap`, authentication: { type: 'basic', ...outbound }, contentType: 'application/x-sap.idoc' }
    sap.setWebhookTarget(target)
  })
  afterAll(async () => {
    await stack?.close()
    await sap?.close()
  })

  const orderOf = async (externalId: string): Promise<Order | undefined> => (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]
  const waitForOrder = (externalId: string, what: string, test: (o: Order) => boolean) =>
    stack.waitFor(async () => {
      const o = await orderOf(externalId)
      return o && test(o) ? o : undefined
    }, `${externalId} ${what}`)
  const erpLink = (o: Order) => o.links.find((l) => l.operation === 'salesOrders.upsert')
  const stats = async () => (await stack.api('/api/v1/stats?connection=sap')).body as { accepted: number; duplicate: number; rejected: number }
  /** The sales order SAP made of the order's ORDERS IDoc. */
  const salesOrderIn = (order: Order) => sap.idocs().find((i) => i.messageType === 'ORDERS' && i.belnr === belnrOf(order.id))!.salesOrder!

  it('creates the sales order by IDoc; DESADV, its proof of delivery and INVOIC move the order to shipped, delivered and invoiced', async () => {
    const document = { ...sampleOrder(1, 'SAP-1'), items: [{ product_code: 'SKU-100', qty: 2, price: '100.00' }, { product_code: 'SKU-101', qty: 1, price: '50.50' }] }
    expect((await stack.crm.send('order.created', document)).status).toBe(202)
    const created = await waitForOrder('SAP-1', 'pending_shipment', (o) => o.state === 'pending_shipment')
    expect(erpLink(created)).toMatchObject({ connection: 'sap', status: 'synced', externalId: expect.stringMatching(/^\d{16}$/) })
    const salesOrder = salesOrderIn(created)
    expect(sap.salesOrder(salesOrder)).toMatchObject({ belnr: belnrOf(created.id), currency: 'CNY', netValue: '250.50', status: 'open' })

    const before = await stats()
    const desadv = sap.ship(salesOrder, { carrier: 'SF Express', trackingNumber: 'SF1234567890' })
    await waitForOrder('SAP-1', 'shipped', (o) => o.state === 'shipped')
    expect(sap.webhookDeliveries().find((d) => d.docnum === desadv.docnum)).toMatchObject({ status: 'delivered', lastHttpStatus: 200 })

    // SAP sends the same IDoc again (BD87): accepted as a duplicate, nothing changes.
    sap.resend(desadv.docnum)
    await sap.flushWebhooks()
    expect(await stats()).toMatchObject({ accepted: before.accepted + 1, duplicate: before.duplicate + 1 })

    sap.proofOfDelivery(desadv.document, { date: '20260312', time: '142500' })
    await waitForOrder('SAP-1', 'delivered', (o) => o.state === 'delivered')

    const invoic = sap.invoice(salesOrder, { tax: '32.57', dueDate: '20991231' })
    expect(invoic.amount).toBe('283.07')
    await waitForOrder('SAP-1', 'invoiced', (o) => o.paymentState === 'invoiced')

    const crm = await stack.waitFor(async () => {
      const s = stack.crmSimulator.statuses().find((x) => x.orderId === 'SAP-1')
      return s?.current.invoice_no ? s : undefined
    }, 'the CRM to hear of the invoice')
    expect(crm.current).toMatchObject({ tracking_no: 'SF1234567890', invoice_no: invoic.invoiceNumber })

    const { body } = await stack.api(`/api/v1/orders/${created.id}/timeline`)
    const transitions = body.timeline.filter((t: { kind: string }) => t.kind === 'transition').map((t: { toState: string }) => t.toState)
    expect(transitions).toEqual(expect.arrayContaining(['pending_shipment', 'shipped', 'delivered']))
  })

  it('refuses a delivery with a wrong password (401) and records the refusal', async () => {
    const document = { ...sampleOrder(2, 'SAP-2'), items: [{ product_code: 'SKU-102', qty: 1, price: '20.00' }] }
    await stack.crm.send('order.created', document)
    const created = await waitForOrder('SAP-2', 'pending_shipment', (o) => o.state === 'pending_shipment')
    const before = await stats()
    sap.setWebhookTarget({ ...target, authentication: { type: 'basic', username: outbound.username, password: 'wrong-password' } })
    try {
      const desadv = sap.ship(salesOrderIn(created))
      await sap.flushWebhooks()
      expect(sap.webhookDeliveries().find((d) => d.docnum === desadv.docnum)).toMatchObject({ status: 'failed', lastHttpStatus: 401 })
    } finally {
      sap.setWebhookTarget(target)
    }
    expect(await stats()).toMatchObject({ rejected: before.rejected + 1, accepted: before.accepted })
    expect((await orderOf('SAP-2'))!.state).toBe('pending_shipment')

    // A body of another media type is refused before it is read.
    const answer = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(answer.status).toBe(415)
  })

  it('deletes the sales order in SAP (ORDCHG, header action 003) when the CRM cancels the order', async () => {
    const document = { ...sampleOrder(3, 'SAP-CANCEL'), items: [{ product_code: 'SKU-103', qty: 3, price: '10.00' }] }
    await stack.crm.send('order.created', document)
    const created = await waitForOrder('SAP-CANCEL', 'pending_shipment', (o) => o.state === 'pending_shipment')
    const salesOrder = salesOrderIn(created)
    await stack.crm.send('order.cancelled', { ...document, version: 2 })
    const cancelled = await waitForOrder('SAP-CANCEL', 'cancelled in SAP', (o) => o.state === 'cancelled' && erpLink(o)?.status === 'cancelled')
    expect(erpLink(cancelled)!.externalId).toBe(erpLink(created)!.externalId)
    const change = sap.idocs().find((i) => i.messageType === 'ORDCHG' && i.belnr === belnrOf(created.id))
    expect(change).toMatchObject({ action: '003', status: '53', salesOrder })
    expect(sap.salesOrder(salesOrder)!.status).toBe('deleted')
  })
})
