/**
 * Polling Tryton for what happened to our sales, since Tryton does not push: customer shipments
 * that are done, customer invoices that are posted, and the payments on them. Each becomes a
 * fulfilment event for the order whose id is the sale's reference (`ref:<order id>`):
 *
 * | Tryton | event | event id |
 * | --- | --- | --- |
 * | shipment done | `order.shipped` (lines: SKU and quantity moved) | `tryton-shipment-<id>-done` |
 * | the same, at the next poll, with `poll.deliveredOnDone` | `order.delivered` (at: effective date) | `tryton-shipment-<id>-delivered` |
 * | invoice posted | `order.invoiced` (number, total, currency, due date) | `tryton-invoice-<id>-posted` |
 * | each payment line of the invoice | `order.payment_received` (that payment's amount) | `tryton-payment-<move line id>` |
 * | invoice paid without payment lines adding up (write-off, credit note) | `order.payment_received` (the rest) | `tryton-invoice-<id>-settled` |
 *
 * Event ids are stable: reading the same record again gives the same ids, which the inbox answers
 * as duplicates, and each partial payment is counted once however often the invoice is read.
 *
 * `order.delivered` waits one poll after `order.shipped`: events of one page carry no order among
 * them, and a delivery applied before its shipment would be refused.
 *
 * The cursor keeps a keyset position per model, `(write_date, id)`, read in that order. A page that
 * ends inside a run of equal write dates goes on after the id. Changes younger than `settleMs` wait
 * for the next poll: Tryton stamps write_date with its transaction's start, so a change committed
 * late can carry an earlier stamp than one already read. Only sales whose reference is one of our
 * order ids (a UUID) produce events; Tryton's own sales are none of our business.
 */
import { SyncFailure, type ConnectorContext, type InboundEvent, type PolledChanges } from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { models, type Domain, type Models, type Row } from './models.ts'
import { pollSettingsSchema, trytonConnectorId, type TrytonSecrets, type TrytonSettings } from './settings.ts'
import { addDecimals, compareDecimals, datetime, datetimeText, floatToDecimal, negateDecimal, trimDecimal, type Encoded } from './values.ts'

const connectorId = trytonConnectorId
type Context = ConnectorContext<TrytonSettings, TrytonSecrets>
type PolledEvent = InboundEvent & { eventId: string }

export const pollResource = 'sales-fulfilment'
/** The largest page per model and poll. */
export const maxPageSize = 200

const ourReference = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const positionSchema = z.object({ at: z.string(), id: z.number().int().min(0) })
const cursorSchema = z.object({ v: z.literal(1), shipments: positionSchema, invoices: positionSchema, delivered: positionSchema.optional() })
type Position = z.infer<typeof positionSchema>
type Cursor = z.infer<typeof cursorSchema>

export function parseCursor(cursor: string | null, settings: TrytonSettings, now: number): Cursor {
  if (cursor === null) {
    const poll = settings.poll ?? pollSettingsSchema.parse({})
    // `since` is inclusive, the keyset "after": start a millisecond before it.
    const start = datetimeText(poll.since !== undefined ? Date.parse(poll.since) - 1 : now - poll.settleMs)
    return { v: 1, shipments: { at: start, id: 0 }, invoices: { at: start, id: 0 }, delivered: { at: start, id: 0 } }
  }
  try {
    return cursorSchema.parse(JSON.parse(cursor))
  } catch (err) {
    throw new SyncFailure('bug', `unreadable poll cursor "${cursor.slice(0, 80)}"`, { connectorId }, { cause: err })
  }
}

/** The domain clause for records strictly after `position` in `(write_date, id)` order (reconciliation pages by it too). */
export function keysetAfter(position: Position): Encoded {
  return ['OR', ['write_date', '>', datetime(position.at)], [['write_date', '=', datetime(position.at)], ['id', '>', position.id]]]
}

/** Records after `position` and not younger than `horizon` (or, given `upTo`, not after that position), in keyset order. */
function keyset(position: Position, horizon: string, upTo?: Position): Domain {
  return [
    ['write_date', '<=', datetime(horizon)],
    keysetAfter(position),
    ...(upTo ? [['OR', ['write_date', '<', datetime(upTo.at)], [['write_date', '=', datetime(upTo.at)], ['id', '<=', upTo.id]]]] : []),
  ]
}

export const keysetOrder: [string, 'ASC' | 'DESC'][] = [
  ['write_date', 'ASC'],
  ['id', 'ASC'],
]

