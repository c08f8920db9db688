/**
 * What reconciliation reads from Kingdee, all through ExecuteBillQuery: sales orders one at a time
 * (by bill number), by many of our references at once (`in (…)` filters of `batchSize` values), or
 * a page at a time in modify-date order (keyset paging, to find orphans); and receivables
 * (AR_receivable, 应收单) as invoices, linked to our orders through the sales order number they
 * carry (`reconciliation.invoices.salesOrderField`). Reads only; amounts stay decimal strings.
 *
 * Keyset, not StartRow: an order modified while the pages are read moves to the end of the
 * modify-date order, and every later row would shift under a StartRow page. The cursor is the last
 * row's `(modify date, FID)` as Kingdee answered it, and the next page starts strictly after it.
 */
import { SyncFailure, isDecimalString, trimDecimal, type ConnectorContext, type InvoiceCapability, type InvoiceQuery, type RemoteInvoice, type RemoteSalesOrder, type RemoteSalesOrderPage, type SalesOrderCapability } from '../../src/connector-kit/index.ts'
import { kingdeeClient, type KingdeeClient, type QueryRow } from './client.ts'
import { kingdeeConnectorId } from './errors.ts'
import { allOf, cell, chunks, filterValue, inFilter } from './query.ts'
import type { KingdeeSecrets, KingdeeSettings } from './settings.ts'
import { isoToKingdeeTime, kingdeeTimeToIso } from './time.ts'

type Ctx = ConnectorContext<KingdeeSettings, KingdeeSecrets>

/** A receivable as an invoice, with its due date (the kit's RemoteInvoice has no field for it). */
export interface KingdeeInvoice extends RemoteInvoice {
  /** 到期日, `yyyy-MM-dd` in the account set's calendar. */
  dueDate?: string
}

function config(message: string): SyncFailure {
  return new SyncFailure('config', message, { connectorId: kingdeeConnectorId })
}

function amountOf(row: QueryRow, index: number, field: string): string {
  const value = cell(row, index).trim()
  if (value === '') return '0.00'
  if (!isDecimalString(value)) throw config(`Kingdee field ${field} is not a decimal amount`)
  return trimDecimal(value, 2)
}

function quantityOf(row: QueryRow, index: number, field: string): string {
  const value = cell(row, index).trim()
  if (!isDecimalString(value)) throw config(`Kingdee field ${field} is not a decimal quantity`)
  return trimDecimal(value, 0)
}

function currencyOf(settings: KingdeeSettings, number: string): string | undefined {
  if (number === '') return undefined
  const iso = settings.reconciliation.currencyNumbers[number] ?? (/^[A-Z]{3}$/.test(number) ? number : undefined)
  if (!iso) throw config(`Kingdee currency ${number} has no ISO code in reconciliation.currencyNumbers`)
  return iso
}

// ---------------------------------------------------------------------------------------------
// Keyset cursors: `${modify date as Kingdee answered it}|${FID}`.

function encodeCursor(modified: string, id: string): string {
  // K3 Cloud keeps SQL Server datetimes (milliseconds); a longer fraction would not convert back in a filter.
  return `${modified.replace(/(\.\d{3})\d+$/, '$1')}|${id}`
}

function decodeCursor(cursor: string): { modified: string; id: string } {
  const at = cursor.lastIndexOf('|')
  const modified = cursor.slice(0, at)
  const id = cursor.slice(at + 1)
  if (at <= 0 || !/^\d+$/.test(id) || !/^\d{4}-\d{2}-\d{2}[T ][\d:.]+$/.test(modified)) {
    throw new SyncFailure('bug', 'the Kingdee paging cursor is not one this connector wrote', { connectorId: kingdeeConnectorId })
  }
  return { modified, id }
}

/** After `(modified, id)` in `modified ASC, FID ASC` order. */
function afterCursor(modifiedField: string, cursor: string | null): string | undefined {
  if (cursor === null) return undefined
  const { modified, id } = decodeCursor(cursor)
  return `${modifiedField} > ${filterValue(modified)} or (${modifiedField} = ${filterValue(modified)} and FID > ${id})`
}

