/**
 * Stock levels to the CRM, so sales see availability when they quote: the available quantity of
 * each SKU goes to a configured field of the product records (ProductObj) whose product code
 * (`stock.skuField`) is that SKU, through /cgi/crm/v2/data/update with the connection's token.
 *
 * The v2 API updates one record per call and documents no batch update, so: products are found
 * with `IN` queries of up to 100 codes (the query's page limit), a product whose field already
 * holds the figure is not written again (a retry after a partial push writes only what is left),
 * and every call waits for room under the per-interface limit (pacer.ts). A SKU without a product
 * in the CRM is skipped. A refused update does not stop the others; the push then fails with the
 * refused SKUs named, classified by the first refusal's errorCode.
 */
import { createHash } from 'node:crypto'
import { SyncFailure, addDecimals, compareDecimals, isDecimalString, trimDecimal, type OperationContext, type StockLevel } from '../../src/connector-kit/index.ts'
import { FxiaokeApiError, dataPath, fxiaokeClient } from './client.ts'
import { classifyFxiaokeError } from './errors.ts'
import { paced } from './pacer.ts'
import type { FxRecord } from './records.ts'
import { fxiaokeConnectorId, type FxiaokeSecrets, type FxiaokeSettings } from './settings.ts'

type Context = OperationContext<FxiaokeSettings, FxiaokeSecrets>

/** The query's page limit, and so the most codes one `IN` filter asks for. */
const queryLimit = 100
/** Refusals that concern one product: the others are still written. */
const perProductKinds = new Set(['data', 'not_found', 'transient'])

/** Levels per SKU, summed over warehouses, exactly. */
function figuresBySku(levels: readonly StockLevel[]): Map<string, { available: string; onHand?: string }> {
  const grouped = new Map<string, { available: string[]; onHand: string[] }>()
  for (const level of levels) {
    for (const value of [level.available, ...(level.onHand === undefined ? [] : [level.onHand])]) {
      if (!isDecimalString(value)) throw new SyncFailure('data', `the stock level of ${level.sku} is not a decimal quantity`, { connectorId: fxiaokeConnectorId })
    }
    const entry = grouped.get(level.sku) ?? { available: [], onHand: [] }
    entry.available.push(level.available)
    if (level.onHand !== undefined) entry.onHand.push(level.onHand)
    grouped.set(level.sku, entry)
  }
  // Without trailing fractional zeros ("1.50" + "2" → "3.5").
  const sum = (values: readonly string[]) => trimDecimal(addDecimals(values), 0)
  return new Map(
    [...grouped].map(([sku, values]) => [sku, { available: sum(values.available), ...(values.onHand.length ? { onHand: sum(values.onHand) } : {}) }]),
  )
}

/** Whether a field's current value is this decimal ("12.50" and 12.5 are; null, "" and "abc" are not). */
function sameDecimal(current: unknown, wanted: string): boolean {
  const text = typeof current === 'number' ? String(current) : typeof current === 'string' ? current.trim() : undefined
  return text !== undefined && isDecimalString(text) && compareDecimals(text, wanted) === 0
}

export async function pushStockLevels(ctx: Context, levels: readonly StockLevel[]): Promise<void> {
  const stock = ctx.settings.stock
  if (!stock) throw new SyncFailure('config', 'the connection has no stock settings, so stock levels cannot be written to the CRM', { connectorId: fxiaokeConnectorId })
  const figures = figuresBySku(levels)
  if (!figures.size) return
  const client = fxiaokeClient(ctx)
  // One window per tenant and interface; the key holds no secret in clear.
  const tenant = createHash('sha256').update(`${ctx.settings.baseUrl}\u0000${ctx.secrets.appId ?? ''}\u0000${ctx.secrets.permanentCode ?? ''}`).digest('hex')
  const pace = <T>(action: 'query' | 'update', call: () => Promise<T>) => paced(`${tenant}:${dataPath(stock.objectApiName, action)}`, stock.callsPerWindow, stock.windowMs, call)

  const products: FxRecord[] = []
  const skus = [...figures.keys()]
  for (let i = 0; i < skus.length; i += queryLimit) {
    const codes = skus.slice(i, i + queryLimit)
    for (let offset = 0; ; offset += queryLimit) {
      const page = await pace('query', () =>
        client.query(stock.objectApiName, {
          offset,
          limit: queryLimit,
          filters: [{ field_name: stock.skuField, operator: 'IN', field_values: codes }],
          orders: [{ fieldName: '_id', isAsc: true }],
        }),
      )
      products.push(...page)
      if (page.length < queryLimit) break
    }
  }

  const found = new Set<string>()
  const refused: { sku: string; error: FxiaokeApiError; failure: SyncFailure }[] = []
  for (const product of products) {
    const sku = typeof product[stock.skuField] === 'string' ? (product[stock.skuField] as string) : String(product[stock.skuField] ?? '')
    const figure = figures.get(sku)
    const id = product._id
    if (!figure || typeof id !== 'string') continue
    found.add(sku)
    const fields: FxRecord = {}
    if (!sameDecimal(product[stock.availableField], figure.available)) fields[stock.availableField] = figure.available
    if (stock.onHandField !== undefined && figure.onHand !== undefined && !sameDecimal(product[stock.onHandField], figure.onHand)) fields[stock.onHandField] = figure.onHand
    if (!Object.keys(fields).length) continue
    try {
      await pace('update', () => client.update(stock.objectApiName, id, fields, { triggerWorkFlow: stock.triggerWorkFlow, triggerApprovalFlow: stock.triggerApprovalFlow }))
    } catch (err) {
      if (!(err instanceof FxiaokeApiError)) throw err
      const failure = classifyFxiaokeError(err, ctx.settings)
      if (!perProductKinds.has(failure.kind)) throw err
      refused.push({ sku, error: err, failure })
    }
  }

  const missing = skus.filter((sku) => !found.has(sku))
  if (missing.length) {
    ctx.log.info({ connectionId: ctx.connectionId, connectorId: fxiaokeConnectorId, skipped: missing.length, skus: missing.slice(0, 20) }, 'stock levels for SKUs without a product in Fxiaoke were skipped')
  }
  const [first] = refused
  if (first) {
    const named = refused.slice(0, 10).map((r) => r.sku).join(', ') + (refused.length > 10 ? ', …' : '')
    throw new SyncFailure(first.failure.kind, `Fxiaoke refused the stock figures of ${refused.length} product(s) (${named}): ${first.error.message}`, { connectorId: fxiaokeConnectorId }, { cause: first.error })
  }
}
