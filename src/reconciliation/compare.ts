/**
 * The comparison itself: what orderbridge recorded for an order against what one system holds for
 * it now, as findings (a drift kind, expected, actual) and, for each, the repair that would mend
 * it. Pure: no I/O, no clock. Whether a finding is repaired is the policy's decision, not this
 * module's; a finding that nothing automatic can mend says why in `note`.
 */
import type { RemoteCrmOrder, RemoteInvoice, RemoteReservation, RemoteSalesOrder, ReservationRequest } from '../connector-kit/index.ts'
import type { OrderState } from '../orders/order-state.ts'
import { addDecimals, compareDecimals, roundDecimal } from '../shared/decimal.ts'
import type { DriftKind } from './reconciliation.schemas.ts'

/** A link as a run reads it: the target's id, and whether a step is settled on it. */
export interface LinkSnapshot {
  externalId: string | null
  status: string
  /** A step holds its lease: the link is about to change. */
  leased: boolean
}

/** What orderbridge recorded for one order, as far as reconciliation compares it. */
export interface OrderSnapshot {
  id: string
  sourceConnection: string
  /** The CRM's id for the order. */
  externalId: string
  state: OrderState
  sourceVersion: number
  currency: string
  total: string
  paymentState: string
  amountPaid: string
  lines: { sku: string; quantity: string }[]
  invoices: { number: string; amount: string }[]
  erp?: LinkSnapshot
  inventory?: LinkSnapshot
  crm?: LinkSnapshot
}

/** How a finding is mended. */
export type Repair =
  /** Ask for the order's step again through the pipeline (lifecycle.requestStep), after marking the link unsynced; `clearExternalId`: the target lost the record. */
  | { type: 'rerun-step'; operation: string; clearExternalId: boolean }
  /** Tell the CRM the order's status again (lifecycle.requestStatusWriteback). */
  | { type: 'repush-status' }
  /** A reservation that is not ours to keep: released through the inventory capability. */
  | { type: 'release-reservation'; externalId: string }
  /** A second sales order under our reference: cancelled through the sales-order capability. */
  | { type: 'cancel-sales-order'; externalId: string }
  /**
   * Our reservation holds other quantities than the order: set back through the inventory
   * capability (reserve with the existing reservation), as the reservation step would. Not by
   * re-running that step: for an order past `reserved` it also asks for the ERP step again at the
   * same version, which would leave the ERP link pending.
   */
  | { type: 'replace-reservation'; externalId: string; request: ReservationRequest }

export interface Finding {
  kind: DriftKind
  orderId: string | null
  connectionId: string
  /** The target's record the finding is about, when there is one. */
  externalId: string | null
  expected: unknown
  actual: unknown
  repair: Repair | null
  /** Why there is no automatic repair. */
  note?: string
}

/** Links whose step is settled: anything else is in flight, or a failure the failures list already shows. */
export const settledLinkStatuses = ['synced', 'cancelled'] as const

export function isSettled(link: LinkSnapshot | undefined): link is LinkSnapshot {
  return link !== undefined && !link.leased && (settledLinkStatuses as readonly string[]).includes(link.status)
}

const negate = (value: string) => (value.startsWith('-') ? value.slice(1) : `-${value}`)

/** To the cent: both amounts are rounded to two places (half away from zero) before they are compared. */
export function amountsDiffer(expected: string, actual: string, tolerance: string): boolean {
  // Most amounts agree to the character; only the others pay for exact arithmetic.
  if (expected === actual) return false
  const a = roundDecimal(expected, 2)
  const b = roundDecimal(actual, 2)
  const diff = compareDecimals(a, b) >= 0 ? addDecimals([a, negate(b)]) : addDecimals([b, negate(a)])
  return compareDecimals(diff, tolerance) > 0
}

/** Quantity per SKU, summed over lines (a SKU may be on several lines; line order does not matter). */
export function quantitiesBySku(lines: readonly { sku: string; quantity: string }[]): Map<string, string> {
  const sums = new Map<string, string>()
  for (const line of lines) sums.set(line.sku, addDecimals([sums.get(line.sku) ?? '0', line.quantity]))
  return sums
}