interface Page<T extends Row> {
  rows: T[]
  next: Position
  full: boolean
}

async function page<T extends Row & { write_date: string }>(m: Models, model: string, filter: Domain, fields: readonly string[], position: Position, horizon: string, limit: number, upTo?: Position): Promise<Page<T>> {
  const rows = await m.searchRead<T>(model, [...filter, ...keyset(position, horizon, upTo)], [...fields, 'write_date'], { limit, order: keysetOrder })
  const last = rows.at(-1)
  return { rows, next: last ? { at: last.write_date, id: last.id } : position, full: rows.length === limit }
}

interface SaleRef extends Row {
  reference: string | null
  lines: number[]
  shipments: number[]
  invoices: number[]
}

/** Our sales among those holding these shipments (or invoices), by the record's id. */
async function salesOf(m: Models, field: 'shipments' | 'invoices', ids: readonly number[]): Promise<Map<number, SaleRef[]>> {
  const bySource = new Map<number, SaleRef[]>()
  if (!ids.length) return bySource
  const sales = await m.searchRead<SaleRef>('sale.sale', [[field, 'in', [...ids]]], ['reference', 'lines', 'shipments', 'invoices'])
  for (const sale of sales) {
    if (!sale.reference || !ourReference.test(sale.reference)) continue
    for (const id of sale[field]) {
      if (ids.includes(id)) bySource.set(id, [...(bySource.get(id) ?? []), sale])
    }
  }
  return bySource
}

interface ShipmentRow extends Row {
  write_date: string
  number: string | null
  effective_date: string | null
  outgoing_moves: number[]
}

interface MoveRow extends Row {
  quantity: number
  origin: string | null
  'product.': { id: number; code: string } | null
}

async function shipmentEvents(m: Models, shipments: readonly ShipmentRow[], kind: 'shipped' | 'delivered'): Promise<PolledEvent[]> {
  const sales = await salesOf(
    m,
    'shipments',
    shipments.map((s) => s.id),
  )
  const moves = new Map((await m.read<MoveRow>('stock.move', shipments.flatMap((s) => s.outgoing_moves), ['quantity', 'origin', 'product.code'])).map((move) => [move.id, move]))
  const events: PolledEvent[] = []
  for (const shipment of shipments) {
    for (const sale of sales.get(shipment.id) ?? []) {
      const saleLines = new Set(sale.lines.map((id) => `sale.line,${id}`))
      const quantities = new Map<string, string>()
      for (const id of shipment.outgoing_moves) {
        const move = moves.get(id)
        if (!move?.['product.'] || (move.origin !== null && !saleLines.has(move.origin))) continue
        const sku = move['product.'].code
        quantities.set(sku, addDecimals(quantities.get(sku) ?? '0', floatToDecimal(move.quantity)))
      }
      const externalId = `ref:${sale.reference}`
      if (kind === 'shipped') {
        events.push({
          eventId: `tryton-shipment-${shipment.id}-done`,
          type: 'order.shipped',
          externalId,
          sourceVersion: 0,
          document: { lines: [...quantities].map(([sku, quantity]) => ({ sku, quantity })) },
        })
      } else {
        events.push({
          eventId: `tryton-shipment-${shipment.id}-delivered`,
          type: 'order.delivered',
          externalId,
          sourceVersion: 0,
          document: shipment.effective_date ? { at: shipment.effective_date } : {},
        })
      }
    }
  }
  return events
}

interface InvoiceRow extends Row {
  write_date: string
  state: string
  number: string | null
  total_amount: string
  'currency.': { id: number; code: string } | null
  lines_to_pay: number[] | null
  payment_lines: number[] | null
  /** Null until the invoice is paid. */
  reconciliation_lines: number[] | null
}

interface MoveLineRow extends Row {
  debit: string
  credit: string
  amount_second_currency: string | null
  'second_currency.': { id: number; code: string } | null
  maturity_date: string | null
}