function sinceFilter(ctx: Ctx, modifiedField: string, since: string | undefined): string | undefined {
  if (since === undefined) return undefined
  let wall: string
  try {
    wall = isoToKingdeeTime(since, ctx.settings.reconciliation.timezone)
  } catch (err) {
    throw new SyncFailure('bug', 'listing from a time that is not an ISO 8601 instant', { connectorId: kingdeeConnectorId }, { cause: err })
  }
  return `${modifiedField} >= ${filterValue(wall)}`
}

/** One keyset page of `(FID, modify date)` rows. */
async function keysetPage(client: KingdeeClient, formId: string, modifiedField: string, filter: string, limit: number): Promise<{ ids: string[]; nextCursor: string | null }> {
  const rows = await client.query(formId, ['FID', modifiedField], filter, { pageSize: limit, maxRows: limit, orderString: `${modifiedField} ASC, FID ASC` })
  const ids: string[] = []
  for (const row of rows) {
    const id = cell(row, 0)
    if (!/^\d+$/.test(id)) throw config(`Kingdee answered ${formId} rows without a numeric FID`)
    if (cell(row, 1) === '') throw config(`Kingdee ${formId} ${id} has no ${modifiedField}, so it cannot be listed in order`)
    if (!ids.includes(id)) ids.push(id)
  }
  const last = rows.at(-1)
  return { ids, nextCursor: rows.length >= limit && last ? encodeCursor(cell(last, 1), cell(last, 0)) : null }
}

// ---------------------------------------------------------------------------------------------
// Sales orders

const orderHeader = ['FID', 'FBillNo', 'FDocumentStatus', 'FCloseStatus', 'FCancelStatus', 'FManualClose'] as const

function orderFields(settings: KingdeeSettings): string[] {
  const f = settings.reconciliation.salesOrders
  return [...orderHeader, settings.salesOrders.referenceField, f.totalField, f.currencyField, f.modifiedField, f.skuField, f.quantityField]
}

const documentStatusWords: Record<string, string> = { Z: '暂存', A: '创建', B: '审核中', C: '已审核', D: '重新审核' }

/** Kingdee's own words for the order's state, as people see them in the list (e.g. "已审核, 已关闭"). */
function remoteStatusOf(documentStatus: string, closed: boolean, voided: boolean): string {
  return [documentStatusWords[documentStatus] ?? documentStatus, ...(closed ? ['已关闭'] : []), ...(voided ? ['已作废'] : [])].join(', ')
}

// Where each field is in a row of orderFields().
const at = { reference: 6, total: 7, currency: 8, modified: 9, sku: 10, quantity: 11 } as const

/**
 * Rows of a query with header and entry fields (one row per line) → one order each (with its FID),
 * in the order of their first row. Voided (作废) orders are cancelled; so are orders closed by hand
 * (整单关闭) when this connection cancels by closing (`salesOrders.cancel.mode: operation`). An
 * order Kingdee closed itself, because everything was delivered, stays open.
 */
function toOrders(settings: KingdeeSettings, rows: readonly QueryRow[]): { id: string; order: RemoteSalesOrder }[] {
  const f = settings.reconciliation.salesOrders
  const orders = new Map<string, RemoteSalesOrder & { lines: { sku: string; quantity: string }[] }>()
  for (const row of rows) {
    const id = cell(row, 0)
    let order = orders.get(id)
    if (!order) {
      const closed = cell(row, 3) === 'B'
      const voided = cell(row, 4) === 'B'
      const closedByHand = closed && cell(row, 5).toLowerCase() === 'true'
      const reference = cell(row, at.reference)
      const currency = currencyOf(settings, cell(row, at.currency))
      const updatedAt = kingdeeTimeToIso(cell(row, at.modified), settings.reconciliation.timezone)
      order = {
        externalId: cell(row, 1),
        ...(reference ? { reference } : {}),
        status: voided || (closedByHand && settings.salesOrders.cancel.mode === 'operation') ? 'cancelled' : 'open',
        remoteStatus: remoteStatusOf(cell(row, 2), closed, voided),
        ...(currency ? { currency } : {}),
        total: amountOf(row, at.total, f.totalField),
        lines: [],
        ...(updatedAt ? { updatedAt } : {}),
      }
      orders.set(id, order)
    }
    const sku = cell(row, at.sku)
    if (sku !== '') order.lines.push({ sku, quantity: quantityOf(row, at.quantity, f.quantityField) })
  }
  return [...orders].map(([id, order]) => ({ id, order }))
}

