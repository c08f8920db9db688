/**
 * The demo WMS's webhook events, in its own format (snake_case, whole units as integers), and how
 * they become orderbridge's fulfilment events. Pure: no I/O. The simulator builds these bodies and
 * the connector validates them, so both sides share one schema.
 */
import { z } from 'zod'
import type { InboundEvent } from '../../src/connector-kit/index.ts'

const sequence = z.number().int().nonnegative().describe('Increases with every event the WMS sends.')
const occurredAt = z.string().min(1)

/** Which order: the reservation's id, or only our reference when the WMS has no reservation for it. */
const orderTarget = {
  reservation_id: z.string().min(1).optional(),
  reference: z.string().min(1).optional(),
}
const namesAnOrder = (body: { reservation_id?: string; reference?: string }) => body.reservation_id !== undefined || body.reference !== undefined
const namesAnOrderMessage = { message: 'needs reservation_id or reference', path: ['reservation_id'] }

export const wmsShippedEventSchema = z
  .object({
    type: z.literal('shipment.shipped'),
    sequence,
    occurred_at: occurredAt,
    ...orderTarget,
    carrier: z.string().min(1).optional(),
    tracking_number: z.string().min(1).optional(),
    lines: z.array(z.object({ line_id: z.string().optional(), sku: z.string().min(1), quantity: z.number().int().nonnegative() })).optional(),
  })
  .refine(namesAnOrder, namesAnOrderMessage)

export const wmsDeliveredEventSchema = z
  .object({
    type: z.literal('shipment.delivered'),
    sequence,
    occurred_at: occurredAt,
    ...orderTarget,
    delivered_at: z.string().min(1).optional(),
  })
  .refine(namesAnOrder, namesAnOrderMessage)

export const wmsStockChangedEventSchema = z.object({
  type: z.literal('stock.changed'),
  sequence,
  occurred_at: occurredAt,
  reason: z.enum(['receipt', 'reservation', 'release']),
  levels: z
    .array(z.object({ sku: z.string().min(1), on_hand: z.number().int().nonnegative(), reserved: z.number().int().nonnegative(), available: z.number().int() }))
    .min(1),
})

export const wmsWebhookBodySchema = z.discriminatedUnion('type', [wmsShippedEventSchema, wmsDeliveredEventSchema, wmsStockChangedEventSchema])
export type WmsWebhookBody = z.infer<typeof wmsWebhookBodySchema>
export type WmsShippedEvent = z.infer<typeof wmsShippedEventSchema>
export type WmsDeliveredEvent = z.infer<typeof wmsDeliveredEventSchema>
export type WmsStockChangedEvent = z.infer<typeof wmsStockChangedEventSchema>

function orderExternalId(body: { reservation_id?: string; reference?: string }): string {
  return body.reservation_id ?? `ref:${body.reference!}`
}

/**
 * One WMS event as an orderbridge event. Shipments name the order by reservation id (what our link
 * holds), or `ref:<reference>`. They carry no version (each is a fact of its own), while stock events
 * carry the WMS's sequence, so an older stock picture never overwrites a newer one.
 */
export function wmsEventToInbound(body: WmsWebhookBody): InboundEvent {
  switch (body.type) {
    case 'shipment.shipped':
      return {
        type: 'order.shipped',
        externalId: orderExternalId(body),
        sourceVersion: 0,
        document: {
          ...(body.carrier !== undefined ? { carrier: body.carrier } : {}),
          ...(body.tracking_number !== undefined ? { trackingNumber: body.tracking_number } : {}),
          ...(body.lines ? { lines: body.lines.map((line) => ({ sku: line.sku, quantity: String(line.quantity) })) } : {}),
        },
      }
    case 'shipment.delivered':
      return {
        type: 'order.delivered',
        externalId: orderExternalId(body),
        sourceVersion: 0,
        document: body.delivered_at !== undefined ? { at: body.delivered_at } : {},
      }
    case 'stock.changed':
      return {
        type: 'stock.changed',
        externalId: '',
        sourceVersion: body.sequence,
        document: { levels: body.levels.map((level) => ({ sku: level.sku, available: String(Math.max(0, level.available)) })) },
      }
  }
}