/** The SKUs whose quantities differ, with both sides (a missing SKU counts as 0). */
/** Line for line the same SKUs and quantities, to the character: the common case, decided without arithmetic. */
function sameLines(a: readonly { sku: string; quantity: string }[], b: readonly { sku: string; quantity: string }[]): boolean {
  return a.length === b.length && a.every((line, i) => line.sku === b[i]!.sku && line.quantity === b[i]!.quantity)
}

/** The SKUs whose summed quantities differ between two sets of lines (none when they agree). */
export function lineDifferences(expected: readonly { sku: string; quantity: string }[], actual: readonly { sku: string; quantity: string }[]): { sku: string; expected: string; actual: string }[] {
  return sameLines(expected, actual) ? [] : quantityDifferences(quantitiesBySku(expected), quantitiesBySku(actual))
}

export function quantityDifferences(expected: Map<string, string>, actual: Map<string, string>): { sku: string; expected: string; actual: string }[] {
  const skus = [...new Set([...expected.keys(), ...actual.keys()])].sort()
  return skus.flatMap((sku) => {
    const e = expected.get(sku) ?? '0'
    const a = actual.get(sku) ?? '0'
    return compareDecimals(e, a) === 0 ? [] : [{ sku, expected: e, actual: a }]
  })
}

const upsertOperation = 'salesOrders.upsert'
const reserveOperation = 'inventory.reserve'

/** The ERP's sales orders for one order (found under our reference) against the order. */
export function compareSalesOrders(order: OrderSnapshot, found: readonly RemoteSalesOrder[], connectionId: string, tolerance: string): Finding[] {
  const link = order.erp
  if (!isSettled(link)) return []
  const base = { orderId: order.id, connectionId }
  const open = found.filter((so) => so.status === 'open')
  const summary = (so: RemoteSalesOrder) => ({ externalId: so.externalId, status: so.remoteStatus ?? so.status, total: so.total ?? null, currency: so.currency ?? null })

  if (order.state === 'cancelled') {
    // Every sales order under our reference should be cancelled: ours through the pipeline, any other directly.
    return open.map((so) => ({
      ...base,
      kind: 'state_mismatch' as const,
      externalId: so.externalId,
      expected: { state: 'cancelled' },
      actual: summary(so),
      repair: so.externalId === link.externalId ? { type: 'rerun-step' as const, operation: upsertOperation, clearExternalId: false } : { type: 'cancel-sales-order' as const, externalId: so.externalId },
    }))
  }
  if (order.state === 'rejected' || link.status !== 'synced') return []

  const expected = { reference: order.id, externalId: link.externalId, currency: order.currency, total: order.total, lines: order.lines }
  const primary = found.find((so) => so.externalId === link.externalId) ?? open[0] ?? found[0]
  if (!primary) {
    return [{ ...base, kind: 'missing_in_target', externalId: link.externalId, expected, actual: null, repair: { type: 'rerun-step', operation: upsertOperation, clearExternalId: true } }]
  }
  const findings: Finding[] = []
  if (link.externalId !== null && primary.externalId !== link.externalId) {
    // Ours is gone, another one carries our reference: the step adopts it (it looks up by reference first).
    findings.push({ ...base, kind: 'missing_in_target', externalId: link.externalId, expected, actual: { foundUnderReference: found.map(summary) }, repair: { type: 'rerun-step', operation: upsertOperation, clearExternalId: true } })
  }
  for (const extra of open.filter((so) => so !== primary)) {
    findings.push({ ...base, kind: 'duplicate_in_target', externalId: extra.externalId, expected: { reference: order.id, externalId: primary.externalId }, actual: summary(extra), repair: { type: 'cancel-sales-order', externalId: extra.externalId } })
  }
  if (primary.status === 'cancelled') {
    findings.push({
      ...base,
      kind: 'state_mismatch',
      externalId: primary.externalId,
      expected: { state: order.state },
      actual: summary(primary),
      repair: null,
      note: 'the ERP cancelled the sales order; orderbridge does not re-open or cancel orders on its own',
    })
    return findings
  }
  const resync = { type: 'rerun-step' as const, operation: upsertOperation, clearExternalId: false }
  if ((primary.currency !== undefined && primary.currency !== order.currency) || (primary.total !== undefined && amountsDiffer(order.total, primary.total, tolerance))) {
    findings.push({ ...base, kind: 'amount_mismatch', externalId: primary.externalId, expected: { total: order.total, currency: order.currency }, actual: { total: primary.total ?? null, currency: primary.currency ?? null }, repair: resync })
  }
  if (primary.lines !== undefined) {
    const differences = lineDifferences(order.lines, primary.lines)
    if (differences.length) {
      findings.push({ ...base, kind: 'line_mismatch', externalId: primary.externalId, expected: { lines: order.lines }, actual: { lines: primary.lines, differences }, repair: resync })
    }
  }
  return findings
}

