/** The comparison alone: pure, no I/O. */
import { describe, expect, it } from 'vitest'
import type { RemoteReservation, RemoteSalesOrder } from '../../src/connector-kit/index.ts'
import { amountsDiffer, compareCrmStatus, compareInvoices, compareReservations, compareSalesOrders, type OrderSnapshot } from '../../src/reconciliation/compare.ts'

const order = (over: Partial<OrderSnapshot> = {}): OrderSnapshot => ({
  id: 'o-1',
  sourceConnection: 'crm',
  externalId: 'SO-1',
  state: 'pending_shipment',
  sourceVersion: 1,
  currency: 'CNY',
  total: '250.50',
  paymentState: 'not_invoiced',
  amountPaid: '0',
  lines: [
    { sku: 'A', quantity: '2' },
    { sku: 'B', quantity: '1' },
  ],
  invoices: [],
  erp: { externalId: 'E-1', status: 'synced', leased: false },
  inventory: { externalId: 'R-1', status: 'synced', leased: false },
  crm: { externalId: 'SO-1', status: 'synced', leased: false },
  ...over,
})
const so = (over: Partial<RemoteSalesOrder> = {}): RemoteSalesOrder => ({
  externalId: 'E-1',
  reference: 'o-1',
  status: 'open',
  currency: 'CNY',
  total: '250.50',
  lines: [
    { sku: 'A', quantity: '2' },
    { sku: 'B', quantity: '1' },
  ],
  ...over,
})
const reservation = (over: Partial<RemoteReservation> = {}): RemoteReservation => ({
  externalId: 'R-1',
  reference: 'o-1',
  status: 'active',
  lines: [
    { lineId: '1', sku: 'A', requested: '2', reserved: '2' },
    { lineId: '2', sku: 'B', requested: '1', reserved: '1' },
  ],
  ...over,
})
const kinds = (findings: { kind: string; repair: { type: string } | null }[]) => findings.map((f) => [f.kind, f.repair?.type ?? null])

describe('amounts', () => {
  it('are compared to the cent, with the tolerance', () => {
    expect(amountsDiffer('569.08', '569.080', '0')).toBe(false)
    expect(amountsDiffer('10.004', '10.00', '0')).toBe(false)
    expect(amountsDiffer('569.08', '569.09', '0')).toBe(true)
    expect(amountsDiffer('569.08', '569.09', '0.01')).toBe(false)
    expect(amountsDiffer('569.08', '569.10', '0.01')).toBe(true)
    expect(amountsDiffer('-1.00', '1.00', '0')).toBe(true)
  })
})

describe('sales orders', () => {
  it('agree when lines come in another order or split a SKU, and quantities are written differently', () => {
    expect(compareSalesOrders(order(), [so({ lines: [{ sku: 'B', quantity: '1.0' }, { sku: 'A', quantity: '1' }, { sku: 'A', quantity: '1' }], total: '250.5' })], 'erp', '0')).toEqual([])
  })

  it('find a missing order, an amount, lines, a duplicate and an order the ERP cancelled', () => {
    expect(kinds(compareSalesOrders(order(), [], 'erp', '0'))).toEqual([['missing_in_target', 'rerun-step']])
    expect(compareSalesOrders(order(), [], 'erp', '0')[0]!.repair).toEqual({ type: 'rerun-step', operation: 'salesOrders.upsert', clearExternalId: true })
    expect(kinds(compareSalesOrders(order(), [so({ total: '250.49' })], 'erp', '0'))).toEqual([['amount_mismatch', 'rerun-step']])
    expect(kinds(compareSalesOrders(order(), [so({ currency: 'USD' })], 'erp', '0'))).toEqual([['amount_mismatch', 'rerun-step']])
    expect(compareSalesOrders(order(), [so({ lines: [{ sku: 'A', quantity: '3' }] })], 'erp', '0')[0]).toMatchObject({
      kind: 'line_mismatch',
      actual: { differences: [{ sku: 'A', expected: '2', actual: '3' }, { sku: 'B', expected: '1', actual: '0' }] },
    })
    expect(kinds(compareSalesOrders(order(), [so(), so({ externalId: 'E-2' })], 'erp', '0'))).toEqual([['duplicate_in_target', 'cancel-sales-order']])
    expect(kinds(compareSalesOrders(order(), [so({ status: 'cancelled' })], 'erp', '0'))).toEqual([['state_mismatch', null]])
  })

  it('adopt another order under our reference when ours is gone', () => {
    expect(compareSalesOrders(order(), [so({ externalId: 'E-9' })], 'erp', '0')[0]).toMatchObject({ kind: 'missing_in_target', externalId: 'E-1', repair: { clearExternalId: true } })
  })

  it('want every order under our reference cancelled when the order is: ours through its step, others directly', () => {
    const cancelled = order({ state: 'cancelled', erp: { externalId: 'E-1', status: 'cancelled', leased: false } })
    expect(kinds(compareSalesOrders(cancelled, [so(), so({ externalId: 'E-2' }), so({ externalId: 'E-3', status: 'cancelled' })], 'erp', '0'))).toEqual([
      ['state_mismatch', 'rerun-step'],
      ['state_mismatch', 'cancel-sales-order'],
    ])
  })

  it('leave orders alone whose link is in flight or failed', () => {
    for (const erp of [{ externalId: 'E-1', status: 'pending', leased: false }, { externalId: 'E-1', status: 'synced', leased: true }, { externalId: 'E-1', status: 'dead', leased: false }]) {
      expect(compareSalesOrders(order({ erp }), [], 'erp', '0')).toEqual([])
    }
  })
})

