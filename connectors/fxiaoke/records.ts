/**
 * Fxiaoke records → inbound events. One order event carries one SalesOrderObj record with its
 * SalesOrderProductObj lines, in the shape of the v2 create request's `data`
 * (`{ object_data, details: { SalesOrderProductObj: [...] } }`), which is what the inbound mapping
 * `fxiaoke.to-canonical.order` reads. Pushed and polled orders become the same event: the event id
 * is `${_id}:${last_modified_time}`, so a version seen both ways is stored once.
 *
 * No I/O here.
 */
import { z } from 'zod'
import type { InboundEvent, InboundEventType } from '../../src/connector-kit/index.ts'

export type FxRecord = Record<string, unknown>
export type OrderEvent = InboundEvent & { eventId: string }

/**
 * JSON.parse that keeps money exact: a number written with a fraction or an exponent, or too large
 * for a safe integer (113.50, 1e21), becomes its source text ("113.50"), because a binary float may
 * already have lost cents (and the scale the CRM wrote). Integers written as such (epoch
 * milliseconds, quantities, error codes) stay numbers.
 */
export function parseFxiaokeJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' && context?.source !== undefined && (!Number.isSafeInteger(value) || /[.eE]/.test(context.source)) ? context.source : value,
  )
}

const epochMs = z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)])

/** What an order record must have for us to track it; every other field goes to the mapping as it is. */
export const orderRecordSchema = z.looseObject({
  _id: z.string().min(1),
  last_modified_time: epochMs,
  create_time: epochMs.optional(),
  life_status: z.string().optional(),
  is_deleted: z.union([z.boolean(), z.string()]).optional(),
})

export const lineRecordSchema = z.looseObject({ _id: z.string().min(1).optional() })

export const pushEventNames = ['created', 'updated', 'cancelled'] as const

/** One order as a CRM function pushes it: the record, its lines, and optionally what happened. */
export const pushedOrderSchema = z.object({
  event: z.enum(pushEventNames).optional(),
  object_data: orderRecordSchema,
  details: z.record(z.string(), z.array(lineRecordSchema)).default({}),
})
export type PushedOrder = z.infer<typeof pushedOrderSchema>

/** A push's content: one order, or several in one delivery. */
export const pushContentSchema = z.union([pushedOrderSchema, z.array(pushedOrderSchema).min(1).max(100)])

/** Parses a push's content; one schema or the other, so the issues name the wrong fields rather than the union. */
export function parsePushContent(json: unknown) {
  return Array.isArray(json) ? z.array(pushedOrderSchema).min(1).max(100).safeParse(json) : pushedOrderSchema.safeParse(json)
}

/**
 * Fields left out of the document: the record's modification stamp (carried by the event id and
 * source version instead) and the fields our own writeback sets. A change that touched only these
 * carries nothing for the mapping, and the poller drops it as unchanged instead of taking our own
 * writeback for a new version of the order.
 */
export const volatileFields = ['last_modified_time', 'last_modified_by', 'version'] as const

/** `x__r` and `x__l` are the display expansions of field `x`. */
const baseField = (key: string) => key.replace(/__(r|l)$/, '')

export function withoutFields(record: FxRecord, fields: ReadonlySet<string>): FxRecord {
  return Object.fromEntries(Object.entries(record).filter(([key]) => !fields.has(key) && !fields.has(baseField(key))))
}

export function modifiedAt(record: FxRecord): number {
  return orderRecordSchema.shape.last_modified_time.parse(record.last_modified_time)
}

function isCancelled(order: FxRecord): boolean {
  // life_status `invalid` is an order voided (作废) in the CRM.
  return order.life_status === 'invalid' || order.is_deleted === true || order.is_deleted === 'true'
}

function eventType(order: FxRecord, told: PushedOrder['event'] | undefined): InboundEventType {
  if (told) return `order.${told}`
  if (isCancelled(order)) return 'order.cancelled'
  const created = order.create_time === undefined ? undefined : orderRecordSchema.shape.last_modified_time.safeParse(order.create_time).data
  return created !== undefined && created === modifiedAt(order) ? 'order.created' : 'order.updated'
}

export interface DocumentOptions {
  /** The line object's api_name: the key of the lines under `details`. */
  lineObject: string
  /** Fields our writeback sets (left out of the document, see volatileFields). */
  writebackFields: readonly string[]
}

/** The inbound event of one order version. Lines are sorted by _id, so a push and a poll of one version give one document. */
export function orderEvent(order: FxRecord, lines: readonly FxRecord[], options: DocumentOptions, told?: PushedOrder['event']): OrderEvent {
  const id = orderRecordSchema.shape._id.parse(order._id)
  const version = modifiedAt(order)
  const dropped = new Set<string>([...volatileFields, ...options.writebackFields])
  const key = (line: FxRecord) => String(line._id ?? '')
  const sorted = [...lines].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
  return {
    eventId: `${id}:${version}`,
    type: eventType(order, told),
    externalId: id,
    sourceVersion: version,
    document: {
      object_data: withoutFields(order, dropped),
      details: { [options.lineObject]: sorted.map((line) => withoutFields(line, new Set(volatileFields))) },
    },
  }
}

/** The events of a push's (decrypted) content. */
export function pushEvents(content: z.infer<typeof pushContentSchema>, options: DocumentOptions): OrderEvent[] {
  const orders = Array.isArray(content) ? content : [content]
  return orders.map((o) => orderEvent(o.object_data, o.details[options.lineObject] ?? [], options, o.event))
}