async function invoiceEvents(m: Models, invoices: readonly InvoiceRow[]): Promise<PolledEvent[]> {
  const sales = await salesOf(
    m,
    'invoices',
    invoices.map((i) => i.id),
  )
  const lineIds = invoices.flatMap((i) => [...(i.lines_to_pay ?? []), ...(i.payment_lines ?? []), ...(i.reconciliation_lines ?? [])])
  const lines = new Map((await m.read<MoveLineRow>('account.move.line', [...new Set(lineIds)], ['debit', 'credit', 'amount_second_currency', 'second_currency.code', 'maturity_date'])).map((line) => [line.id, line]))
  const events: PolledEvent[] = []
  for (const invoice of invoices) {
    const currency = invoice['currency.']?.code
    if (!currency || !invoice.number) continue
    // A payment in the invoice's currency: the foreign amount when the company books in another.
    const paid = (line: MoveLineRow): string => {
      if (line.amount_second_currency !== null && line['second_currency.']?.code === currency) return negateDecimal(line.amount_second_currency)
      return addDecimals(line.credit, negateDecimal(line.debit))
    }
    const dueDates = (invoice.lines_to_pay ?? []).map((id) => lines.get(id)?.maturity_date).filter((d): d is string => typeof d === 'string').sort()
    const payments = [...new Set([...(invoice.payment_lines ?? []), ...(invoice.reconciliation_lines ?? [])])]
      .map((id) => lines.get(id))
      .filter((line): line is MoveLineRow => line !== undefined)
      .map((line) => ({ id: line.id, amount: paid(line) }))
      .filter((payment) => compareDecimals(payment.amount, '0') > 0)
    for (const sale of sales.get(invoice.id) ?? []) {
      const externalId = `ref:${sale.reference}`
      events.push({
        eventId: `tryton-invoice-${invoice.id}-posted`,
        type: 'order.invoiced',
        externalId,
        sourceVersion: 0,
        document: { invoiceNumber: invoice.number, amount: trimDecimal(invoice.total_amount, 2), currency, ...(dueDates[0] ? { dueDate: dueDates[0] } : {}) },
      })
      for (const payment of payments) {
        events.push({
          eventId: `tryton-payment-${payment.id}`,
          type: 'order.payment_received',
          externalId,
          sourceVersion: 0,
          document: { paymentId: `tryton-move-line-${payment.id}`, amount: trimDecimal(payment.amount, 2), currency },
        })
      }
      const counted = addDecimals('0', ...payments.map((p) => p.amount))
      const rest = addDecimals(invoice.total_amount, negateDecimal(counted))
      if (invoice.state === 'paid' && compareDecimals(rest, '0') > 0) {
        events.push({
          eventId: `tryton-invoice-${invoice.id}-settled`,
          type: 'order.payment_received',
          externalId,
          sourceVersion: 0,
          document: { paymentId: `tryton-invoice-${invoice.id}-settled`, amount: trimDecimal(rest, 2), currency },
        })
      }
    }
  }
  return events
}

export async function fetchFulfilmentChanges(ctx: Context, cursor: string | null, limit: number): Promise<PolledChanges> {
  const poll = ctx.settings.poll ?? pollSettingsSchema.parse({})
  const now = Date.now()
  const position = parseCursor(cursor, ctx.settings, now)
  const horizon = datetimeText(now - poll.settleMs)
  const size = Math.max(1, Math.min(limit, maxPageSize))
  const m = models(ctx)
  const shipmentFields = ['number', 'effective_date', 'outgoing_moves']
  const delivered = position.delivered ?? position.shipments
  const [shipments, deliveries, invoices] = await Promise.all([
    page<ShipmentRow>(m, 'stock.shipment.out', [['state', '=', 'done']], shipmentFields, position.shipments, horizon, size),
    // Delivered only for shipments whose shipped event an earlier page already made durable, so
    // the two cannot arrive in the wrong order (events of one page have no order among them).
    poll.deliveredOnDone
      ? page<ShipmentRow>(m, 'stock.shipment.out', [['state', '=', 'done']], shipmentFields, delivered, horizon, size, position.shipments)
      : Promise.resolve({ rows: [], next: delivered, full: false }),
    page<InvoiceRow>(
      m,
      'account.invoice',
      [
        ['type', '=', 'out'],
        ['state', 'in', ['posted', 'paid']],
      ],
      ['state', 'number', 'total_amount', 'currency.code', 'lines_to_pay', 'payment_lines', 'reconciliation_lines'],
      position.invoices,
      horizon,
      size,
    ),
  ])
  const events = [...(await shipmentEvents(m, shipments.rows, 'shipped')), ...(await shipmentEvents(m, deliveries.rows, 'delivered')), ...(await invoiceEvents(m, invoices.rows))]
  const next: Cursor = { v: 1, shipments: shipments.next, invoices: invoices.next, delivered: deliveries.next }
  // Shipments read now are delivered at the next poll, an interval later: by then their shipped event has been applied.
  return { events, nextCursor: JSON.stringify(next), more: shipments.full || invoices.full || deliveries.full }
}
