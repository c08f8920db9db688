/**
 * The WMS's webhooks as the connection configures them (settings `webhooks`): where the event type
 * is and which values mean shipped, delivered and stock changed, and where the reservation id, our
 * reference, carrier, tracking number, lines and stock levels are. It verifies Standard Webhooks
 * signatures with the connection's `webhookSecret` and turns one delivery into one fulfilment event.
 * Pure apart from the clock: no I/O, no logging. Refusals name the WMS's field path.
 */
import { z } from 'zod'
import {
  WebhookRejected,
  verifyStandardWebhook,
  type IncomingDelivery,
  type InboundEvent,
  type ReceivedDelivery,
  type WebhookAnswer,
} from '../../src/connector-kit/index.ts'
import { readFieldMap, readPath, splitListPath, theirPathFor, type FieldMap } from './field-paths.ts'
import { atLeastZero, quantityFromWms } from './quantities.ts'
import type { RestWmsSecrets, RestWmsSettings, WebhookMapping } from './settings.ts'

type Detail = { path: string; message: string }

function refused(details: Detail[]): WebhookRejected {
  return new WebhookRejected(422, 'validation_failed', 'the document does not match what this connection accepts', details)
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return undefined
}

function valuesOf(types: string | readonly string[] | undefined): readonly string[] {
  return types === undefined ? [] : typeof types === 'string' ? [types] : types
}

/** A list of `{ sku, value }` read through two list paths of one list, each value a decimal string. */
function quantities(body: unknown, skuPath: string, valuePath: string): { sku: string; value: string }[] | Detail {
  const map: FieldMap = { 'rows[].sku': skuPath, 'rows[].value': valuePath }
  const rows = readFieldMap(map, body).rows
  if (!Array.isArray(rows)) return { path: splitListPath(skuPath).list, message: 'must be a list' }
  const out: { sku: string; value: string }[] = []
  for (const [i, row] of (rows as Record<string, unknown>[]).entries()) {
    const sku = text(row.sku)
    if (sku === undefined) return { path: theirPathFor(map, ['rows', i, 'sku'])!, message: 'must be a SKU' }
    const value = quantityFromWms(row.value)
    if (value === undefined) return { path: theirPathFor(map, ['rows', i, 'value'])!, message: 'must be a decimal quantity' }
    out.push({ sku, value })
  }
  return out
}

const sequenceSchema = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.string().regex(/^\d{1,15}$/).transform(Number)])

/**
 * One webhook body as an orderbridge event, read through the configured mapping: `undefined` when
 * its type is not mapped and `unknownTypes` is `ignore`. Shipments name the order by the WMS's
 * reservation id (what our link holds), or `ref:<our reference>`; they carry no version (each is a
 * fact of its own). Stock changes carry the configured sequence, so an older picture never wins.
 *
 * @example
 * restWmsEventToInbound(settings.webhooks, { eventType: 'SHIPMENT_DELIVERED', payload: { reservationId: 'RES-1' } })
 * // → { type: 'order.delivered', externalId: 'RES-1', sourceVersion: 0, document: {} }
 */
