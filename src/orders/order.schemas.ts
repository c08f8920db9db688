import { z } from 'zod'
import { addDecimals, compareDecimals, isDecimalString, multiplyDecimals, trimDecimal } from '../shared/decimal.ts'

const decimalString = z.string().refine(isDecimalString, 'must be a decimal string')
const percentString = z
  .string()
  .refine((p) => isDecimalString(p) && compareDecimals(p, '0') >= 0 && compareDecimals(p, '100') <= 0, 'must be a percentage from 0 to 100 as a decimal string such as "12.5"')

export const orderLineSchema = z.object({
  sku: z.string().min(1),
  quantity: decimalString.refine((q) => !q.startsWith('-') && !/^0+(\.0+)?$/.test(q), 'must be positive'),
  /** What the customer pays per unit, any discount already taken off. */
  unitPrice: decimalString,
  lineTotal: decimalString.optional(),
  // Read by the approval rules (maxLineDiscountPercent). unitPrice is already the discounted price,
  // so totals never take the discount off again.
  discount: percentString.optional().describe('percent off the list price'),
})
export type OrderLine = z.infer<typeof orderLineSchema>

/** Where the goods go: what the warehouse needs to ship (every part optional, as CRMs differ). */
export const addressSchema = z.object({
  name: z.string().min(1).optional(),
  street: z.string().min(1).optional(),
  city: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
  postalCode: z.string().min(1).optional(),
  country: z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 code such as CN').optional(),
})

/** What an inbound mapping must produce: the canonical order, before totals. */
export const mappedOrderSchema = z.object({
  externalId: z.string().min(1),
  customer: z.object({ externalId: z.string().min(1), name: z.string().optional() }),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY'),
  owner: z.string().optional(),
  orderedAt: z.string().optional(),
  shipTo: addressSchema.optional(),
  requestedDeliveryDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date such as 2026-12-01').optional(),
  lines: z.array(orderLineSchema).min(1),
})
export type MappedOrder = z.infer<typeof mappedOrderSchema>

export interface CanonicalOrder extends MappedOrder {
  lines: (OrderLine & { lineTotal: string })[]
  total: string
}

/** Amounts show at least this many decimals (cents); more only when the exact value needs them. */
const amountScale = 2

/** Line totals and the order total, computed exactly: never rounded, only trailing zeros trimmed. */
export function withTotals(order: MappedOrder): CanonicalOrder {
  const lines = order.lines.map((line) => ({ ...line, lineTotal: trimDecimal(multiplyDecimals(line.quantity, line.unitPrice), amountScale) }))
  return { ...order, lines, total: trimDecimal(addDecimals(lines.map((l) => l.lineTotal)), amountScale) }
}