describe('reservations', () => {
  it('compare what is held with what was ordered, or, for partial reservations, what was asked for', () => {
    expect(compareReservations(order(), [reservation()], 'wms', 'hold')).toEqual([])
    const short = reservation({ lines: [{ lineId: '1', sku: 'A', requested: '2', reserved: '1' }, { lineId: '2', sku: 'B', requested: '1', reserved: '1' }] })
    expect(compareReservations(order(), [short], 'wms', 'hold')[0]).toMatchObject({ kind: 'stock_mismatch', repair: { type: 'replace-reservation', externalId: 'R-1', request: { allowPartial: false, lines: [{ lineId: '1', sku: 'A', quantity: '2' }, { lineId: '2', sku: 'B', quantity: '1' }] } } })
    expect(compareReservations(order(), [short], 'wms', 'partial')).toEqual([])
  })

  it('find a second active reservation, a missing one, and stock still held for a cancelled or shipped order', () => {
    expect(kinds(compareReservations(order(), [reservation(), reservation({ externalId: 'R-2' })], 'wms', 'hold'))).toEqual([['duplicate_in_target', 'release-reservation']])
    expect(kinds(compareReservations(order(), [reservation({ status: 'released' })], 'wms', 'hold'))).toEqual([['missing_in_target', null]])
    expect(kinds(compareReservations(order(), [reservation({ status: 'shipped' })], 'wms', 'hold'))).toEqual([['state_mismatch', null]])
    const cancelled = order({ state: 'cancelled', inventory: { externalId: 'R-1', status: 'cancelled', leased: false } })
    expect(kinds(compareReservations(cancelled, [reservation(), reservation({ externalId: 'R-2' })], 'wms', 'hold'))).toEqual([
      ['state_mismatch', 'rerun-step'],
      ['state_mismatch', 'release-reservation'],
    ])
    expect(kinds(compareReservations(order({ state: 'delivered' }), [reservation()], 'wms', 'hold'))).toEqual([['state_mismatch', null]])
  })
})

describe('the CRM status', () => {
  const shown = { state: 'pending_shipment', paymentState: 'not_invoiced', erpOrderNumber: 'E-1', paidAmount: '0.00' }
  it('agrees to the cent, and is behind when anything it shows is older', () => {
    expect(compareCrmStatus(order(), { externalId: 'SO-1', status: shown }, 'crm', '0')).toBeNull()
    expect(compareCrmStatus(order(), { externalId: 'SO-1', status: { ...shown, state: 'reserved' } }, 'crm', '0')).toMatchObject({ kind: 'state_mismatch', repair: { type: 'repush-status' } })
    expect(compareCrmStatus(order(), { externalId: 'SO-1', status: { ...shown, erpOrderNumber: 'E-0' } }, 'crm', '0')).not.toBeNull()
    expect(compareCrmStatus(order({ amountPaid: '10.00' }), { externalId: 'SO-1', status: shown }, 'crm', '0')).not.toBeNull()
    expect(compareCrmStatus(order(), undefined, 'crm', '0')).toMatchObject({ actual: null })
  })
})

describe('invoices', () => {
  const invoice = { externalId: 'I-1', number: 'FP-1', reference: 'o-1', currency: 'CNY', amount: '250.50', paid: '0.00' }
  it('agree when numbers, amounts and what is paid match', () => {
    expect(compareInvoices(order({ invoices: [{ number: 'FP-1', amount: '250.5' }] }), [invoice], 'erp', '0')).toBeNull()
    expect(compareInvoices(order(), [], 'erp', '0')).toBeNull()
  })

  it('name each problem: unknown here or there, the amount, the payments', () => {
    const ours = order({ invoices: [{ number: 'FP-1', amount: '250.50' }], amountPaid: '100.00' })
    expect(compareInvoices(ours, [{ ...invoice, amount: '200.00', paid: '50.00' }, { ...invoice, externalId: 'I-2', number: 'FP-2' }], 'erp', '0')).toMatchObject({
      kind: 'invoice_mismatch',
      repair: null,
      actual: { paid: '50.00', problems: ['invoice FP-1: amount 200.00 in the ERP, 250.50 here', 'invoice FP-2 is not recorded here', 'paid 50.00 in the ERP, 100.00 here'] },
    })
    expect(compareInvoices(ours, [], 'erp', '0')!.actual).toMatchObject({ problems: ['invoice FP-1 is not in the ERP', 'paid 0 in the ERP, 100.00 here'] })
  })
})
