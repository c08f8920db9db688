/**
 * Events from the systems that fulfil and bill an order (and from a CRM that runs approval
 * itself): shipped, delivered, invoiced, payment received, approval decided, stock changed. Each
 * moves the order along its state machine or its payment track; an event that does not fit the
 * order's state is recorded and reported, not applied. Runs inside the normalize transaction.
 */
import { z } from 'zod'
import { cancelInvoiceReminders, mergePlans, scheduleInvoiceReminders } from '../notifications/notification-schedule.ts'
import type { NotificationSettings } from '../notifications/notification.schemas.ts'
import type { Connection } from '../connections/connection-registry.ts'
import type { FulfilmentEventType } from '../connector-kit/index.ts'
import type { Queryable } from '../db/database.ts'
import { compareDecimals, isDecimalString } from '../shared/decimal.ts'
import { recordStockLevels } from '../stock/stock-push.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { operations, type Lifecycle, type UnitOfWork } from './lifecycle.ts'
import { lockOrder, type OrderRow } from './order.repository.ts'
import { canTransition, reservingStates, type OrderState } from './order-state.ts'

const decimal = z.string().refine(isDecimalString, 'must be a decimal string')

export const fulfilmentDocumentSchemas = {
  'order.approval': z.object({ decision: z.enum(['approve', 'reject']), comment: z.string().optional(), by: z.string().optional() }),
  'order.shipped': z.object({ carrier: z.string().optional(), trackingNumber: z.string().optional(), lines: z.array(z.object({ sku: z.string(), quantity: decimal })).optional() }),
  'order.delivered': z.object({ at: z.string().optional() }),
  'order.invoiced': z.object({ invoiceNumber: z.string().min(1), amount: decimal, currency: z.string().length(3), dueDate: z.string().optional() }),
  'order.payment_received': z.object({ paymentId: z.string().min(1), amount: decimal, currency: z.string().length(3) }),
  'stock.changed': z.object({ levels: z.array(z.object({ sku: z.string(), available: decimal })) }),
} satisfies Record<FulfilmentEventType, z.ZodType>

export interface FulfilmentEvent {
  id: number
  connection_id: string
  event_type: FulfilmentEventType
  external_id: string
  document: Record<string, unknown>
}

export type FulfilmentOutcome =
  | { applied: true; orderId: string | null }
  /** `unknownOrder`: no order is known by the event's id (yet: its own event may still be on its way). */
  | { applied: false; orderId: string | null; reason: string; needsAttention?: boolean; unknownOrder?: boolean }

export interface FulfilmentDeps {
  lifecycle: Lifecycle
  connection: Connection | undefined
  notifications: Pick<NotificationSettings, 'rules'>
}

