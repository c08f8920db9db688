/**
 * Kingdee K3 Cloud (金蝶云星空) connector, role `erp`: creates, updates and cancels SAL_SaleOrder
 * sales orders through the WebAPI (Save, Submit, Audit, UnAudit, Delete, ExcuteOperation), finds
 * them by our reference with ExecuteBillQuery, reads customer credit from configured queries, and
 * gives reconciliation its reads (sales orders, and receivables as invoices: reconciliation.ts).
 *
 * Save has no idempotency key, so our reference is stored in a configured header field and the
 * connector looks the order up by it before every create. It never retries by itself: the queue
 * does, and `classify()` (errors.ts) says how. `client.ts` is the only file that knows URLs.
 */
import { z } from 'zod'
import { SyncFailure, addDecimals, compareDecimals, defineConnector, isDecimalString, subtractDecimals, trimDecimal, type CustomerCredit, type Operation, type OperationContext, type RemoteRecord, type TargetField } from '../../src/connector-kit/index.ts'
import { kingdeeClient, type KingdeeClient, type KingdeeContext, type QueryRow } from './client.ts'
import { classifyKingdeeError, kingdeeConnectorId } from './errors.ts'
import { cell, filterValue } from './query.ts'
import { kingdeeInvoices, kingdeeSalesOrderReads } from './reconciliation.ts'
import { secretsSchema, settingsSchema, type KingdeeSecrets, type KingdeeSettings } from './settings.ts'

export { kingdeeConnectorId } from './errors.ts'
export { filterValue } from './query.ts'
export type { KingdeeInvoice } from './reconciliation.ts'

type SalesOrderModel = Record<string, unknown>

// ---------------------------------------------------------------------------------------------
// What the outbound mapping must produce: the Save `Model` of a sales order.

const decimalText = z.string().regex(/^-?\d+(\.\d+)?$/, 'must be a decimal string such as "113.00"')
const numberRef = z.looseObject({ FNumber: z.string().min(1, 'must not be empty') })
const billTypeRef = z.union([z.looseObject({ FNUMBER: z.string().min(1) }), numberRef])

/** Every JSON number in the document must be a whole number: a fractional one may already have lost a cent. */
function floatPaths(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? [] : [path]
  if (Array.isArray(value)) return value.flatMap((item, index) => floatPaths(item, [...path, index]))
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => floatPaths(item, [...path, key]))
  return []
}

export const salesOrderModelSchema = z
  .looseObject({
    FID: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]).optional(),
    FBillTypeID: billTypeRef.optional(),
    FDate: z.string().regex(/^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?$/, 'must be a date such as "2024-05-20 08:00:00"').optional(),
    FSaleOrgId: numberRef,
    FCustId: numberRef,
    FSaleOrderFinance: z.looseObject({ FSettleCurrId: numberRef }),
    FSaleOrderEntry: z
      .array(
        z.looseObject({
          FMaterialId: numberRef,
          FQty: decimalText.refine((q) => !q.startsWith('-') && !/^0+(\.0+)?$/.test(q), 'must be positive'),
          FPrice: decimalText.optional(),
          FTaxPrice: decimalText.optional(),
        }),
      )
      .min(1, 'a sales order needs at least one line'),
  })
  .superRefine((model, ctx) => {
    for (const path of floatPaths(model)) {
      ctx.addIssue({ code: 'custom', path, message: 'is a binary float; send amounts and quantities as decimal strings' })
    }
  })

// ---------------------------------------------------------------------------------------------

/** A sales order as ExecuteBillQuery shows it. */
interface OrderRow {
  id: string
  billNo: string
  /** Z 暂存, A 创建, B 审核中, C 已审核, D 重新审核. */
  documentStatus: string
  /** A open, B closed. */
  closeStatus: string
}

const orderFields = ['FID', 'FBillNo', 'FDocumentStatus', 'FCloseStatus'] as const

async function queryOrders(client: KingdeeClient, settings: KingdeeSettings, filter: string): Promise<OrderRow[]> {
  const rows = await client.query(settings.salesOrders.formId, orderFields, filter)
  // A query that names entry fields answers one row per line; header fields only should not, but dedupe.
  const byId = new Map<string, OrderRow>()
  for (const row of rows) {
    const order = { id: cell(row, 0), billNo: cell(row, 1), documentStatus: cell(row, 2), closeStatus: cell(row, 3) }
    if (order.id && !byId.has(order.id)) byId.set(order.id, order)
  }
  return [...byId.values()]
}

