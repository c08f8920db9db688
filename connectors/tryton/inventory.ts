/**
 * Stock in Tryton, and what "reserving" means there.
 *
 * Tryton holds stock for a sale when the sale is confirmed: its shipment's moves lower the
 * warehouse's forecast quantity (available to promise) at once, and the on-hand quantity when the
 * shipment is done. It has no reservation record of its own. So:
 *
 * - `getStock`: per product (code = SKU) in the configured warehouse, `available` is the forecast
 *   quantity and `onHand` the quantity, both read with `context.locations = [warehouse]`.
 * - `reserve`: an availability check against the forecast, all-or-nothing unless partial is
 *   allowed. It holds nothing itself; the ERP step that follows confirms the sale, and that holds
 *   the stock. Its id (`atp-<our reference>`) is keyed on our reference, so a retry returns the same
 *   one. Quantities the order's own confirmed sale already holds count as available to it.
 * - `release`: nothing to do here; cancelling the sale (salesOrders.cancel) gives the stock back.
 *
 * Between the check and the confirm (a second or two) another sale can take the same units. Tryton
 * never ships what it does not have (a shipment is only assigned from stock on hand), so that loser
 * waits as a backorder in Tryton rather than overselling; README.md says so.
 */
import { z } from 'zod'
import { SyncFailure, type ConnectorContext, type MissingStock, type Operation, type OperationContext, type RemoteRecord, type Reservation, type ReservationRequest, type StockLevel } from '../../src/connector-kit/index.ts'
import { models, type Models, type Row } from './models.ts'
import { salesByReference } from './sales.ts'
import { trytonConnectorId, type TrytonSecrets, type TrytonSettings } from './settings.ts'
import { addDecimals, compareDecimals, floatToDecimal, isDecimal, minDecimal, negateDecimal } from './values.ts'

const connectorId = trytonConnectorId
type Context = ConnectorContext<TrytonSettings, TrytonSecrets>

interface StockRow extends Row {
  code: string
  quantity: number | null
  forecast_quantity: number | null
}

/** The reservation id for our reference. */
export const reservationIdOf = (reference: string) => `atp-${reference}`

async function stockByCode(m: Models, skus: readonly string[]): Promise<{ levels: Map<string, StockRow>; warehouse: { id: number; code: string } }> {
  const warehouse = await m.warehouse()
  // Without `locations` Tryton answers 0 for both quantities, silently.
  const rows = await m.searchRead<StockRow>('product.product', [['code', 'in', [...new Set(skus)]]], ['code', 'quantity', 'forecast_quantity'], {}, { locations: [warehouse.id] })
  return { levels: new Map(rows.map((row) => [row.code, row])), warehouse }
}

export async function getStock(ctx: Context, skus: readonly string[]): Promise<StockLevel[]> {
  if (!skus.length) return []
  const { levels, warehouse } = await stockByCode(models(ctx), skus)
  return [...levels.values()].map((row) => ({
    sku: row.code,
    available: floatToDecimal(row.forecast_quantity ?? 0),
    onHand: floatToDecimal(row.quantity ?? 0),
    warehouse: warehouse.code,
  }))
}

interface MoveRow extends Row {
  state: string
  quantity: number
  'product.': { id: number; code: string } | null
}

/** What the order's own sale already holds (moves planned, not done or cancelled), per SKU. */
async function heldByOwnSale(m: Models, reference: string): Promise<Map<string, string>> {
  const held = new Map<string, string>()
  const sale = (await salesByReference(m, reference)).find((s) => s.state === 'confirmed' || s.state === 'processing')
  if (!sale) return held
  const lines = await m.read<Row & { moves: number[] }>('sale.line', sale.lines, ['moves'])
  const moves = await m.read<MoveRow>('stock.move', lines.flatMap((line) => line.moves ?? []), ['state', 'quantity', 'product.code'])
  for (const move of moves) {
    if (move.state === 'done' || move.state === 'cancelled' || !move['product.']) continue
    const sku = move['product.'].code
    held.set(sku, addDecimals(held.get(sku) ?? '0', floatToDecimal(move.quantity)))
  }
  return held
}

async function check(ctx: OperationContext<TrytonSettings, TrytonSecrets>, request: ReservationRequest): Promise<Reservation> {
  const m = models(ctx)
  const [{ levels }, held] = await Promise.all([stockByCode(m, request.lines.map((line) => line.sku)), heldByOwnSale(m, ctx.reference)])
  const unknown = [...new Set(request.lines.map((line) => line.sku).filter((sku) => !levels.has(sku)))]
  if (unknown.length) throw new SyncFailure('data', `Tryton has no product with code ${unknown.join(', ')}`, { connectorId })
  // Lines of one SKU draw on the same stock, in order.
  const left = new Map<string, string>()
  for (const [sku, row] of levels) {
    const free = addDecimals(floatToDecimal(row.forecast_quantity ?? 0), held.get(sku) ?? '0')
    left.set(sku, compareDecimals(free, '0') > 0 ? free : '0')
  }
  const lines: Reservation['lines'] = []
  const missing: MissingStock[] = []
  for (const line of request.lines) {
    const available = left.get(line.sku) ?? '0'
    const reserved = minDecimal(line.quantity, available)
    left.set(line.sku, addDecimals(available, negateDecimal(reserved)))
    lines.push({ lineId: line.lineId, sku: line.sku, requested: line.quantity, reserved })
    if (compareDecimals(reserved, line.quantity) < 0) missing.push({ lineId: line.lineId, sku: line.sku, requested: line.quantity, available })
  }
  if (missing.length && !request.allowPartial) {
    throw new SyncFailure('data', `not enough stock in Tryton for ${missing.map((m) => m.sku).join(', ')}`, { connectorId, missing })
  }
  return { externalId: reservationIdOf(ctx.reference), lines }
}

const quantitySchema = z.string().refine((q) => isDecimal(q) && compareDecimals(q, '0') > 0, 'must be a positive decimal string')

export const reservationRequestSchema = z.object({
  lines: z.array(z.object({ lineId: z.string().min(1), sku: z.string().min(1), quantity: quantitySchema })).min(1),
  allowPartial: z.boolean().default(false),
})

/** Keyed on our reference: a retry answers the same reservation (Tryton holds nothing to duplicate). */
export const reserve: Operation<ReservationRequest, Reservation, TrytonSettings, TrytonSecrets> = {
  inputSchema: reservationRequestSchema,
  idempotency: 'lookup-by-reference',
  run: (ctx, request) => check(ctx, request),
}

/**
 * The reservation of our reference. Nothing is stored in Tryton until the sale is confirmed, so it
 * is the one `reserve` answers (keyed on the reference), with the quantities the confirmed sale
 * holds once there is one.
 */
export async function findReservation(ctx: Context, reference: string): Promise<Reservation | undefined> {
  const held = await heldByOwnSale(models(ctx), reference)
  return {
    externalId: reservationIdOf(reference),
    lines: [...held].map(([sku, quantity], i) => ({ lineId: String(i + 1), sku, requested: quantity, reserved: quantity })),
  }
}

/** Nothing is held under the reservation itself; the sale's cancel (salesOrders.cancel) frees the stock. */
export async function release(ctx: OperationContext<TrytonSettings, TrytonSecrets>, existing: RemoteRecord): Promise<void> {
  ctx.log.info({ connectionId: ctx.connectionId, connectorId, reservation: existing.externalId }, 'nothing to release in Tryton: the sale\'s cancel frees its stock')
}
