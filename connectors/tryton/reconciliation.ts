/**
 * What reconciliation reads from Tryton, all with `search_read`: sales (`sale.sale`) one at a time by
 * id, by many of our references at once (`reference in […]`, `referenceBatchSize` a call), or a page
 * at a time in `(write_date, id)` order to find orphans; customer invoices (`account.invoice`,
 * posted or paid) of our sales; and, Tryton being the inventory too, what each order's confirmed
 * sale holds as its "reservation". Reads only. Amounts stay decimal strings, quantities are Tryton
 * Floats read back as decimal strings.
 *
 * In the kit's words:
 * - `total` is the sum of the sale lines' amounts, untaxed, because an order's total is the sum of its
 *   lines before tax (tax comes from the products' account categories). It is what Tryton computes
 *   as the untaxed amount, summed from the lines rather than read: for a confirmed sale Tryton shows
 *   the amount it cached at confirmation, which a later edit of the lines over the API leaves as it
 *   was.
 * - `lines` are the sale lines of type `line`, with the product code as the SKU.
 * - `status` is `cancelled` for a cancelled sale, and for a sale that orderbridge cancelled after
 *   confirmation: Tryton cannot cancel a confirmed sale, so `cancel` leaves it `done` with every
 *   shipment and invoice cancelled. Anything else is `open`, and `remoteStatus` is Tryton's state.
 * - an invoice's `amount` is its total with tax, as in the `order.invoiced` event, and `paid` is what
 *   is no longer to pay (all of it once Tryton marks the invoice paid, as the poller reports it).
 *
 * Keyset paging, not offsets: a sale written while the pages are read moves to the end of the
 * `(write_date, id)` order, where the last page sees it again, and nothing shifts under a later page.
 * A sale never written since it was created has no write_date: those come first, by id.
 */
import {
  SyncFailure,
  type ConnectorContext,
  type InvoiceCapability,
  type InvoiceQuery,
  type RemoteInvoice,
  type RemoteReservation,
  type RemoteSalesOrder,
  type RemoteSalesOrderPage,
  type SalesOrderCapability,
} from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { reservationIdOf } from './inventory.ts'
import { models, type Domain, type Models, type Row } from './models.ts'
import { keysetAfter, keysetOrder } from './poll.ts'
import { trytonConnectorId, type TrytonSecrets, type TrytonSettings } from './settings.ts'
import { addDecimals, datetime, datetimeText, floatToDecimal, negateDecimal, trimDecimal } from './values.ts'

const connectorId = trytonConnectorId
type Context = ConnectorContext<TrytonSettings, TrytonSecrets>

/** References per `reference in […]` search: one page of a reconciliation run takes two calls at its default size. */
export const referenceBatchSize = 250
/** Ids per read of lines, shipments or invoices. */
const idBatchSize = 1000

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** A Tryton datetime (naive UTC) as ISO 8601. */
function isoOf(text: string): string {
  return `${text.slice(0, 23)}Z`
}

// ---------------------------------------------------------------------------------------------
// Sales

interface SaleRow extends Row {
  state: 'draft' | 'quotation' | 'confirmed' | 'processing' | 'done' | 'cancelled'
  reference: string | null
  create_date: string
  write_date: string | null
  'currency.': { id: number; code: string } | null
  shipments: number[]
  invoices: number[]
}

const saleFields = ['state', 'reference', 'create_date', 'write_date', 'currency.code', 'shipments', 'invoices'] as const

interface LineRow extends Row {
  sale: number
  type: string
  quantity: number | null
  /** quantity × unit price, rounded to the currency. */
  amount: string | null
  'product.': { id: number; code: string | null } | null
}

interface StateRow extends Row {
  state: string
}

/** Reads `ids` of `model` in batches, with `fields`. */
async function readAll<T extends Row>(m: Models, model: string, ids: readonly number[], fields: readonly string[]): Promise<T[]> {
  const rows: T[] = []
  for (const batch of chunks([...new Set(ids)], idBatchSize)) rows.push(...(await m.read<T>(model, batch, fields)))
  return rows
}

