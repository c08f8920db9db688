/**
 * REST WMS connector: any warehouse system with a JSON REST API, its endpoints and field names
 * configured (settings.ts), not coded. It reads stock in batches, reserves it under our idempotency
 * key (all-or-nothing, or partial where the WMS can), adjusts and releases reservations, finds them
 * by our reference, and turns the WMS's signed shipment and stock webhooks into fulfilment events.
 * This file decides between create, adjust and adopt; `client.ts` builds the requests. It never
 * retries by itself: the queue does, and `classify()` says how.
 */
import {
  defineConnector,
  SyncFailure,
  type ConnectorContext,
  type InventoryCapability,
  type Operation,
  type OperationContext,
  type RemoteRecord,
  type Reservation,
  type ReservationRequest,
} from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { classifyRestWmsError, restWmsClient, restWmsConnectorId, type WmsReservation } from './client.ts'
import { acknowledgeRestWmsDelivery, receiveRestWmsDelivery, refuseRestWmsDelivery } from './events.ts'
import { canonicalDecimal, compareDecimal } from './quantities.ts'
import { secretsSchema, settingsSchema, type RestWmsSecrets, type RestWmsSettings } from './settings.ts'

export { restWmsConnectorId, classifyRestWmsError } from './client.ts'
export { secretsSchema, settingsSchema, type RestWmsSecrets, type RestWmsSettings } from './settings.ts'

type Context = ConnectorContext<RestWmsSettings, RestWmsSecrets>

const quantitySchema = z
  .string()
  .regex(/^\d+(\.\d+)?$/, 'must be a decimal string such as "3"')
  .refine((quantity) => /[1-9]/.test(quantity), 'must be more than zero')

export const reservationRequestSchema = z.object({
  lines: z.array(z.object({ lineId: z.string().min(1), sku: z.string().min(1), quantity: quantitySchema })).min(1),
  allowPartial: z.boolean().default(false),
})

function asReservation(reservation: WmsReservation): Reservation {
  return { externalId: reservation.externalId, lines: reservation.lines }
}

/** The newest reservation under our reference that was not released. */
async function latestReservation(ctx: Context, reference: string): Promise<WmsReservation | undefined> {
  const found = (await restWmsClient(ctx).find(reference)).filter((reservation) => reservation.state !== 'released')
  if (found.length > 1) {
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: restWmsConnectorId, reference, matches: found.length }, 'WMS holds several open reservations under one reference; using the newest')
  }
  return found.at(-1)
}

/** Whether a found reservation already holds exactly what is asked (then there is nothing to change). */
function holdsExactly(found: WmsReservation, request: ReservationRequest): boolean {
  return (
    found.lines.length === request.lines.length &&
    request.lines.every((line) => found.lines.some((held) => held.sku === line.sku && compareDecimal(held.reserved, line.quantity) === 0))
  )
}

async function runReserve(ctx: OperationContext<RestWmsSettings, RestWmsSecrets>, input: ReservationRequest, existing: RemoteRecord | undefined): Promise<Reservation> {
  if (input.allowPartial && ctx.settings.reserve.partial === 'unsupported') {
    throw new SyncFailure('config', 'this WMS reserves all or nothing (reserve.partial: unsupported), but the connection\'s stock policy asks for partial reservations', {
      connectorId: restWmsConnectorId,
    })
  }
  const client = restWmsClient(ctx)
  if (existing) return asReservation(await client.update(existing.externalId, ctx.reference, input, ctx.idempotencyKey))
  if (ctx.mayHaveWritten && ctx.settings.find !== 'none') {
    // An earlier attempt may have reserved and lost the answer: look before reserving again.
    const found = await latestReservation(ctx, ctx.reference)
    if (found?.state === 'open' && holdsExactly(found, input)) {
      return { externalId: found.externalId, lines: input.lines.map((line) => ({ lineId: line.lineId, sku: line.sku, requested: canonicalDecimal(line.quantity)!, reserved: canonicalDecimal(line.quantity)! })) }
    }
    // Other quantities (a later revision, or a partial one): adjust it (a WMS without updates refuses, as data).
    if (found?.state === 'open') return asReservation(await client.update(found.externalId, ctx.reference, input, ctx.idempotencyKey))
    if (found) return asReservation(found)
  }
  return asReservation(await client.create(ctx.reference, input, ctx.idempotencyKey))
}

export const reserveStock: Operation<ReservationRequest, Reservation, RestWmsSettings, RestWmsSecrets> = {
  inputSchema: reservationRequestSchema,
  // The Idempotency-Key header (or body field); settings refuse a WMS that has neither a key nor a lookup by reference.
  idempotency: 'native-key',
  run: runReserve,
}

export const restWmsInventory: InventoryCapability<RestWmsSettings, RestWmsSecrets> = {
  getStock: async (ctx, skus) => restWmsClient(ctx).stock(skus),
  reserve: reserveStock,
  findReservation: async (ctx, reference) => {
    if (ctx.settings.find === 'none') {
      ctx.log.warn({ connectionId: ctx.connectionId, connectorId: restWmsConnectorId }, 'this WMS cannot look reservations up by reference (find: none)')
      return undefined
    }
    const found = await latestReservation(ctx, reference)
    return found && asReservation(found)
  },
  release: async (ctx, existing) => restWmsClient(ctx).release(existing.externalId, ctx.reference),
}

export const restWms = defineConnector({
  manifest: {
    id: restWmsConnectorId,
    version: '0.1.0',
    displayName: 'REST WMS (configurable)',
    roles: ['inventory'],
    settingsSchema,
    secretsSchema,
    limits: { concurrency: 4 },
  },
  check: async (ctx) => restWmsClient(ctx).health(),
  classify: (err, ctx) => classifyRestWmsError(err, ctx.settings),
  inventory: restWmsInventory,
  // Not the plain `webhooks` capability: its body schema and toEvent() cannot see the connection's
  // settings, and here the body's shape is configured per connection. Verification is still
  // Standard Webhooks, with the connection's webhookSecret.
  customWebhooks: {
    verification: 'custom',
    contentTypes: ['application/json'],
    receive: receiveRestWmsDelivery,
    acknowledge: acknowledgeRestWmsDelivery,
    refuse: refuseRestWmsDelivery,
  },
})