export async function applyFulfilmentEvent(tx: Queryable, deps: FulfilmentDeps, work: UnitOfWork, event: FulfilmentEvent): Promise<FulfilmentOutcome> {
  const parsed = fulfilmentDocumentSchemas[event.event_type].safeParse(event.document)
  if (!parsed.success) {
    return { applied: false, orderId: null, needsAttention: true, reason: issuesOf(parsed.error).map((i) => `${i.path}: ${i.message}`).join('; ') }
  }
  const cause = `${event.connection_id} event ${event.id} (${event.event_type})`
  if (event.event_type === 'stock.changed') return stockArrived(tx, deps, work, event, cause)

  const order = await findTarget(tx, event)
  if (!order) return { applied: false, orderId: null, needsAttention: true, unknownOrder: true, reason: `no order is known to ${event.connection_id} as ${event.external_id}` }
  const refuse = (reason: string): FulfilmentOutcome => {
    work.events.push({ orderId: order.id, kind: 'refused', cause, detail: { reason } })
    work.changes.push({ type: 'event.refused', orderId: order.id, connectionId: event.connection_id, data: { eventId: String(event.id), type: event.event_type, reason } })
    return { applied: false, orderId: order.id, reason }
  }
  const move = async (to: OrderState, detail?: Record<string, unknown>) => {
    if (!canTransition(order.state, to)) return refuse(`an order in state ${order.state} cannot become ${to}`)
    await deps.lifecycle.transition(tx, work, order, to, cause, detail)
    return { applied: true as const, orderId: order.id }
  }

  switch (event.event_type) {
    case 'order.approval': {
      const d = fulfilmentDocumentSchemas['order.approval'].parse(event.document)
      if (order.sourceConnection !== event.connection_id || deps.connection?.approvedBy !== 'crm') return refuse(`${event.connection_id} does not run approval for this order`)
      if (order.state !== 'pending_approval') return refuse(`the order is ${order.state}, not waiting for approval`)
      return move(d.decision === 'approve' ? 'approved' : 'rejected', { by: d.by ?? event.connection_id, ...(d.comment ? { comment: d.comment } : {}) })
    }
    case 'order.shipped': {
      const d = fulfilmentDocumentSchemas['order.shipped'].parse(event.document)
      if (!canTransition(order.state, 'shipped')) return refuse(`an order in state ${order.state} cannot be shipped`)
      await tx.query('insert into shipments (order_id, connection_id, carrier, tracking_number, lines) values ($1, $2, $3, $4, $5)', [
        order.id,
        event.connection_id,
        d.carrier ?? null,
        d.trackingNumber ?? null,
        d.lines ? JSON.stringify(d.lines) : null,
      ])
      return move('shipped', { ...(d.carrier ? { carrier: d.carrier } : {}), ...(d.trackingNumber ? { trackingNumber: d.trackingNumber } : {}) })
    }
    case 'order.delivered': {
      if (!canTransition(order.state, 'delivered')) return refuse(`an order in state ${order.state} cannot be delivered`)
      await tx.query('update shipments set delivered_at = now() where order_id = $1 and delivered_at is null', [order.id])
      const outcome = await move('delivered')
      if (order.paymentState === 'paid') await deps.lifecycle.transition(tx, work, order, 'completed', 'delivered and paid')
      return outcome
    }
    case 'order.invoiced': {
      const d = fulfilmentDocumentSchemas['order.invoiced'].parse(event.document)
      if (!billableStates.includes(order.state)) return refuse(`an order in state ${order.state} cannot be invoiced`)
      const [inserted] = await tx.query(
        `insert into invoices (order_id, connection_id, invoice_number, amount, currency, due_date) values ($1, $2, $3, $4, $5, $6)
         on conflict (connection_id, invoice_number) do nothing returning id`,
        [order.id, event.connection_id, d.invoiceNumber, d.amount, d.currency, d.dueDate ?? null],
      )
      if (!inserted) return refuse(`invoice ${d.invoiceNumber} is recorded already`)
      if (d.dueDate) work.notifications = mergePlans(work.notifications, await scheduleInvoiceReminders(tx, deps.notifications, { orderId: order.id, dueDate: d.dueDate, invoiceRef: d.invoiceNumber }))
      await setPaymentState(tx, deps, work, order, cause, { invoiceNumber: d.invoiceNumber, amount: d.amount, dueDate: d.dueDate ?? null })
      return { applied: true, orderId: order.id }
    }
    case 'order.payment_received': {
      const d = fulfilmentDocumentSchemas['order.payment_received'].parse(event.document)
      if (!billableStates.includes(order.state)) return refuse(`an order in state ${order.state} cannot take a payment`)
      if (d.currency !== order.currency) return refuse(`the payment is in ${d.currency}, the order in ${order.currency}`)
      const [inserted] = await tx.query(
        `insert into payments (order_id, connection_id, payment_id, amount, currency) values ($1, $2, $3, $4, $5) on conflict (connection_id, payment_id) do nothing returning id`,
        [order.id, event.connection_id, d.paymentId, d.amount, d.currency],
      )
      if (!inserted) return refuse(`payment ${d.paymentId} is recorded already`)
      await tx.query('update orders set amount_paid = (select coalesce(sum(amount), 0) from payments where order_id = $1) where id = $1', [order.id])
      await setPaymentState(tx, deps, work, order, cause, { paymentId: d.paymentId, amount: d.amount })
      return { applied: true, orderId: order.id }
    }
  }
}

/**
 * Where an invoice or a payment is taken: from approval on (the ERP may hold the order from then,
 * and may bill or take a prepayment before shipment) to completion (an invoice may follow a
 * prepayment). Before approval no ERP order exists to bill, and a rejected or cancelled order owes
 * nothing: money for it is refused, left for a person to settle in the ERP (a refund, a credit note).
 */
const billableStates: readonly OrderState[] = ['approved', 'on_hold', 'reserved', 'pending_shipment', 'shipped', 'delivered', 'completed']

interface TargetOrder extends OrderRow {
  paymentState: string
}