/** The orders matching `filter`, with their lines, in FID order. */
async function readOrders(ctx: Ctx, client: KingdeeClient, filter: string): Promise<{ id: string; order: RemoteSalesOrder }[]> {
  const rows = await client.query(ctx.settings.salesOrders.formId, orderFields(ctx.settings), filter, { orderString: 'FID ASC' })
  return toOrders(ctx.settings, rows)
}

async function fetchSalesOrder(ctx: Ctx, externalId: string): Promise<RemoteSalesOrder | undefined> {
  const [found] = await readOrders(ctx, kingdeeClient(ctx), `FBillNo = ${filterValue(externalId)}`)
  return found?.order
}

async function findManyByReference(ctx: Ctx, references: readonly string[]): Promise<RemoteSalesOrder[]> {
  const client = kingdeeClient(ctx)
  const field = ctx.settings.salesOrders.referenceField
  const found: RemoteSalesOrder[] = []
  for (const batch of chunks([...new Set(references)], ctx.settings.reconciliation.batchSize)) {
    found.push(...(await readOrders(ctx, client, inFilter(field, batch))).map((o) => o.order))
  }
  return found
}

async function listSince(ctx: Ctx, query: { since?: string; cursor: string | null; limit: number }): Promise<RemoteSalesOrderPage> {
  const client = kingdeeClient(ctx)
  const modified = ctx.settings.reconciliation.salesOrders.modifiedField
  const filter = allOf(sinceFilter(ctx, modified, query.since), afterCursor(modified, query.cursor))
  const page = await keysetPage(client, ctx.settings.salesOrders.formId, modified, filter, Math.max(1, query.limit))
  if (!page.ids.length) return { orders: [], nextCursor: null }
  // The page's orders with their lines, back in the keyset's order.
  const position = new Map(page.ids.map((id, i) => [id, i]))
  const orders = (await readOrders(ctx, client, `FID in (${page.ids.join(',')})`)).sort((a, b) => (position.get(a.id) ?? 0) - (position.get(b.id) ?? 0))
  return { orders: orders.map((o) => o.order), nextCursor: page.nextCursor }
}

export const kingdeeSalesOrderReads: Required<Pick<SalesOrderCapability<KingdeeSettings, KingdeeSecrets>, 'fetch' | 'findManyByReference' | 'listSince'>> = {
  fetch: fetchSalesOrder,
  findManyByReference,
  listSince,
}

// ---------------------------------------------------------------------------------------------
// Invoices: receivables linked to sales orders

function receivableFields(settings: KingdeeSettings): string[] {
  const f = settings.reconciliation.invoices
  return ['FID', 'FBillNo', 'FDocumentStatus', f.amountField, f.paidField, f.dueDateField, f.currencyField, f.writtenOffField, f.salesOrderField]
}

const writtenOffStatus: Record<string, string> = { A: 'unpaid', B: 'partially_paid', C: 'paid' }

/**
 * Rows (one per receivable line) → one invoice per receivable and sales order it names. A
 * receivable that covers several sales orders is reported under each, with its whole amount.
 */
