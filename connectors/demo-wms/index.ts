/**
 * Demo WMS connector: the demo inventory system. It reads stock, reserves it (all-or-nothing or
 * partial) under our idempotency key, adjusts and releases reservations, and turns the WMS's signed
 * shipment and stock webhooks into fulfilment events. The client in `client.ts` knows the URLs;
 * this file decides between create and adjust. It never retries by itself: the queue does.
 */
import {
  classifyHttpError,
  defineConnector,
  SyncFailure,
  type InventoryCapability,
  type Operation,
  type OperationContext,
  type RemoteRecord,
  type Reservation,
  type ReservationRequest,
} from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { demoWmsClient, demoWmsConnectorId, secretsSchema, settingsSchema, type DemoWmsContext, type DemoWmsSecrets, type DemoWmsSettings, type WmsReservation } from './client.ts'
import { wmsEventToInbound, wmsWebhookBodySchema } from './events.ts'
import { demoWmsReservationReads } from './reconciliation.ts'

export { demoWmsConnectorId, secretsSchema, settingsSchema, type DemoWmsSecrets, type DemoWmsSettings } from './client.ts'

const quantitySchema = z
  .string()
  .regex(/^\d+(\.\d+)?$/, 'must be a decimal string such as "3"')
  .refine((quantity) => /[1-9]/.test(quantity), 'must be more than zero')

export const reservationRequestSchema = z.object({
  lines: z.array(z.object({ lineId: z.string().min(1), sku: z.string().min(1), quantity: quantitySchema })).min(1),
  allowPartial: z.boolean().default(false),
})

/** The WMS's refusals that no retry can fix: the reservation is past the point where it could change. */
const closedReservationCodes: Record<string, string> = {
  reservation_closed: 'the reservation was released or has shipped and cannot change',
  reservation_shipped: 'the reservation has shipped and cannot be released',
  reservation_released: 'the reservation was released and cannot ship',
  reservation_not_shipped: 'the reservation has not shipped',
  nothing_to_ship: 'the reservation holds nothing to ship',
  insufficient_stock: 'not enough stock for the reservation',
}

function wmsErrorCode(err: unknown): string | undefined {
  const data = (err as { response?: { data?: unknown } } | null)?.response?.data
  const code = (data as { error?: { code?: unknown } } | null | undefined)?.error?.code
  return typeof code === 'string' ? code : undefined
}

/** The kit's HTTP classification, except that a 409 about the reservation's state is `data`, not a conflict to retry. */
export function classifyDemoWmsError(err: unknown): SyncFailure {
  const failure = classifyHttpError(err, demoWmsConnectorId)
  if (failure.kind !== 'conflict' || err instanceof SyncFailure) return failure
  const code = wmsErrorCode(err)
  const message = code === undefined ? undefined : closedReservationCodes[code]
  if (message === undefined) return failure
  return new SyncFailure('data', message, { connectorId: demoWmsConnectorId, httpStatus: 409 }, { cause: err })
}

function asReservation(reservation: WmsReservation): Reservation {
  return { externalId: reservation.externalId, lines: reservation.lines }
}

/** The newest reservation under our reference that was not released. */
async function latestReservation(ctx: DemoWmsContext, reference: string): Promise<WmsReservation | undefined> {
  const found = (await demoWmsClient(ctx).findReservations(reference)).filter((reservation) => reservation.status !== 'released')
  if (found.length > 1) {
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: demoWmsConnectorId, reference, matches: found.length }, 'WMS holds several open reservations under one reference; using the newest')
  }
  return found.at(-1)
}

async function runReserve(
  ctx: OperationContext<DemoWmsSettings, DemoWmsSecrets>,
  input: ReservationRequest,
  existing: RemoteRecord | undefined,
): Promise<Reservation> {
  const client = demoWmsClient(ctx)
  if (existing) return asReservation(await client.replaceReservation(existing.externalId, input))
  if (ctx.mayHaveWritten) {
    // An earlier attempt may have reserved and lost the answer: look before reserving again.
    const found = await latestReservation(ctx, ctx.reference)
    if (found?.status === 'active') return asReservation(await client.replaceReservation(found.externalId, input))
    if (found) return asReservation(found)
  }
  return asReservation(await client.createReservation(ctx.reference, input, ctx.idempotencyKey))
}

export const reserveStock: Operation<ReservationRequest, Reservation, DemoWmsSettings, DemoWmsSecrets> = {
  inputSchema: reservationRequestSchema,
  idempotency: 'native-key',
  run: runReserve,
}

export const demoWmsInventory: InventoryCapability<DemoWmsSettings, DemoWmsSecrets> = {
  getStock: (ctx, skus) => demoWmsClient(ctx).stock(skus),
  reserve: reserveStock,
  findReservation: async (ctx, reference) => {
    const found = await latestReservation(ctx, reference)
    return found && asReservation(found)
  },
  release: (ctx, existing) => demoWmsClient(ctx).releaseReservation(existing.externalId),
  ...demoWmsReservationReads,
}

export const demoWms = defineConnector({
  manifest: {
    id: demoWmsConnectorId,
    version: '0.2.0',
    displayName: 'Demo WMS',
    roles: ['inventory'],
    settingsSchema,
    secretsSchema,
  },
  // /health is open; a lookup by reference proves the token too.
  check: async (ctx) => {
    const client = demoWmsClient(ctx)
    await client.health()
    await client.findReservations('orderbridge-connection-check')
  },
  classify: (err) => classifyDemoWmsError(err),
  inventory: demoWmsInventory,
  webhooks: {
    verification: 'standard-webhooks',
    bodySchema: wmsWebhookBodySchema,
    toEvent: wmsEventToInbound,
  },
})
