/**
 * Each drift kind, made in the simulators' own state, is found by a run against the whole running
 * stack; with a report-only policy nothing is changed anywhere. A window run pages through more
 * orders than one batch and resumes from its stored cursor.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { driftKinds, type ReconciliationPolicy } from '../../src/reconciliation/reconciliation.schemas.ts'
import { startReconciliationHarness, type ReconciliationHarness } from './reconciliation-harness.ts'

const reportAll = Object.fromEntries(driftKinds.map((k) => [k, 'report'])) as ReconciliationPolicy

let h: ReconciliationHarness
beforeAll(async () => {
  h = await startReconciliationHarness()
}, 120_000)
afterAll(() => h?.close())

describe('a run over orders that agree everywhere', () => {
  it('finds nothing, and counts every order it checked', async () => {
    const ids = await h.sendOrders('CLEAN', 3)
    const { run, discrepancies } = await h.reconcile({ orderIds: ids })
    expect(run.status).toBe('succeeded')
    expect(discrepancies).toEqual([])
    expect(run).toMatchObject({ ordersTotal: 3, ordersChecked: 3, ordersSkipped: 0, discrepancies: 0 })
  })
})

describe('drift made in the simulators', () => {
  let ids: string[]
  const so = async (orderId: string) => (await h.link(orderId, 'salesOrders.upsert'))!.external_id!
  const reservationOf = async (orderId: string) => (await h.link(orderId, 'inventory.reserve'))!.external_id!

  beforeAll(async () => {
    ids = await h.sendOrders('DRIFT', 10)
  }, 120_000)

  it('is found, kind by kind, and a report-only policy changes nothing', async () => {
    const [missing, amount, lines, duplicate, stock, invoice, crm, erpCancelled] = ids as [string, string, string, string, string, string, string, string]
    // An invoice that orderbridge records (through the ERP's webhook), then changed in the ERP.
    const issued = h.stack.erp.invoice(await so(invoice))
    await h.stack.waitFor(async () => (await h.db.query(`select 1 from orders where id = $1 and payment_state = 'invoiced'`, [invoice])).length > 0, 'the invoice recorded')
    await h.waitSettled([invoice])

    h.stack.erp.drift.deleteSalesOrder(await so(missing))
    h.stack.erp.drift.updateSalesOrder(await so(amount), { total: '1.00' })
    const original = h.stack.erp.salesOrders().find((o) => o.reference === lines)!
    h.stack.erp.drift.updateSalesOrder(original.id, { lines: [...(original.lines as Record<string, unknown>[]).slice(1), { itemCode: 'SKU-999', qty: '7', price: '1.00', amount: '7.00' }] })
    const copy = h.stack.erp.salesOrders().find((o) => o.reference === duplicate)!
    const { id: _id, createdAt: _c, updatedAt: _u, ...body } = copy
    const second = h.stack.erp.drift.addSalesOrder(body as typeof copy)
    const orphan = h.stack.erp.drift.addSalesOrder({ reference: 'KEYED-IN-BY-HAND', currency: 'CNY', total: '10.00', lines: [{ itemCode: 'SKU-100', qty: '1', price: '10.00', amount: '10.00' }] })
    const held = h.stack.wms.reservations().find((r) => r.id === h.stack.wms.reservations().find((x) => x.reference === stock)!.id)!
    h.stack.wms.drift.setReserved(held.id, [{ sku: held.lines[0]!.sku, reserved: held.lines[0]!.reserved + 3 }])
    const orphanReservation = h.stack.wms.drift.addReservation({ reference: 'NOBODY', lines: [{ sku: 'SKU-105', quantity: 4 }] })
    h.stack.erp.drift.updateInvoice(issued.id, { amount: '1.00', paid: '1.00' })
    const [{ external_id: crmOrderId }] = (await h.db.query<{ external_id: string }>('select external_id from orders where id = $1', [crm])) as [{ external_id: string }]
    const crmOrder = h.stack.crmSimulator.statuses().find((s) => s.orderId === crmOrderId)!
    h.stack.crmSimulator.setStatus(crmOrder.orderId, { ...crmOrder.current, status: 'approved' })
    h.stack.erp.drift.updateSalesOrder(await so(erpCancelled), { status: 'cancelled' })

    const before = {
      erp: h.stack.erp.salesOrders(),
      erpWrites: h.stack.erp.requests().filter((r) => r.method !== 'GET').length,
      wms: h.stack.wms.reservations(),
      stock: h.stack.wms.stock(),
      crm: h.stack.crmSimulator.statuses(),
      links: await h.db.query('select * from links order by order_id, connection_id, operation'),
    }
    const { run, discrepancies } = await h.reconcile({ since: 'all' }, { policy: reportAll })
    expect(run.status).toBe('succeeded')

    const found = discrepancies.map((d) => [d.kind, d.connectionId, d.orderId ?? d.externalId] as const)
    expect(found).toEqual(
      expect.arrayContaining([
        ['missing_in_target', 'demo-erp', missing],
        ['amount_mismatch', 'demo-erp', amount],
        ['line_mismatch', 'demo-erp', lines],
        ['duplicate_in_target', 'demo-erp', duplicate],
        ['orphan_in_target', 'demo-erp', orphan.id],
        ['orphan_in_target', 'demo-wms', orphanReservation.id],
        ['stock_mismatch', 'demo-wms', stock],
        ['invoice_mismatch', 'demo-erp', invoice],
        ['state_mismatch', 'demo-crm', crm],
        ['state_mismatch', 'demo-erp', erpCancelled],
      ]),
    )
    expect(found).toHaveLength(10)
    expect(discrepancies.every((d) => d.action === 'reported' && d.repairedAt === null)).toBe(true)
    for (const kind of driftKinds) expect(run.counts.byKind[kind]).toBe(found.filter(([k]) => k === kind).length)

    // Expected and actual say what differs, to the cent.
    const byKind = (kind: string) => discrepancies.find((d) => d.kind === kind)!
    expect(byKind('amount_mismatch')).toMatchObject({ actual: { total: '1.00', currency: 'CNY' } })
    expect(byKind('line_mismatch').actual).toMatchObject({ differences: expect.arrayContaining([{ sku: 'SKU-999', expected: '0', actual: '7' }]) })
    expect(byKind('duplicate_in_target')).toMatchObject({ externalId: second.id })
    expect(byKind('stock_mismatch').actual).toMatchObject({ differences: [{ sku: held.lines[0]!.sku, expected: String(held.lines[0]!.reserved), actual: String(held.lines[0]!.reserved + 3) }] })
    expect(byKind('invoice_mismatch').actual).toMatchObject({ paid: '1.00', problems: expect.arrayContaining([expect.stringContaining('amount 1.00 in the ERP')]) })
    expect(discrepancies.find((d) => d.kind === 'state_mismatch' && d.connectionId === 'demo-crm')).toMatchObject({ actual: { state: 'approved' }, expected: { state: 'pending_shipment' } })

    // Report only: not one write anywhere, and the links are as they were.
    expect(h.stack.erp.salesOrders()).toEqual(before.erp)
    expect(h.stack.erp.requests().filter((r) => r.method !== 'GET').length).toBe(before.erpWrites)
    expect(h.stack.wms.reservations()).toEqual(before.wms)
    expect(h.stack.wms.stock()).toEqual(before.stock)
    expect(h.stack.crmSimulator.statuses()).toEqual(before.crm)
    expect(await h.db.query('select * from links order by order_id, connection_id, operation')).toEqual(before.links)
    expect(await h.db.query(`select 1 from audit_log where action = 'reconciliation.repair'`)).toEqual([])
  })
})

describe('a window run', () => {
  it('pages through more orders than one batch, only those in the window, and reads each target once per page', async () => {
    const ids = await h.sendOrders('PAGE', 12)
    const [first] = await h.db.query<{ since: Date }>('select min(updated_at) as since from orders where id = any($1::uuid[])', [ids])
    const getsBefore = h.stack.erp.requests().filter((r) => r.method === 'GET' && r.path.startsWith('/sales-orders?references=')).length
    const { run } = await h.reconcile({ since: first!.since.toISOString(), connections: ['demo-erp'] }, { batchSize: 10 })
    expect(run.status).toBe('succeeded')
    expect(run.ordersTotal).toBeGreaterThanOrEqual(12)
    expect(run.ordersChecked + run.ordersSkipped).toBe(run.ordersTotal)
    expect(run.cursor).toMatchObject({ orders: 'done' })
    const pages = Math.ceil(run.ordersTotal! / 10)
    // One batched lookup per page (the connector splits only above 100 references).
    expect(h.stack.erp.requests().filter((r) => r.method === 'GET' && r.path.startsWith('/sales-orders?references=')).length - getsBefore).toBe(pages)
    expect(run.connections).toEqual(['demo-erp'])
  })

  it('resumes from its stored cursor without checking an order twice', async () => {
    const ids = await h.sendOrders('RESUME', 4)
    const { run } = await h.reconcile({ orderIds: ids, connections: ['demo-erp'] }, { batchSize: 10 })
    // As if the worker had died after the first of two pages: running, its cursor and counts after two orders.
    await h.db.query(
      `update reconciliation_runs set status = 'running', finished_at = null, orders_checked = 2, cursor = '{"orders": {"offset": 2}, "orphans": {}}' where id = $1`,
      [run.id],
    )
    const lookups = () => h.stack.erp.requests().filter((r) => r.method === 'GET' && r.path.startsWith('/sales-orders?references=')).length
    const before = lookups()
    const { executeRun } = await import('../../src/reconciliation/reconcile.ts')
    const settings = { ...h.settings, batchSize: 2 }
    const again = await executeRun({ db: h.db, connections: h.connections, lifecycle: h.lifecycle, log: { info() {}, warn() {}, error() {} }, settings }, run.id)
    expect(again).toMatchObject({ status: 'succeeded', progress: { ordersChecked: 4 } })
    expect(lookups() - before).toBe(1)
  })
})

describe('a system that cannot be read', () => {
  it('ends the run as failed, with a message safe to show, and nothing half-recorded after it', async () => {
    h.stack.wms.faults.failNext(1000, 401)
    try {
      const { run, outcome } = await h.reconcile({ since: '1h', connections: ['demo-wms'] })
      expect(outcome?.status).toBe('failed')
      expect(run.status).toBe('failed')
      expect(run.error).toMatch(/^demo-wms: .+ failed \(auth\): remote answered HTTP 401$/)
      expect(run.finishedAt).toBeInstanceOf(Date)
    } finally {
      h.stack.wms.faults.reset()
    }
  })
})