/**
 * The sales in the kit's words: one read of their lines, and, for `done` sales only, of their
 * shipments' and invoices' states (a sale cancelled after confirmation ends `done` with all of them
 * cancelled).
 */
async function toRemoteSalesOrders(m: Models, sales: readonly SaleRow[]): Promise<RemoteSalesOrder[]> {
  if (!sales.length) return []
  const linesBySale = new Map<number, { sku: string; quantity: string }[]>()
  const totals = new Map<number, string>()
  for (const batch of chunks(sales.map((s) => s.id), idBatchSize)) {
    const lines = await m.searchRead<LineRow>('sale.line', [['sale', 'in', batch], ['type', '=', 'line']], ['sale', 'type', 'quantity', 'amount', 'product.code'], { order: [['id', 'ASC']] })
    for (const line of lines) {
      // A line without a product (text only) still counts: its quantity is drift all the same.
      const sku = line['product.']?.code ?? '(no product)'
      const list = linesBySale.get(line.sale) ?? linesBySale.set(line.sale, []).get(line.sale)!
      list.push({ sku, quantity: floatToDecimal(line.quantity ?? 0) })
      totals.set(line.sale, addDecimals(totals.get(line.sale) ?? '0', line.amount ?? '0'))
    }
  }
  const done = sales.filter((s) => s.state === 'done' && s.shipments.length + s.invoices.length > 0)
  const [shipments, invoices] = done.length
    ? await Promise.all([
        readAll<StateRow>(m, 'stock.shipment.out', done.flatMap((s) => s.shipments), ['state']),
        readAll<StateRow>(m, 'account.invoice', done.flatMap((s) => s.invoices), ['state']),
      ])
    : [[], []]
  // Ids per model: a shipment and an invoice may share one.
  const cancelledOf = (rows: readonly StateRow[]) => new Set(rows.filter((r) => r.state === 'cancelled').map((r) => r.id))
  const [cancelledShipments, cancelledInvoices] = [cancelledOf(shipments), cancelledOf(invoices)]
  const undone = new Set(done.filter((s) => s.shipments.every((id) => cancelledShipments.has(id)) && s.invoices.every((id) => cancelledInvoices.has(id))).map((s) => s.id))

  return sales.map((sale) => ({
    externalId: String(sale.id),
    ...(sale.reference ? { reference: sale.reference } : {}),
    status: sale.state === 'cancelled' || undone.has(sale.id) ? 'cancelled' : 'open',
    remoteStatus: undone.has(sale.id) ? 'done (cancelled: nothing shipped or invoiced)' : sale.state,
    ...(sale['currency.'] ? { currency: sale['currency.'].code } : {}),
    total: trimDecimal(totals.get(sale.id) ?? '0', 2),
    lines: linesBySale.get(sale.id) ?? [],
    updatedAt: isoOf(sale.write_date ?? sale.create_date),
  }))
}

export async function fetchSale(ctx: Context, externalId: string): Promise<RemoteSalesOrder | undefined> {
  const id = Number(externalId)
  if (!/^\d+$/.test(externalId) || !Number.isSafeInteger(id) || id <= 0) return undefined
  const m = models(ctx)
  // A search, not a read: reading an id that does not exist (or is another company's) is an access error.
  const sales = await m.searchRead<SaleRow>('sale.sale', [['id', '=', id]], saleFields, { limit: 1 })
  return (await toRemoteSalesOrders(m, sales))[0]
}

/** Every sale under any of `references`, whatever its state (duplicates included), newest first per reference. */
export async function findSalesByReferences(ctx: Context, references: readonly string[]): Promise<RemoteSalesOrder[]> {
  const m = models(ctx)
  const found: RemoteSalesOrder[] = []
  for (const batch of chunks([...new Set(references)], referenceBatchSize)) {
    const sales = await m.searchRead<SaleRow>('sale.sale', [['reference', 'in', batch]], saleFields, { order: [['id', 'DESC']] })
    found.push(...(await toRemoteSalesOrders(m, sales)))
  }
  return found
}

