/**
 * Repairs against the whole running stack: each goes through the normal pipeline (the stack's own
 * sync workers run the step again) or, for a record that is not ours, through the connector's
 * capability; each is audited, and a later run confirms it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { driftKinds, type ReconciliationPolicy } from '../../src/reconciliation/reconciliation.schemas.ts'
import { startReconciliationHarness, type ReconciliationHarness } from './reconciliation-harness.ts'

const repairAll = Object.fromEntries(driftKinds.map((k) => [k, 'repair'])) as ReconciliationPolicy

let h: ReconciliationHarness
beforeAll(async () => {
  h = await startReconciliationHarness()
}, 120_000)
afterAll(() => h?.close())

const audits = (subject: string) => h.db.query<{ actor: string; before: unknown; after: unknown }>(`select actor, before, after from audit_log where action = 'reconciliation.repair' and subject = $1`, [subject])

describe('a sales order missing in the ERP', () => {
  it('is synced again through the pipeline, once, and the next runs confirm it and bring the CRM up to date', async () => {
    const [id] = (await h.sendOrders('MISSING', 1)) as [string]
    const lost = (await h.link(id, 'salesOrders.upsert'))!.external_id!
    h.stack.erp.drift.deleteSalesOrder(lost)

    const first = await h.reconcile({ orderIds: [id] }, { policy: repairAll })
    expect(first.discrepancies).toEqual([
      expect.objectContaining({ kind: 'missing_in_target', connectionId: 'demo-erp', orderId: id, externalId: lost, action: 'repair_requested', actual: null }),
    ])
    const recreated = await h.stack.waitFor(async () => {
      const link = await h.link(id, 'salesOrders.upsert')
      return link?.status === 'synced' && link.external_id && link.external_id !== lost ? link.external_id : undefined
    }, 'the sales order created again')
    await h.waitSettled([id])
    expect(h.stack.erp.salesOrders().filter((o) => o.reference === id).map((o) => o.id)).toEqual([recreated])
    expect(await audits(`order:${id}`)).toEqual([expect.objectContaining({ actor: `reconciliation run ${first.run.id}` })])

    // The ERP is whole again (the first repair is confirmed); the CRM still shows the lost number.
    const second = await h.reconcile({ orderIds: [id] }, { policy: repairAll })
    expect(second.discrepancies.map((d) => [d.kind, d.connectionId, d.action])).toEqual([['state_mismatch', 'demo-crm', 'repair_requested']])
    const confirmed = (await h.db.query<{ action: string; repaired_at: Date | null }>('select action, repaired_at from reconciliation_discrepancies where run_id = $1', [first.run.id]))[0]!
    expect(confirmed.action).toBe('repaired')
    expect(confirmed.repaired_at).toBeInstanceOf(Date)
    const [{ external_id: crmOrderId }] = (await h.db.query<{ external_id: string }>('select external_id from orders where id = $1', [id])) as [{ external_id: string }]
    await h.stack.waitFor(async () => h.stack.crmSimulator.statuses().find((s) => s.orderId === crmOrderId)?.current.erp_order_no === recreated, 'the CRM told the new number')
    await h.waitSettled([id])

    const third = await h.reconcile({ orderIds: [id] }, { policy: repairAll })
    expect(third.discrepancies).toEqual([])
    expect(h.stack.erp.salesOrders().filter((o) => o.reference === id)).toHaveLength(1)
  })
})

describe('an orphan reservation', () => {
  it('is released through the inventory capability, audited, and its stock is free again', async () => {
    const before = h.stack.wms.stock().find((s) => s.sku === 'SKU-107')!
    const orphan = h.stack.wms.drift.addReservation({ reference: 'LEFT-BEHIND', lines: [{ sku: 'SKU-107', quantity: 6 }] })
    expect(h.stack.wms.stock().find((s) => s.sku === 'SKU-107')!.reserved).toBe(before.reserved + 6)

    const { discrepancies } = await h.reconcile({ since: '1h', connections: ['demo-wms'] }, { policy: { orphan_in_target: 'repair' } })
    const found = discrepancies.find((d) => d.externalId === orphan.id)!
    expect(found).toMatchObject({ kind: 'orphan_in_target', connectionId: 'demo-wms', orderId: null, action: 'repaired', actual: { reference: 'LEFT-BEHIND' } })
    expect(found.repairedAt).not.toBeNull()
    expect(h.stack.wms.reservations().find((r) => r.id === orphan.id)!.status).toBe('released')
    expect(h.stack.wms.stock().find((s) => s.sku === 'SKU-107')!.reserved).toBe(before.reserved)
    expect(await audits(`demo-wms:${orphan.id}`)).toHaveLength(1)

    // Found again, the reservation holds nothing: the next run has nothing to say about it.
    const again = await h.reconcile({ since: '1h', connections: ['demo-wms'] }, { policy: { orphan_in_target: 'repair' } })
    expect(again.discrepancies.filter((d) => d.externalId === orphan.id)).toEqual([])
  })
})

describe('a CRM that shows an old status', () => {
  it('is told the status again through the write-back step', async () => {
    const [id] = (await h.sendOrders('CRMBEHIND', 1)) as [string]
    const [{ external_id: crmOrderId }] = (await h.db.query<{ external_id: string }>('select external_id from orders where id = $1', [id])) as [{ external_id: string }]
    const shown = h.stack.crmSimulator.statuses().find((s) => s.orderId === crmOrderId)!.current
    const { updated_at: _at, ...status } = shown
    h.stack.crmSimulator.setStatus(crmOrderId, { ...status, status: 'approved' })

    const { discrepancies } = await h.reconcile({ orderIds: [id] })
    expect(discrepancies).toEqual([expect.objectContaining({ kind: 'state_mismatch', connectionId: 'demo-crm', externalId: crmOrderId, action: 'repair_requested', expected: expect.objectContaining({ state: 'pending_shipment' }) })])
    await h.stack.waitFor(async () => h.stack.crmSimulator.statuses().find((s) => s.orderId === crmOrderId)?.current.status === 'pending_shipment', 'the status pushed again')
    await h.waitSettled([id])
    expect((await h.reconcile({ orderIds: [id] })).discrepancies).toEqual([])
  })
})

describe('a sales order open in the ERP for an order cancelled here', () => {
  it('is cancelled again by the pipeline\'s own step', async () => {
    const [id] = (await h.sendOrders('CANCELLED', 1)) as [string]
    const [{ external_id: crmOrderId }] = (await h.db.query<{ external_id: string }>('select external_id from orders where id = $1', [id])) as [{ external_id: string }]
    const { sampleOrder } = await import('../../connectors/demo-crm/sender.ts')
    expect((await h.stack.crm.send('order.cancelled', { ...sampleOrder(1, crmOrderId), version: 2 })).status).toBe(202)
    await h.stack.waitFor(async () => (await h.link(id, 'salesOrders.upsert'))?.status === 'cancelled', 'the ERP order cancelled')
    await h.waitSettled([id])
    const soId = (await h.link(id, 'salesOrders.upsert'))!.external_id!
    h.stack.erp.drift.updateSalesOrder(soId, { status: 'confirmed' })

    const { discrepancies } = await h.reconcile({ orderIds: [id] })
    expect(discrepancies.map((d) => [d.kind, d.connectionId, d.externalId, d.action])).toEqual([['state_mismatch', 'demo-erp', soId, 'repair_requested']])
    await h.stack.waitFor(async () => h.stack.erp.salesOrders().find((o) => o.id === soId)?.status === 'cancelled', 'cancelled again')
    await h.waitSettled([id])
    expect((await h.reconcile({ orderIds: [id] })).discrepancies).toEqual([])
  })
})

describe('reserved quantities that drifted', () => {
  it('are set back to the order\'s through the inventory capability when the policy repairs them', async () => {
    const [id] = (await h.sendOrders('STOCK', 1, 42)) as [string]
    const reservationId = (await h.link(id, 'inventory.reserve'))!.external_id!
    const reservation = h.stack.wms.reservations().find((r) => r.id === reservationId)!
    const line = reservation.lines[0]!
    h.stack.wms.drift.setReserved(reservationId, [{ sku: line.sku, reserved: line.reserved + 2, quantity: line.quantity + 2 }])

    const { discrepancies } = await h.reconcile({ orderIds: [id] }, { policy: { stock_mismatch: 'repair' } })
    expect(discrepancies.map((d) => [d.kind, d.action])).toEqual([['stock_mismatch', 'repaired']])
    expect(h.stack.wms.reservations().find((r) => r.id === reservationId)!.lines).toEqual([{ ...line }])
    expect(await audits(`order:${id}`)).toHaveLength(1)
    // Nothing else was asked of the pipeline: every link is as settled as before.
    await h.waitSettled([id])
    expect((await h.reconcile({ orderIds: [id] }, { policy: { stock_mismatch: 'repair' } })).discrepancies).toEqual([])
  })
})