/** The ERP's invoices for one order against the invoices and payments orderbridge recorded. */
export function compareInvoices(order: OrderSnapshot, invoices: readonly RemoteInvoice[], connectionId: string, tolerance: string): Finding | null {
  if (!isSettled(order.erp)) return null
  if (!order.invoices.length && !invoices.length) return null
  const theirs = new Map(invoices.map((invoice) => [invoice.number, invoice]))
  const ours = new Map(order.invoices.map((invoice) => [invoice.number, invoice]))
  const problems: string[] = []
  for (const [number, invoice] of ours) {
    const remote = theirs.get(number)
    if (!remote) problems.push(`invoice ${number} is not in the ERP`)
    else if (amountsDiffer(invoice.amount, remote.amount, tolerance)) problems.push(`invoice ${number}: amount ${remote.amount} in the ERP, ${invoice.amount} here`)
  }
  for (const number of theirs.keys()) if (!ours.has(number)) problems.push(`invoice ${number} is not recorded here`)
  const paid = invoices.length === 1 ? invoices[0]!.paid : invoices.length ? addDecimals(invoices.map((invoice) => invoice.paid)) : '0'
  if (amountsDiffer(order.amountPaid, paid, tolerance)) problems.push(`paid ${paid} in the ERP, ${order.amountPaid} here`)
  if (!problems.length) return null
  return {
    kind: 'invoice_mismatch',
    orderId: order.id,
    connectionId,
    externalId: null,
    expected: { invoices: order.invoices, paid: order.amountPaid },
    actual: { invoices: invoices.map((i) => ({ externalId: i.externalId, number: i.number, amount: i.amount, paid: i.paid, status: i.status ?? null })), paid, problems },
    repair: null,
    note: 'invoices and payments are the ERP\'s: correct them there, or replay its invoice and payment events',
  }
}

/** States in which the order's stock is held in the WMS. */
const holdingStates: readonly OrderState[] = ['reserved', 'pending_shipment']
const shippedStates: readonly OrderState[] = ['shipped', 'delivered', 'completed']