function toInvoices(settings: KingdeeSettings, rows: readonly QueryRow[], referenceOf: ReadonlyMap<string, string>): KingdeeInvoice[] {
  const f = settings.reconciliation.invoices
  const invoices = new Map<string, KingdeeInvoice>()
  for (const row of rows) {
    const id = cell(row, 0)
    const salesOrderId = cell(row, 8)
    const key = `${id}\u0000${salesOrderId}`
    if (invoices.has(key)) continue
    const currency = currencyOf(settings, cell(row, 6))
    if (!currency) throw config(`Kingdee receivable ${cell(row, 1)} has no currency in ${f.currencyField}`)
    const written = cell(row, 7)
    const dueDate = /^\d{4}-\d{2}-\d{2}/.exec(cell(row, 5))?.[0]
    const reference = salesOrderId ? referenceOf.get(salesOrderId) : undefined
    invoices.set(key, {
      externalId: id,
      number: cell(row, 1),
      ...(reference ? { reference } : {}),
      ...(salesOrderId ? { salesOrderId } : {}),
      currency,
      amount: amountOf(row, 3, f.amountField),
      paid: amountOf(row, 4, f.paidField),
      status: cell(row, 2) !== 'C' ? 'draft' : (writtenOffStatus[written] ?? written),
      ...(dueDate ? { dueDate } : {}),
    })
  }
  return [...invoices.values()]
}

/** Sales order number → our reference, for the orders with these numbers. */
async function referencesOfOrders(ctx: Ctx, client: KingdeeClient, billNos: readonly string[]): Promise<Map<string, string>> {
  const map = new Map<string, string>()
  for (const batch of chunks([...new Set(billNos)].filter(Boolean), ctx.settings.reconciliation.batchSize)) {
    const rows = await client.query(ctx.settings.salesOrders.formId, ['FBillNo', ctx.settings.salesOrders.referenceField], inFilter('FBillNo', batch))
    for (const row of rows) if (cell(row, 1)) map.set(cell(row, 0), cell(row, 1))
  }
  return map
}

async function listInvoices(ctx: Ctx, query: InvoiceQuery): Promise<{ invoices: KingdeeInvoice[]; nextCursor: string | null }> {
  const client = kingdeeClient(ctx)
  const { settings } = ctx
  const f = settings.reconciliation.invoices
  const batchSize = settings.reconciliation.batchSize

  if ('orderRefs' in query) {
    // Our references → sales order numbers, then the receivables that name those numbers.
    const referenceOf = new Map<string, string>()
    for (const batch of chunks([...new Set(query.orderRefs)], batchSize)) {
      const rows = await client.query(settings.salesOrders.formId, ['FBillNo', settings.salesOrders.referenceField], inFilter(settings.salesOrders.referenceField, batch))
      for (const row of rows) referenceOf.set(cell(row, 0), cell(row, 1))
    }
    const rows: QueryRow[] = []
    for (const batch of chunks([...referenceOf.keys()], batchSize)) {
      rows.push(...(await client.query(f.formId, receivableFields(settings), allOf(inFilter(f.salesOrderField, batch), f.filter), { orderString: 'FID ASC' })))
    }
    return { invoices: toInvoices(settings, rows, referenceOf), nextCursor: null }
  }

  const page = await keysetPage(client, f.formId, f.modifiedField, allOf(f.filter, sinceFilter(ctx, f.modifiedField, query.since), afterCursor(f.modifiedField, query.cursor)), Math.max(1, query.limit))
  if (!page.ids.length) return { invoices: [], nextCursor: null }
  const rows = await client.query(f.formId, receivableFields(settings), `FID in (${page.ids.join(',')})`)
  const position = new Map(page.ids.map((id, i) => [id, i]))
  rows.sort((a, b) => (position.get(cell(a, 0)) ?? 0) - (position.get(cell(b, 0)) ?? 0))
  const referenceOf = await referencesOfOrders(ctx, client, rows.map((row) => cell(row, 8)))
  return { invoices: toInvoices(settings, rows, referenceOf), nextCursor: page.nextCursor }
}

export const kingdeeInvoices: InvoiceCapability<KingdeeSettings, KingdeeSecrets> = { list: listInvoices }