// ---------------------------------------------------------------------------------------------
// Listing, for orphans: first the sales never written (write_date null) by id, then the others by (write_date, id).

const saleCursorSchema = z.union([
  z.object({ v: z.literal(1), phase: z.literal('unwritten'), id: z.number().int().min(0) }),
  z.object({ v: z.literal(1), phase: z.literal('written'), at: z.string().nullable(), id: z.number().int().min(0) }),
])
type SaleCursor = z.infer<typeof saleCursorSchema>

function parseCursor<T>(schema: z.ZodType<T>, cursor: string): T {
  try {
    return schema.parse(JSON.parse(cursor))
  } catch (err) {
    throw new SyncFailure('bug', `unreadable reconciliation cursor "${cursor.slice(0, 80)}"`, { connectorId }, { cause: err })
  }
}

function sinceDomain(field: string, since: string | undefined): Domain {
  if (since === undefined) return []
  const ms = Date.parse(since)
  if (Number.isNaN(ms)) throw new SyncFailure('bug', `"${since}" is not an ISO 8601 time`, { connectorId })
  return [[field, '>=', datetime(datetimeText(ms))]]
}

/** The sales created or written since `since` (all when unset), a page at a time. */
export async function listSalesSince(ctx: Context, query: { since?: string; cursor: string | null; limit: number }): Promise<RemoteSalesOrderPage> {
  const m = models(ctx)
  const limit = Math.max(1, query.limit)
  const cursor: SaleCursor = query.cursor === null ? { v: 1, phase: 'unwritten', id: 0 } : parseCursor(saleCursorSchema, query.cursor)
  if (cursor.phase === 'unwritten') {
    const sales = await m.searchRead<SaleRow>('sale.sale', [['write_date', '=', null], ['id', '>', cursor.id], ...sinceDomain('create_date', query.since)], saleFields, { limit, order: [['id', 'ASC']] })
    const next: SaleCursor = sales.length === limit ? { v: 1, phase: 'unwritten', id: sales.at(-1)!.id } : { v: 1, phase: 'written', at: null, id: 0 }
    return { orders: await toRemoteSalesOrders(m, sales), nextCursor: JSON.stringify(next) }
  }
  const after = cursor.at === null ? [] : [keysetAfter({ at: cursor.at, id: cursor.id })]
  const sales = await m.searchRead<SaleRow>('sale.sale', [['write_date', '!=', null], ...sinceDomain('write_date', query.since), ...after], saleFields, { limit, order: keysetOrder })
  const last = sales.at(-1)
  const next = sales.length === limit && last?.write_date ? JSON.stringify({ v: 1, phase: 'written', at: last.write_date, id: last.id } satisfies SaleCursor) : null
  return { orders: await toRemoteSalesOrders(m, sales), nextCursor: next }
}

// ---------------------------------------------------------------------------------------------
// Invoices

interface InvoiceRow extends Row {
  state: 'posted' | 'paid'
  number: string | null
  write_date: string | null
  total_amount: string
  amount_to_pay: string | null
  'currency.': { id: number; code: string } | null
}

const invoiceFields = ['state', 'number', 'write_date', 'total_amount', 'amount_to_pay', 'currency.code'] as const
/** Customer invoices that count: a draft has no number yet, and a cancelled one was never owed. */
const bookedInvoices: Domain = [
  ['type', '=', 'out'],
  ['state', 'in', ['posted', 'paid']],
]

interface SaleInvoicesRow extends Row {
  reference: string | null
  invoices: number[]
}

function toRemoteInvoice(invoice: InvoiceRow, sale: SaleInvoicesRow | undefined): RemoteInvoice | undefined {
  const currency = invoice['currency.']?.code
  if (!invoice.number || !currency) return undefined
  const amount = trimDecimal(invoice.total_amount, 2)
  // Tryton answers amount_to_pay only for a posted invoice; a paid one has nothing left.
  const paid = invoice.state === 'paid' ? amount : trimDecimal(addDecimals(invoice.total_amount, negateDecimal(invoice.amount_to_pay ?? '0')), 2)
  return {
    externalId: String(invoice.id),
    number: invoice.number,
    ...(sale?.reference ? { reference: sale.reference } : {}),
    ...(sale ? { salesOrderId: String(sale.id) } : {}),
    currency,
    amount,
    paid,
    status: invoice.state,
  }
}