/** The order an event names: `ref:<our id>`, or the id the sending connection knows it by (its link). */
async function findTarget(tx: Queryable, event: FulfilmentEvent): Promise<TargetOrder | undefined> {
  let orderId: string | undefined
  if (event.external_id.startsWith('ref:')) orderId = event.external_id.slice(4)
  else {
    // A CRM names its own orders by its own id; other systems by the id on our link.
    const [known] = await tx.query<{ order_id: string }>(
      `select id as order_id from orders where source_connection = $1 and external_id = $2
       union all select order_id from links where connection_id = $1 and external_id = $2 limit 1`,
      [event.connection_id, event.external_id],
    )
    orderId = known?.order_id
  }
  if (!orderId || !z.uuid().safeParse(orderId).success) return undefined
  const order = await lockOrder(tx, orderId)
  if (!order) return undefined
  const [row] = await tx.query<{ payment_state: string }>('select payment_state from orders where id = $1', [orderId])
  return { ...order, paymentState: row!.payment_state }
}

/**
 * The payment track beside the state machine: invoiced once an invoice exists, partially paid or
 * paid as payments add up to the invoiced amount (the order total when nothing is invoiced).
 * Delivered and paid completes the order.
 */
async function setPaymentState(tx: Queryable, deps: FulfilmentDeps, work: UnitOfWork, order: TargetOrder, cause: string, detail: Record<string, unknown>): Promise<void> {
  const [sums] = await tx.query<{ invoiced: string | null; paid: string; total: string }>(
    `select (select sum(amount)::text from invoices where order_id = $1) as invoiced, amount_paid::text as paid, total::text as total from orders where id = $1`,
    [order.id],
  )
  const due = sums!.invoiced ?? sums!.total
  const paid = sums!.paid
  const next = compareDecimals(paid, '0') <= 0 ? (sums!.invoiced ? 'invoiced' : 'not_invoiced') : compareDecimals(paid, due) >= 0 ? 'paid' : 'partially_paid'
  const from = order.paymentState
  if (next !== from) {
    await tx.query('update orders set payment_state = $2, updated_at = now() where id = $1', [order.id, next])
    order.paymentState = next
  }
  work.events.push({ orderId: order.id, kind: 'payment', cause, detail: { ...detail, from, to: next, paid } })
  work.changes.push({ type: 'order.payment_state_changed', orderId: order.id, data: { from, to: next, paid, due } })
  if (next === 'paid') work.notifications = mergePlans(work.notifications, await cancelInvoiceReminders(tx, { orderId: order.id, reason: 'paid' }))
  if (next === 'paid' && order.state === 'delivered') await deps.lifecycle.transition(tx, work, order, 'completed', 'delivered and paid')
  else await deps.lifecycle.requestStatusWriteback(tx, work, order)
}

/** Stock changed: the levels are recorded for the CRM, and orders on hold or backordered for arriving stock try again. */
async function stockArrived(tx: Queryable, deps: FulfilmentDeps, work: UnitOfWork, event: FulfilmentEvent, cause: string): Promise<FulfilmentOutcome> {
  const { levels } = fulfilmentDocumentSchemas['stock.changed'].parse(event.document)
  await recordStockLevels(tx, event.connection_id, levels)
  work.stockChanged.push(event.connection_id)
  const skus = levels.filter((l) => compareDecimals(l.available, '0') > 0).map((l) => l.sku)
  if (!skus.length || !deps.connection) return { applied: true, orderId: null }
  // The reservations the sweeper re-checks now and then (src/queue/sweeper.ts), those waiting for
  // these SKUs: held short, in any state that still wants the stock (an order that grew after its
  // sales order was made is held in pending_shipment, not on_hold), or filled in part.
  const held = await tx.query<{ id: string; source_version: number }>(
    `select o.id, o.source_version from orders o join links l on l.order_id = o.id and l.connection_id = $1 and l.operation = $2
     where o.state = any($4::text[])
       and ((l.status = 'held' and exists (select 1 from jsonb_array_elements(coalesce(o.hold -> 'missing', '[]')) m where m ->> 'sku' = any($3::text[])))
         or (l.status = 'synced' and exists (select 1 from jsonb_array_elements(coalesce(o.hold -> 'backordered', '[]')) b where b ->> 'sku' = any($3::text[]))))
     order by o.state_entered_at limit 500`,
    [event.connection_id, operations.reserveStock, skus, reservingStates],
  )
  for (const order of held) {
    await deps.lifecycle.requestStep(tx, work, { orderId: order.id, connection: deps.connection, operation: operations.reserveStock, version: order.source_version })
    work.events.push({ orderId: order.id, kind: 'stock_arrived', cause, detail: { skus } })
  }
  return { applied: true, orderId: null }
}