async function orderByReference(ctx: KingdeeContext, client: KingdeeClient, reference: string): Promise<OrderRow | undefined> {
  const found = await queryOrders(client, ctx.settings, `${ctx.settings.salesOrders.referenceField} = ${filterValue(reference)}`)
  if (found.length > 1) {
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: kingdeeConnectorId, reference, matches: found.length }, 'Kingdee holds several sales orders under one reference; using the first')
  }
  return found[0]
}

async function orderByNumber(ctx: KingdeeContext, client: KingdeeClient, billNo: string): Promise<OrderRow | undefined> {
  const [order] = await queryOrders(client, ctx.settings, `FBillNo = ${filterValue(billNo)}`)
  return order
}

async function findByReference(ctx: KingdeeContext, reference: string): Promise<RemoteRecord | undefined> {
  const order = await orderByReference(ctx, kingdeeClient(ctx), reference)
  return order ? { externalId: order.billNo } : undefined
}

const baseDataKeys = new Set(['FNumber', 'FNUMBER', 'FName', 'FNAME', 'FCode', 'FUserID', 'FUSERID', 'FStaffNumber', 'FID', 'FENTRYID'])

/**
 * NeedUpDateFields for an update: the field keys the mapped document writes. A base-data reference
 * (`{FNumber}`) counts as its field; a sub-header or entry list counts as itself and its fields.
 */
export function fieldKeysOf(model: Record<string, unknown>): string[] {
  const keys = new Set<string>()
  const visit = (node: Record<string, unknown>) => {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'FID' || key === 'FEntryID' || key === 'FEntryId' || key === 'FENTRYID') continue
      keys.add(key)
      if (Array.isArray(value)) {
        for (const item of value) if (item !== null && typeof item === 'object' && !Array.isArray(item)) visit(item as Record<string, unknown>)
      } else if (value !== null && typeof value === 'object') {
        const inner = Object.keys(value)
        if (!inner.every((k) => baseDataKeys.has(k))) visit(value as Record<string, unknown>)
      }
    }
  }
  visit(model)
  return [...keys]
}

/** Our reference goes into the configured field, whatever the mapping wrote there. */
function withReference(ctx: OperationContext<KingdeeSettings, KingdeeSecrets>, input: SalesOrderModel): SalesOrderModel {
  const field = ctx.settings.salesOrders.referenceField
  const given = input[field]
  if (given !== undefined && given !== '' && given !== ctx.reference) {
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: kingdeeConnectorId, reference: ctx.reference, field }, 'the sales order document carries another value in the reference field; our reference replaces it')
  }
  return { ...input, [field]: ctx.reference }
}

/** Submit and Audit as configured, after a Save that did not submit and audit by itself. */
async function finishSave(ctx: KingdeeContext, client: KingdeeClient, id: string): Promise<void> {
  const so = ctx.settings.salesOrders
  if (so.afterSave === 'none' || so.afterSave === 'auto-submit-audit') return
  await client.submit(so.formId, [id])
  if (so.afterSave === 'submit-audit') await client.audit(so.formId, [id], { interactionFlags: so.interactionFlags, ignoreInteraction: so.ignoreInteraction })
}

function saveOptions(settings: KingdeeSettings, needUpdateFields: readonly string[]) {
  const so = settings.salesOrders
  return {
    needUpdateFields,
    isDeleteEntry: true,
    verifyBaseData: so.verifyBaseData,
    interactionFlags: so.interactionFlags,
    ignoreInteraction: so.ignoreInteraction,
    autoSubmitAndAudit: so.afterSave === 'auto-submit-audit',
  }
}

/** Takes an audited or submitted order back to an editable state. */
async function reopen(ctx: KingdeeContext, client: KingdeeClient, order: OrderRow): Promise<void> {
  const so = ctx.settings.salesOrders
  if (order.documentStatus === 'C') await client.unAudit(so.formId, [order.id], { interactionFlags: so.interactionFlags, ignoreInteraction: so.ignoreInteraction })
  else if (order.documentStatus === 'B') await client.cancelAssign(so.formId, [order.id])
}

/**
 * Replaces the order's fields with the document (Save with FID and NeedUpDateFields; entries are
 * replaced, IsDeleteEntry), then submits and audits again. Safe to repeat.
 */
async function update(ctx: KingdeeContext, client: KingdeeClient, order: OrderRow, model: SalesOrderModel): Promise<void> {
  const so = ctx.settings.salesOrders
  await reopen(ctx, client, order)
  const document: SalesOrderModel = { ...model, FID: Number(order.id) }
  const fields = so.updateFields ?? fieldKeysOf(model)
  const saved = await client.save(so.formId, document, saveOptions(ctx.settings, fields))
  await finishSave(ctx, client, saved.id)
}