/** One entry per invoice and sale it bills (an invoice grouping several sales shows under each), or the invoice alone. */
function invoicesOfSales(invoices: readonly InvoiceRow[], sales: readonly SaleInvoicesRow[]): RemoteInvoice[] {
  const salesOf = new Map<number, SaleInvoicesRow[]>()
  for (const sale of sales) for (const id of sale.invoices) salesOf.set(id, [...(salesOf.get(id) ?? []), sale])
  return invoices.flatMap((invoice) => {
    const owners = salesOf.get(invoice.id) ?? []
    return (owners.length ? owners : [undefined]).flatMap((sale) => toRemoteInvoice(invoice, sale) ?? [])
  })
}

const invoiceCursorSchema = z.object({ v: z.literal(1), at: z.string(), id: z.number().int().min(0) })

export async function listInvoices(ctx: Context, query: InvoiceQuery): Promise<{ invoices: RemoteInvoice[]; nextCursor: string | null }> {
  const m = models(ctx)
  if ('orderRefs' in query) {
    const invoices: RemoteInvoice[] = []
    for (const batch of chunks([...new Set(query.orderRefs)], referenceBatchSize)) {
      const sales = await m.searchRead<SaleInvoicesRow>('sale.sale', [['reference', 'in', batch]], ['reference', 'invoices'])
      const ids = [...new Set(sales.flatMap((s) => s.invoices))]
      const rows: InvoiceRow[] = []
      for (const idBatch of chunks(ids, idBatchSize)) rows.push(...(await m.searchRead<InvoiceRow>('account.invoice', [['id', 'in', idBatch], ...bookedInvoices], invoiceFields)))
      invoices.push(...invoicesOfSales(rows, sales))
    }
    return { invoices, nextCursor: null }
  }
  const limit = Math.max(1, query.limit)
  const after = query.cursor === null ? [] : [keysetAfter(parseCursor(invoiceCursorSchema, query.cursor))]
  // A posted invoice has always been written (posting writes it), so write_date alone orders them all.
  const rows = await m.searchRead<InvoiceRow>('account.invoice', [...bookedInvoices, ...sinceDomain('write_date', query.since), ...after], invoiceFields, { limit, order: keysetOrder })
  const sales = rows.length ? await m.searchRead<SaleInvoicesRow>('sale.sale', [['invoices', 'in', rows.map((r) => r.id)]], ['reference', 'invoices']) : []
  const last = rows.at(-1)
  const nextCursor = rows.length === limit && last?.write_date ? JSON.stringify({ v: 1, at: last.write_date, id: last.id }) : null
  return { invoices: invoicesOfSales(rows, sales), nextCursor }
}

// ---------------------------------------------------------------------------------------------
// Reservations: Tryton has none of its own. What holds stock for an order is its confirmed sale's
// moves, so that is what reconciliation compares (inventory.ts says why).

interface SaleMovesRow extends Row {
  state: SaleRow['state']
  reference: string | null
}

interface LineMovesRow extends Row {
  sale: number
  type: string
  quantity: number | null
  moves: number[]
  'product.': { id: number; code: string | null } | null
}

interface MoveRow extends Row {
  state: string
  quantity: number
  'product.': { id: number; code: string | null } | null
}

/** Quantities per SKU, as reservation lines (requested = reserved: Tryton holds what the sale says). */
function reservationLines(items: readonly { quantity: number | null; 'product.': { code: string | null } | null }[]): RemoteReservation['lines'] {
  const bySku = new Map<string, string>()
  for (const item of items) {
    const sku = item['product.']?.code
    if (sku) bySku.set(sku, addDecimals(bySku.get(sku) ?? '0', floatToDecimal(item.quantity ?? 0)))
  }
  return [...bySku].map(([sku, quantity], i) => ({ lineId: String(i + 1), sku, requested: quantity, reserved: quantity }))
}

