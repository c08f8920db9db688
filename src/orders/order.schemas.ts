import { z } from 'zod'
import { addDecimals, isDecimalString, multiplyDecimals } from '../shared/decimal.ts'

const decimalString = z.string().refine(isDecimalString, 'must be a decimal string')

export const orderLineSchema = z.object({
  sku: z.string().min(1),
  quantity: decimalString.refine((q) => !q.startsWith('-') && !/^0+(\.0+)?$/.test(q), 'must be positive'),
  unitPrice: decimalString,
  lineTotal: decimalString.optional(),
})
export type OrderLine = z.infer<typeof orderLineSchema>

/** What an inbound mapping must produce: the canonical order, before totals. */
export const mappedOrderSchema = z.object({
  externalId: z.string().min(1),
  customer: z.object({ externalId: z.string().min(1), name: z.string().optional() }),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY'),
  owner: z.string().optional(),
  orderedAt: z.string().optional(),
  lines: z.array(orderLineSchema).min(1),
})
export type MappedOrder = z.infer<typeof mappedOrderSchema>

export interface CanonicalOrder extends MappedOrder {
  lines: (OrderLine & { lineTotal: string })[]
  total: string
}

/** Line totals and the order total, computed exactly. */
export function withTotals(order: MappedOrder): CanonicalOrder {
  const lines = order.lines.map((line) => ({ ...line, lineTotal: multiplyDecimals(line.quantity, line.unitPrice) }))
  return { ...order, lines, total: addDecimals(lines.map((l) => l.lineTotal), 2) }
}
