/**
 * The reads reconciliation adds to the demo connectors, against their simulators: batched lookups
 * split into short requests, pages that cover everything once, answers in the kit's words; and the
 * generic REST ERP's re-sync after the ERP lost an order it had replayed an answer for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoCrm, secretsSchema as crmSecrets, settingsSchema as crmSettings } from '../../connectors/demo-crm/index.ts'
import { startCrmSimulator, type CrmSimulator } from '../../connectors/demo-crm/simulator.ts'
import { demoWms, secretsSchema as wmsSecrets, settingsSchema as wmsSettings } from '../../connectors/demo-wms/index.ts'
import { startWmsSimulator, type WmsSimulator } from '../../connectors/demo-wms/simulator.ts'
import { genericRest } from '../../connectors/generic-rest/index.ts'
import { secretsSchema, settingsSchema, type GenericRestSecrets, type GenericRestSettings } from '../../connectors/generic-rest/settings.ts'
import { startErpSimulator, type ErpSimulator } from '../../connectors/generic-rest/simulator.ts'
import type { Logger, OperationContext } from '../../src/connector-kit/index.ts'

const log: Logger = { info() {}, warn() {}, error() {} }
let erp: ErpSimulator
let wms: WmsSimulator
let crm: CrmSimulator

beforeAll(async () => {
  erp = await startErpSimulator({ apiToken: 'erp-token' })
  wms = await startWmsSimulator({ apiToken: 'wms-token' })
  crm = await startCrmSimulator({ webhookUrl: 'http://127.0.0.1:9/unused', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', retries: 0 })
})
afterAll(async () => {
  await Promise.all([erp?.close(), wms?.close(), crm?.close()])
})

const erpCtx = (settings: Record<string, unknown> = {}) => ({ connectionId: 'demo-erp', settings: settingsSchema.parse({ baseUrl: erp.url, ...settings }), secrets: secretsSchema.parse({ apiToken: 'erp-token' }), log })
const document = (reference: string, total = '19.00') => ({ reference, customerCode: 'C-1', currency: 'CNY', total, lines: [{ itemCode: 'SKU-100', qty: '2', price: '9.50', amount: '19.00' }] })

describe('the generic REST ERP', () => {
  const so = genericRest.salesOrders!

  it('finds the sales orders of many references in requests of at most 100, in the kit\'s words', async () => {
    const refs = Array.from({ length: 250 }, (_, i) => `R-${i}`)
    const { salesOrderIds } = erp.seed({ salesOrders: refs.map((r) => document(r)) })
    erp.drift.addSalesOrder(document('R-7', '1.00'))
    const before = erp.requests().length
    const found = await so.findManyByReference!(erpCtx(), [...refs, 'R-none'])
    expect(erp.requests().slice(before).map((r) => r.path.split('=')[0])).toEqual(['/sales-orders?references', '/sales-orders?references', '/sales-orders?references'])
    expect(found).toHaveLength(251)
    expect(found.find((o) => o.externalId === salesOrderIds[0])).toEqual({
      externalId: salesOrderIds[0],
      reference: 'R-0',
      status: 'open',
      currency: 'CNY',
      total: '19.00',
      lines: [{ sku: 'SKU-100', quantity: '2' }],
      updatedAt: expect.any(String),
    })
    expect(found.filter((o) => o.reference === 'R-7').map((o) => o.total)).toEqual(['19.00', '1.00'])
    expect(await so.fetch!(erpCtx(), salesOrderIds[3]!)).toMatchObject({ reference: 'R-3' })
    expect(await so.fetch!(erpCtx(), 'SO-999999')).toBeUndefined()
  })

  it('lists every order once, page by page, and only those changed since', async () => {
    const all = erp.salesOrders().length
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page = await so.listSince!(erpCtx(), { cursor, limit: 40 })
      seen.push(...page.orders.map((o) => o.externalId))
      cursor = page.nextCursor
    } while (cursor)
    expect(seen).toHaveLength(all)
    expect(new Set(seen).size).toBe(all)
    const later = new Date(Date.now() + 1000).toISOString()
    expect((await so.listSince!(erpCtx(), { since: later, cursor: null, limit: 40 })).orders).toEqual([])
  })

  it('reads cancelled orders, and field names from the settings', async () => {
    const [id] = erp.seed({ salesOrders: [{ ...document('R-X'), status: 'void', code: 'X-1' }] }).salesOrderIds
    expect((await so.findManyByReference!(erpCtx(), ['R-X']))[0]).toMatchObject({ externalId: id, status: 'open', remoteStatus: 'void' })
    const custom = erpCtx({ reconciliation: { salesOrders: { fields: { cancelledStatuses: ['void'], total: 'missing' } } } })
    const read = (await so.findManyByReference!(custom, ['R-X']))[0]!
    expect(read).toMatchObject({ status: 'cancelled', remoteStatus: 'void' })
    expect(read.total).toBeUndefined()
  })

  it('lists invoices by our references, with what is paid', async () => {
    const [soId] = erp.seed({ salesOrders: [document('R-INV', '30.00')] }).salesOrderIds
    erp.seed({ invoices: [{ salesOrderId: soId!, paid: '10.00' }] })
    const { invoices, nextCursor } = await genericRest.invoices!.list(erpCtx(), { orderRefs: ['R-INV', 'R-0'] })
    expect(nextCursor).toBeNull()
    expect(invoices).toEqual([expect.objectContaining({ reference: 'R-INV', salesOrderId: soId, amount: '30.00', paid: '10.00', currency: 'CNY', status: 'partially_paid' })])
  })

  it('creates a lost sales order again even when the ERP replays the old answer to the same key', async () => {
    const ctx: OperationContext<GenericRestSettings, GenericRestSecrets> = { ...erpCtx(), idempotencyKey: 'order-lost-v1', reference: 'R-LOST', mayHaveWritten: false }
    const first = await so.upsert.run(ctx, document('R-LOST'), undefined)
    erp.drift.deleteSalesOrder(first.externalId)
    const again = await so.upsert.run({ ...ctx, mayHaveWritten: true }, document('R-LOST'), undefined)
    expect(again.externalId).not.toBe(first.externalId)
    expect(erp.salesOrders().filter((o) => o.reference === 'R-LOST').map((o) => o.id)).toEqual([again.externalId])
    // Retried once more (the answer lost): found by reference, not created a third time.
    expect(await so.upsert.run({ ...ctx, mayHaveWritten: true }, document('R-LOST'), undefined)).toEqual({ externalId: again.externalId })
    expect(erp.salesOrders().filter((o) => o.reference === 'R-LOST')).toHaveLength(1)
  })
})

describe('the demo WMS', () => {
  const ctx = () => ({ connectionId: 'demo-wms', settings: wmsSettings.parse({ baseUrl: wms.url }), secrets: wmsSecrets.parse({ apiToken: 'wms-token' }), log })
  const inventory = demoWms.inventory!

  it('finds reservations of many references, whatever their status, and lists active ones page by page', async () => {
    const made = Array.from({ length: 7 }, (_, i) => wms.drift.addReservation({ reference: `W-${i}`, lines: [{ sku: 'SKU-100', quantity: 1 + i }], ...(i === 3 ? { status: 'released' as const } : {}) }))
    const found = await inventory.findManyReservations!(ctx(), made.map((r) => r.reference))
    expect(found).toHaveLength(7)
    expect(found.find((r) => r.reference === 'W-2')).toEqual({ externalId: made[2]!.id, reference: 'W-2', status: 'active', lines: [{ lineId: '1', sku: 'SKU-100', requested: '3', reserved: '3' }] })
    const active: string[] = []
    let cursor: string | null = null
    do {
      const page = await inventory.listReservations!(ctx(), { activeOnly: true, cursor, limit: 2 })
      active.push(...page.reservations.map((r) => r.reference))
      cursor = page.nextCursor
    } while (cursor)
    expect(active).toEqual(['W-0', 'W-1', 'W-2', 'W-4', 'W-5', 'W-6'])
  })

  it('rebooks stock when a reservation\'s quantities are changed by hand', () => {
    const before = wms.stock().find((s) => s.sku === 'SKU-101')!.reserved
    const r = wms.drift.addReservation({ reference: 'W-S', lines: [{ sku: 'SKU-101', quantity: 5 }] })
    wms.drift.setReserved(r.id, [{ sku: 'SKU-101', reserved: 2 }])
    expect(wms.stock().find((s) => s.sku === 'SKU-101')!.reserved).toBe(before + 2)
  })
})

describe('the demo CRM', () => {
  const ctx = () => ({ connectionId: 'demo-crm', settings: crmSettings.parse({ baseUrl: crm.url }), secrets: crmSecrets.parse({ webhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }), log })
  const reads = demoCrm.crm!

  it('answers the status each order shows, in our words, and leaves out orders it has none for', async () => {
    crm.setStatus('C-1', { status: 'pending_shipment', payment_status: 'not_invoiced', erp_order_no: 'SO-1', paid_amount: '0.00', currency: 'CNY' })
    expect(await reads.fetchOrders!(ctx(), ['C-1', 'C-2'])).toEqual([
      { externalId: 'C-1', status: { state: 'pending_shipment', paymentState: 'not_invoiced', erpOrderNumber: 'SO-1', paidAmount: '0.00', currency: 'CNY' } },
    ])
    expect(await reads.fetchOrder!(ctx(), 'C-2')).toBeUndefined()
  })
})