async function runUpsert(ctx: OperationContext<KingdeeSettings, KingdeeSecrets>, input: SalesOrderModel, existing: RemoteRecord | undefined): Promise<RemoteRecord> {
  const client = kingdeeClient(ctx)
  const model = withReference(ctx, input)
  if (existing) {
    const order = await orderByNumber(ctx, client, existing.externalId)
    if (!order) throw new SyncFailure('not_found', `sales order ${existing.externalId} is no longer in Kingdee`, { connectorId: kingdeeConnectorId })
    await update(ctx, client, order, model)
    return { externalId: existing.externalId }
  }
  // Save has no idempotency key, and a Save may have succeeded before a later step failed: always
  // look for the order by our reference before creating it.
  const found = await orderByReference(ctx, client, ctx.reference)
  if (found) {
    await update(ctx, client, found, model)
    return { externalId: found.billNo }
  }
  const saved = await client.save(ctx.settings.salesOrders.formId, { ...model, FID: 0 }, saveOptions(ctx.settings, []))
  await finishSave(ctx, client, saved.id)
  return { externalId: saved.number }
}

export const upsertSalesOrder: Operation<SalesOrderModel, RemoteRecord, KingdeeSettings, KingdeeSecrets> = {
  inputSchema: salesOrderModelSchema,
  idempotency: 'lookup-by-reference',
  run: runUpsert,
}

/** Cancels by UnAudit + Delete or by a close operation; an order already gone or closed is a success. */
async function cancelSalesOrder(ctx: OperationContext<KingdeeSettings, KingdeeSecrets>, existing: RemoteRecord): Promise<void> {
  const client = kingdeeClient(ctx)
  const so = ctx.settings.salesOrders
  const order = await orderByNumber(ctx, client, existing.externalId)
  if (!order) return
  if (so.cancel.mode === 'operation') {
    if (order.closeStatus === 'B') return
    await client.executeOperation(so.formId, so.cancel.operation, [order.id])
    return
  }
  await reopen(ctx, client, order)
  await client.delete(so.formId, [order.id])
}

// ---------------------------------------------------------------------------------------------
// Credit

function amountCell(row: QueryRow, index: number, field: string): string {
  const value = cell(row, index).trim()
  if (value === '') return '0'
  if (!isDecimalString(value)) throw new SyncFailure('config', `Kingdee field ${field} is not a decimal amount`, { connectorId: kingdeeConnectorId })
  return value
}

function currencyOf(settings: NonNullable<KingdeeSettings['credit']>, number: string): string {
  if (number === '') return settings.currency
  const iso = settings.currencyNumbers[number] ?? (/^[A-Z]{3}$/.test(number) ? number : undefined)
  if (!iso) throw new SyncFailure('config', `Kingdee currency ${number} has no ISO code in credit.currencyNumbers`, { connectorId: kingdeeConnectorId })
  return iso
}

function todayIn(timezone: string, now: Date): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(now)
}

async function getCustomerCredit(ctx: KingdeeContext, customerId: string): Promise<CustomerCredit> {
  const credit = ctx.settings.credit
  if (!credit?.limit) {
    throw new SyncFailure('config', 'this Kingdee connection has no credit.limit query configured', { connectorId: kingdeeConnectorId })
  }
  const client = kingdeeClient(ctx)
  const { limit, receivables } = credit
  const and = (filter: string | undefined) => (filter ? ` and (${filter})` : '')

  const limitRows = await client.query(limit.formId, [limit.limitField, ...(limit.currencyField ? [limit.currencyField] : [])], `${limit.customerField} = ${filterValue(customerId)}${and(limit.filter)}`)
  const [limitRow] = limitRows
  if (!limitRow) throw new SyncFailure('not_found', `customer ${customerId} has no credit limit in Kingdee (${limit.formId})`, { connectorId: kingdeeConnectorId })
  if (limitRows.length > 1) ctx.log.warn({ connectionId: ctx.connectionId, connectorId: kingdeeConnectorId, rows: limitRows.length }, 'several credit limit rows for one customer; using the first')
  const currency = currencyOf(credit, limit.currencyField ? cell(limitRow, 1) : '')

  const fields = [receivables.amountField, receivables.dueDateField, receivables.paidField ?? receivables.amountField, receivables.currencyField ?? receivables.amountField]
  const rows = await client.query(receivables.formId, fields, `${receivables.customerField} = ${filterValue(customerId)}${and(receivables.filter)}`)
  const today = todayIn(credit.timezone, new Date())
  const open: string[] = []
  let overdue = false
  for (const row of rows) {
    const amount = amountCell(row, 0, receivables.amountField)
    const paid = receivables.paidField ? amountCell(row, 2, receivables.paidField) : '0'
    const rowCurrency = receivables.currencyField ? currencyOf(credit, cell(row, 3)) : credit.currency
    if (rowCurrency !== currency) {
      throw new SyncFailure('data', `customer ${customerId} has receivables in ${rowCurrency} and a credit limit in ${currency}`, { connectorId: kingdeeConnectorId })
    }
    const remaining = subtractDecimals(amount, paid)
    open.push(remaining)
    const due = /^\d{4}-\d{2}-\d{2}/.exec(cell(row, 1))?.[0]
    if (due && due < today && compareDecimals(remaining, '0') > 0) overdue = true
  }
  // Amounts carry at least two decimals ("406.8" → "406.80").
  return { limit: trimDecimal(amountCell(limitRow, 0, limit.limitField), 2), outstanding: trimDecimal(addDecimals(open), 2), currency, overdue }
}