/**
 * The "reservation" of each reference, as `findReservation` names it (`atp-<reference>`). From the
 * newest sale under it that was confirmed: `active` while moves of it are still to ship (their
 * quantities), `shipped` once they are all done, `released` when they are cancelled. Before any is
 * confirmed, the reservation is the availability check `reserve` answered: `active`, with the
 * quantities of the sale in draft or quotation (Tryton holds nothing yet, and the ERP link says why
 * the sale is not confirmed). A reference whose sales are all cancelled has a released one; a
 * reference without any sale has none.
 */
export async function findReservationsByReferences(ctx: Context, references: readonly string[]): Promise<RemoteReservation[]> {
  const m = models(ctx)
  const found: RemoteReservation[] = []
  for (const batch of chunks([...new Set(references)], referenceBatchSize)) {
    const sales = await m.searchRead<SaleMovesRow>('sale.sale', [['reference', 'in', batch]], ['state', 'reference'], { order: [['id', 'DESC']] })
    const confirmed = new Map<string, SaleMovesRow>()
    const pending = new Map<string, SaleMovesRow>()
    const cancelled = new Set<string>()
    for (const sale of sales) {
      if (!sale.reference) continue
      if (sale.state === 'cancelled') cancelled.add(sale.reference)
      else if (sale.state === 'draft' || sale.state === 'quotation') {
        if (!pending.has(sale.reference)) pending.set(sale.reference, sale)
      } else if (!confirmed.has(sale.reference)) confirmed.set(sale.reference, sale)
    }
    const saleIds = [...confirmed.values(), ...pending.values()].map((sale) => sale.id)
    const lines = saleIds.length ? await m.searchRead<LineMovesRow>('sale.line', [['sale', 'in', saleIds], ['type', '=', 'line']], ['sale', 'type', 'quantity', 'moves', 'product.code']) : []
    const confirmedIds = new Set([...confirmed.values()].map((sale) => sale.id))
    const moveIds = lines.filter((line) => confirmedIds.has(line.sale)).flatMap((line) => line.moves ?? [])
    const moves = new Map((await readAll<MoveRow>(m, 'stock.move', moveIds, ['state', 'quantity', 'product.code'])).map((move) => [move.id, move]))
    const linesOf = (saleId: number) => lines.filter((line) => line.sale === saleId)
    for (const reference of batch) {
      const externalId = reservationIdOf(reference)
      const sale = confirmed.get(reference)
      if (sale) {
        const all = linesOf(sale.id).flatMap((line) => (line.moves ?? []).flatMap((id) => moves.get(id) ?? []))
        const open = all.filter((move) => move.state !== 'done' && move.state !== 'cancelled')
        const done = all.filter((move) => move.state === 'done')
        if (open.length) found.push({ externalId, reference, status: 'active', lines: reservationLines(open) })
        else if (done.length) found.push({ externalId, reference, status: 'shipped', lines: reservationLines(done) })
        else found.push({ externalId, reference, status: 'released', lines: [] })
        continue
      }
      const quoted = pending.get(reference)
      if (quoted) found.push({ externalId, reference, status: 'active', lines: reservationLines(linesOf(quoted.id)) })
      else if (cancelled.has(reference)) found.push({ externalId, reference, status: 'released', lines: [] })
    }
  }
  return found
}

// ---------------------------------------------------------------------------------------------

type Reads = Required<Pick<SalesOrderCapability<TrytonSettings, TrytonSecrets>, 'fetch' | 'findManyByReference' | 'listSince'>>

export const trytonSalesOrderReads: Reads = {
  fetch: fetchSale,
  findManyByReference: findSalesByReferences,
  listSince: listSalesSince,
}

export const trytonInvoices: InvoiceCapability<TrytonSettings, TrytonSecrets> = { list: listInvoices }