/** The WMS's reservations for one order against the order's lines and state. */
export function compareReservations(order: OrderSnapshot, found: readonly RemoteReservation[], connectionId: string, stockPolicy: 'hold' | 'partial' | 'reject'): Finding[] {
  const link = order.inventory
  if (!isSettled(link)) return []
  const base = { orderId: order.id, connectionId }
  const active = found.filter((r) => r.status === 'active')
  const summary = (r: RemoteReservation) => ({ externalId: r.externalId, status: r.status, lines: r.lines.map((l) => ({ sku: l.sku, requested: l.requested, reserved: l.reserved })) })

  if (order.state === 'cancelled' || order.state === 'rejected') {
    return active.map((r) => ({
      ...base,
      kind: 'state_mismatch' as const,
      externalId: r.externalId,
      expected: { state: order.state, reservation: 'released' },
      actual: summary(r),
      // Our own reservation of a cancelled order goes through its step, which releases it; anything else directly.
      repair: order.state === 'cancelled' && r.externalId === link.externalId ? { type: 'rerun-step' as const, operation: reserveOperation, clearExternalId: false } : { type: 'release-reservation' as const, externalId: r.externalId },
    }))
  }
  if (shippedStates.includes(order.state)) {
    return active.map((r) => ({ ...base, kind: 'state_mismatch' as const, externalId: r.externalId, expected: { state: order.state, reservation: 'shipped' }, actual: summary(r), repair: null, note: 'the WMS still holds stock for an order that shipped; the warehouse must look' }))
  }
  if (!holdingStates.includes(order.state) || link.status !== 'synced') return []

  const expected = { reference: order.id, externalId: link.externalId, lines: order.lines }
  if (!active.length) {
    const shipped = found.find((r) => r.status === 'shipped' || r.status === 'delivered')
    if (shipped) return [{ ...base, kind: 'state_mismatch', externalId: shipped.externalId, expected: { state: order.state, reservation: 'active' }, actual: summary(shipped), repair: null, note: 'the WMS shipped it, but its shipment event never reached orderbridge' }]
    return [{ ...base, kind: 'missing_in_target', externalId: link.externalId, expected, actual: found.length ? { reservations: found.map(summary) } : null, repair: null, note: 'a reservation is never made again automatically: its stock may have gone to other orders' }]
  }
  const primary = active.find((r) => r.externalId === link.externalId) ?? active[0]!
  const findings: Finding[] = active
    .filter((r) => r !== primary)
    .map((extra) => ({ ...base, kind: 'duplicate_in_target' as const, externalId: extra.externalId, expected: { reference: order.id, externalId: primary.externalId }, actual: summary(extra), repair: { type: 'release-reservation' as const, externalId: extra.externalId } }))
  // A partial reservation legitimately holds less than it asked for; then what it asked for must match.
  const held = primary.lines.map((l) => ({ sku: l.sku, quantity: stockPolicy === 'partial' ? l.requested : l.reserved }))
  const differences = lineDifferences(order.lines, held)
  if (differences.length) {
    // The same request the reservation step makes: line ids are positions, as there.
    const request: ReservationRequest = { lines: order.lines.map((line, i) => ({ lineId: String(i + 1), sku: line.sku, quantity: line.quantity })), allowPartial: stockPolicy === 'partial' }
    findings.push({ ...base, kind: 'stock_mismatch', externalId: primary.externalId, expected, actual: { ...summary(primary), differences }, repair: { type: 'replace-reservation', externalId: primary.externalId, request } })
  }
  return findings
}

/** What the CRM should show for the order: what the status write-back sends. */
export function expectedCrmStatus(order: OrderSnapshot): { state: string; paymentState: string; erpOrderNumber?: string; paidAmount: string } {
  return { state: order.state, paymentState: order.paymentState, ...(order.erp?.externalId ? { erpOrderNumber: order.erp.externalId } : {}), paidAmount: order.amountPaid }
}

/** The status the CRM shows for its order against the order's state, payment and ERP number. */
export function compareCrmStatus(order: OrderSnapshot, remote: RemoteCrmOrder | undefined, connectionId: string, tolerance: string): Finding | null {
  if (!isSettled(order.crm)) return null
  const expected = expectedCrmStatus(order)
  const shown = remote?.status
  const behind =
    !shown ||
    shown.state !== expected.state ||
    (shown.paymentState !== undefined && shown.paymentState !== expected.paymentState) ||
    (expected.erpOrderNumber !== undefined && shown.erpOrderNumber !== expected.erpOrderNumber) ||
    (shown.paidAmount !== undefined && amountsDiffer(expected.paidAmount, shown.paidAmount, tolerance))
  if (!behind) return null
  return { kind: 'state_mismatch', orderId: order.id, connectionId, externalId: order.externalId, expected, actual: shown ?? null, repair: { type: 'repush-status' } }
}