export function restWmsEventToInbound(mapping: WebhookMapping, body: unknown): InboundEvent | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw refused([{ path: '', message: 'must be a JSON object' }])
  const typeValue = text(readPath(body, mapping.eventType))
  if (typeValue === undefined) throw refused([{ path: mapping.eventType, message: 'must name the event type' }])
  const is = (kind: keyof WebhookMapping['types']) => valuesOf(mapping.types[kind]).includes(typeValue)

  if (is('stockChanged')) {
    const levels = quantities(body, mapping['levels[].sku']!, mapping['levels[].available']!)
    if (!Array.isArray(levels)) throw refused([levels])
    if (levels.length === 0) throw refused([{ path: mapping['levels[].sku']!, message: 'must list at least one SKU' }])
    let sourceVersion = 0
    if (mapping.sequence !== undefined) {
      const sequence = sequenceSchema.safeParse(readPath(body, mapping.sequence))
      if (!sequence.success) throw refused([{ path: mapping.sequence, message: 'must be a whole number that grows with every event' }])
      sourceVersion = sequence.data
    }
    return { type: 'stock.changed', externalId: '', sourceVersion, document: { levels: levels.map((level) => ({ sku: level.sku, available: atLeastZero(level.value) })) } }
  }

  const shipped = is('shipped')
  if (!shipped && !is('delivered')) {
    if (mapping.unknownTypes === 'ignore') return undefined
    const known = [...valuesOf(mapping.types.shipped), ...valuesOf(mapping.types.delivered), ...valuesOf(mapping.types.stockChanged)]
    throw refused([{ path: mapping.eventType, message: `must be one of ${known.join(', ')}` }])
  }

  const reservationId = mapping.reservationId === undefined ? undefined : text(readPath(body, mapping.reservationId))
  const reference = mapping.reference === undefined ? undefined : text(readPath(body, mapping.reference))
  if (reservationId === undefined && reference === undefined) {
    throw refused([{ path: mapping.reservationId ?? mapping.reference!, message: `needs ${[mapping.reservationId, mapping.reference].filter(Boolean).join(' or ')}` }])
  }
  const externalId = reservationId ?? `ref:${reference!}`
  const optional = (key: string, path: string | undefined) => {
    const value = path === undefined ? undefined : text(readPath(body, path))
    return value === undefined ? {} : { [key]: value }
  }

  if (!shipped) return { type: 'order.delivered', externalId, sourceVersion: 0, document: optional('at', mapping.deliveredAt) }

  let lines: { sku: string; quantity: string }[] | undefined
  const linesAt = mapping['lines[].sku'] === undefined ? undefined : splitListPath(mapping['lines[].sku']).list
  // Lines are optional in a shipment: a body without the list ships without them.
  if (linesAt !== undefined && readPath(body, linesAt) !== undefined) {
    const read = quantities(body, mapping['lines[].sku']!, mapping['lines[].quantity']!)
    if (!Array.isArray(read)) throw refused([read])
    lines = read.map((line) => ({ sku: line.sku, quantity: line.value }))
  }
  return {
    type: 'order.shipped',
    externalId,
    sourceVersion: 0,
    document: { ...optional('carrier', mapping.carrier), ...optional('trackingNumber', mapping.trackingNumber), ...(lines ? { lines } : {}) },
  }
}

/**
 * Verifies one delivery (Standard Webhooks: HMAC-SHA256 over `id.timestamp.body` with the
 * connection's `webhookSecret`, a 5-minute timestamp window, constant-time compare), parses it and
 * reads it through the connection's mapping. The event id is the `webhook-id` header, which
 * redeliveries repeat. A type the connection ignores gives a delivery with no events.
 */
export function receiveRestWmsDelivery(delivery: IncomingDelivery<RestWmsSettings, RestWmsSecrets>): ReceivedDelivery {
  const secret = delivery.secrets.webhookSecret
  if (!secret) throw new WebhookRejected(401, 'invalid_signature', 'this connection has no webhookSecret configured, so no delivery can be verified')
  const verified = verifyStandardWebhook(secret, delivery.headers, delivery.raw)
  if (!verified.ok) throw new WebhookRejected(401, 'invalid_signature', verified.reason)
  const eventId = delivery.headers['webhook-id']!
  let body: unknown
  try {
    body = JSON.parse(delivery.raw.toString('utf8'))
  } catch (err) {
    throw new WebhookRejected(400, 'malformed_json', `the body is not valid JSON: ${(err as Error).message}`)
  }
  const mapping = delivery.settings.webhooks
  if (!mapping) throw new WebhookRejected(422, 'webhooks_not_configured', 'this connection has no webhooks mapping, so it accepts no events')
  const event = restWmsEventToInbound(mapping, body)
  return { events: event ? [{ ...event, eventId }] : [] }
}

export function acknowledgeRestWmsDelivery(delivery: ReceivedDelivery): WebhookAnswer {
  return { contentType: 'application/json', body: JSON.stringify({ status: 'accepted', events: delivery.events.length }) }
}

/** The same error shape as every other orderbridge answer: `{ error: { code, message, details } }`. */
export function refuseRestWmsDelivery(rejection: WebhookRejected): WebhookAnswer {
  return {
    contentType: 'application/json',
    body: JSON.stringify({ error: { code: rejection.code, message: rejection.message, ...(rejection.details.length ? { details: rejection.details } : {}) } }),
  }
}