// ---------------------------------------------------------------------------------------------

/** The Save Model fields the mapping editor offers: those the schema checks, and common optional ones. */
function salesOrderFields(settings: KingdeeSettings): TargetField[] {
  const reference = settings.salesOrders.referenceField
  const field = (path: string, type: string, required: boolean, description?: string): TargetField => ({ path, type, required, ...(description ? { description } : {}) })
  const fields: TargetField[] = [
    field('FID', 'integer', false, '0 for a new order; the connector sets it'),
    field('FBillTypeID.FNUMBER', 'string', false, '单据类型, e.g. XSDD01_SYS (standard sales order)'),
    field('FDate', 'string', false, '日期, "yyyy-MM-dd HH:mm:ss" in the account set\'s time zone'),
    field('FSaleOrgId.FNumber', 'string', true, '销售组织 number'),
    field('FCustId.FNumber', 'string', true, '客户 number'),
    field('FSaleDeptId.FNumber', 'string', false, '销售部门 number'),
    field('FSalerId.FNumber', 'string', false, '销售员 number'),
    field('FNote', 'string', false, '备注'),
    field('FSaleOrderFinance', 'object', true, '财务信息'),
    field('FSaleOrderFinance.FSettleCurrId.FNumber', 'string', true, '结算币别 number, e.g. PRE001 (CNY)'),
    field('FSaleOrderFinance.FExchangeTypeId.FNumber', 'string', false, '汇率类型, e.g. HLTX01_SYS'),
    field('FSaleOrderFinance.FIsIncludedTax', 'string', false, '"true" when prices include tax'),
    field('FSaleOrderFinance.FRecConditionId.FNumber', 'string', false, '收款条件 number'),
    field('FSaleOrderFinance.FSettleModeId.FNumber', 'string', false, '结算方式 number'),
    field('FSaleOrderEntry', 'array', true, '订单明细: one entry per line'),
    field('FSaleOrderEntry[].FRowType', 'string', false, 'Standard'),
    field('FSaleOrderEntry[].FMaterialId.FNumber', 'string', true, '物料编码'),
    field('FSaleOrderEntry[].FUnitID.FNumber', 'string', false, '销售单位 number'),
    field('FSaleOrderEntry[].FQty', 'decimal', true, '销售数量'),
    field('FSaleOrderEntry[].FPrice', 'decimal', false, '单价 (without tax)'),
    field('FSaleOrderEntry[].FTaxPrice', 'decimal', false, '含税单价'),
    field('FSaleOrderEntry[].FEntryTaxRate', 'decimal', false, '税率 (%)'),
    field('FSaleOrderEntry[].FIsFree', 'string', false, '"true" for a free item'),
    field('FSaleOrderEntry[].FDeliveryDate', 'string', false, '要货日期'),
    field('FSaleOrderEntry[].FEntryNote', 'string', false, '备注 of the line'),
  ]
  if (!fields.some((f) => f.path === reference)) fields.push(field(reference, 'string', false, 'our order reference; the connector writes it'))
  return fields
}

export const kingdee = defineConnector({
  manifest: {
    id: kingdeeConnectorId,
    version: '0.2.0',
    displayName: 'Kingdee K3 Cloud (金蝶云星空)',
    roles: ['erp'],
    settingsSchema,
    secretsSchema,
    // One account set serialises much of its work; a few calls at a time is what it takes well.
    limits: { concurrency: 4 },
  },
  check: async (ctx) => {
    const client = kingdeeClient(ctx)
    await client.login()
    await client.query(ctx.settings.salesOrders.formId, ['FID'], 'FID = 0', { pageSize: 1 })
  },
  classify: (err) => classifyKingdeeError(err, kingdeeConnectorId),
  salesOrders: { upsert: upsertSalesOrder, findByReference, cancel: cancelSalesOrder, ...kingdeeSalesOrderReads },
  credit: { getCustomerCredit },
  invoices: kingdeeInvoices,
  describeFields: async (ctx, target) => (target === 'salesOrder' ? salesOrderFields(ctx.settings) : []),
})
