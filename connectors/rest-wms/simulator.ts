/**
 * A third-party WMS for the REST WMS connector's demo and tests: a Fastify server on loopback with
 * its own API and field names (under /api/v2: itemCode, qty, clientRef, allocated; answers in
 * `{ data }` envelopes; errors as `{ code, message }`), unlike orderbridge's. It holds stock per item
 * in whole units and never oversells: the check and the booking run in one synchronous step, so two
 * requests cannot both take the last units. It honours `Idempotency-Key` on reservations, answers
 * 409 `INSUFFICIENT_STOCK` with `shortages: [{ itemCode, available }]`, answers a second release
 * with 409 `ALREADY_RELEASED` (many WMSs do), and sends shipment and stock events as signed
 * Standard Webhooks. Auth: `X-Api-Key`, `Authorization: Bearer <key>` or HTTP Basic. The stock and
 * reservations are the kit's stock book (simulator-stock.ts); this file maps its own API and names
 * onto it. State lives in memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import { createWebhookOutbox, type WebhookDelivery, type WebhookTarget } from '../../src/connector-kit/simulator-webhooks.ts'
import {
  createIdempotencyStore,
  createSimulatorTimers,
  createStockBook,
  type RequestedStockLine,
  type StockBookLevel,
  type StockBookRefusal,
  type StockBookReservation,
  type StockBookStatus,
} from '../../src/connector-kit/simulator-stock.ts'

export const simulatorApiPrefix = '/api/v2'

export interface AcmeStockLevel {
  itemCode: string
  warehouse: string
  onHand: number
  allocated: number
  available: number
}

export interface AcmeReservationItem {
  lineRef?: string
  itemCode: string
  qty: number
  /** What is held (or shipped); below `qty` only when backorders were allowed. */
  allocated: number
}

export type AcmeReservationStatus = 'OPEN' | 'RELEASED' | 'SHIPPED' | 'DELIVERED'

export interface AcmeReservation {
  id: string
  clientRef: string
  warehouse: string
  status: AcmeReservationStatus
  allowBackorder: boolean
  items: AcmeReservationItem[]
  createdAt: string
  updatedAt: string
  shipment?: { carrierName: string; trackingNo: string; shippedAt: string; deliveredAt?: string }
}

/** The WMS's webhook bodies. */
export type AcmeWebhookBody =
  | {
      eventType: 'SHIPMENT_DISPATCHED'
      seq: number
      occurredAt: string
      payload: { reservationId: string; clientRef: string; carrierName: string; trackingNo: string; items: { lineRef?: string; itemCode: string; qty: number }[] }
    }
  | { eventType: 'SHIPMENT_DELIVERED'; seq: number; occurredAt: string; payload: { reservationId: string; clientRef: string; deliveredAt: string } }
  | { eventType: 'INVENTORY_CHANGED'; seq: number; occurredAt: string; payload: { reason: 'RECEIPT' | 'RELEASE'; items: AcmeStockLevel[] } }

export interface RecordedRequest {
  method: string
  /** Path and query, as sent. */
  url: string
  idempotencyKey?: string
  body: unknown
}

/** Scripted faults; `reset()` disarms everything. They apply to every route but `/ping`. */
export interface AcmeFaultControl {
  /** The next `count` requests answer `status` with this body (default `{ code: 'INJECTED_FAULT' }`) and change nothing. */
  failNext(count: number, status: number, body?: unknown, headers?: Record<string, string>): void
  /** Every answer is held this long after the request was handled: the work is done, the answer is late. */
  delayMs(ms: number): void
  reset(): void
}

export interface AcmeWmsSimulator {
  /** The server's root; the API is under `${url}/api/v2`. */
  url: string
  stock(): AcmeStockLevel[]
  reservations(): AcmeReservation[]
  /** Every request that passed auth, oldest first. */
  requests(): RecordedRequest[]
  /** A goods receipt: adds on-hand units (a new item is created) and sends `INVENTORY_CHANGED`. */
  receive(itemCode: string, qty: number): AcmeStockLevel
  /** Ships an open reservation; shipping twice ships once. Sends `SHIPMENT_DISPATCHED`. */
  ship(id: string, shipment?: { carrierName?: string; trackingNo?: string }): AcmeReservation
  /** Marks a shipped reservation delivered. Sends `SHIPMENT_DELIVERED`. */
  deliver(id: string): AcmeReservation
  setWebhookTarget(target: WebhookTarget | undefined): void
  deliveries(): WebhookDelivery<AcmeWebhookBody>[]
  flushWebhooks(): Promise<void>
  faults: AcmeFaultControl
  close(): Promise<void>
}

export interface AcmeWmsSimulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number
  /** Defaults to 127.0.0.1. */
  host?: string
  /** Accepted as `X-Api-Key: <key>` or `Authorization: Bearer <key>`. */
  apiKey: string
  /** Also accept HTTP Basic with these credentials. */
  basicAuth?: { username: string; password: string }
  /** On-hand units per item code; defaults to SKU-100 … SKU-109 with 1000 each. */
  stock?: Record<string, number>
  /** The one warehouse it runs. Default `WH-1`. */
  warehouse?: string
  /** Most item codes one inventory query may name (more: 400 `TOO_MANY_ITEMS`). Default 20. */
  maxItemCodes?: number
  /** Where to POST events; both or neither of `webhookUrl` and `webhookSecret` (`whsec_…`). */
  webhookUrl?: string
  webhookSecret?: string
  /** Ship each new reservation that holds anything this long after it was made. */
  autoShipAfterMs?: number
  /** Deliver each shipment this long after it shipped. */
  autoDeliverAfterMs?: number
  /** Carrier named on shipments that do not name one. Default `ZTO Express`. */
  carrier?: string
  webhookRetries?: number
  webhookRetryDelayMs?: number
}

export function defaultAcmeStock(): Record<string, number> {
  return Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`SKU-${100 + i}`, 1000]))
}

const itemsSchema = z
  .array(z.object({ lineRef: z.string().min(1).optional(), itemCode: z.string().min(1), qty: z.number().int().positive() }).strict())
  .min(1)
const createSchema = z
  .object({ clientRef: z.string().min(1), warehouse: z.string().min(1).optional(), allowBackorder: z.boolean().default(false), items: itemsSchema })
  .strict()
const updateSchema = z.object({ warehouse: z.string().min(1).optional(), allowBackorder: z.boolean().optional(), items: itemsSchema }).strict()
const shipSchema = z.object({ carrierName: z.string().min(1).optional(), trackingNo: z.string().min(1).optional() })
const receiptSchema = z.object({ qty: z.number().int().positive() })

type RequestedItem = z.infer<typeof itemsSchema>[number]

const acmeStatus: Record<StockBookStatus, AcmeReservationStatus> = { active: 'OPEN', released: 'RELEASED', shipped: 'SHIPPED', delivered: 'DELIVERED' }

class Refusal extends Error {
  readonly status: number
  readonly code: string
  readonly extra: Record<string, unknown>
  constructor(status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
    super(message)
    this.status = status
    this.code = code
    this.extra = extra
  }
}

/** How this WMS words each refusal of the stock book. */
function acmeRefusal(refusal: StockBookRefusal): Refusal {
  switch (refusal.reason) {
    case 'unknown_reservation':
      return new Refusal(404, 'NOT_FOUND', `no reservation ${refusal.id}`)
    case 'invalid_receipt':
      return new Refusal(400, 'VALIDATION_ERROR', 'a receipt is a positive whole number of units')
    case 'unknown_skus':
      return new Refusal(422, 'UNKNOWN_ITEM', 'the reservation names unknown items', { items: refusal.skus })
    case 'insufficient_stock': {
      const shortages = refusal.shortages.map((shortage) => ({ itemCode: shortage.sku, available: shortage.available }))
      return new Refusal(409, 'INSUFFICIENT_STOCK', 'not enough stock for every item; nothing was reserved', { shortages })
    }
    case 'not_active':
      return new Refusal(409, 'RESERVATION_NOT_OPEN', `reservation ${refusal.id} is ${acmeStatus[refusal.status]}`)
    case 'shipped':
      return new Refusal(409, 'RESERVATION_SHIPPED', `reservation ${refusal.id} has shipped and cannot be released`)
    case 'released':
      return new Refusal(409, 'RESERVATION_NOT_OPEN', `reservation ${refusal.id} was released`)
    case 'nothing_to_ship':
      return new Refusal(409, 'NOTHING_TO_SHIP', `reservation ${refusal.id} holds nothing`)
    case 'not_shipped':
      return new Refusal(409, 'NOT_SHIPPED', `reservation ${refusal.id} has not shipped`)
  }
}

function errorBody(code: string, message: string, extra: Record<string, unknown> = {}) {
  return { code, message, ...extra }
}

function stockLines(items: readonly RequestedItem[]): RequestedStockLine[] {
  return items.map((item) => ({ ...(item.lineRef !== undefined ? { lineId: item.lineRef } : {}), sku: item.itemCode, quantity: item.qty }))
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function validationErrors(error: z.ZodError) {
  return { errors: error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message })) }
}

/**
 * Starts the simulated third-party WMS.
 *
 * @example
 * const wms = await startAcmeWmsSimulator({ apiKey: 'key', stock: { 'SKU-1': 5 }, webhookUrl, webhookSecret })
 * // POST `${wms.url}/api/v2/reservations` { clientRef, items: [{ itemCode: 'SKU-1', qty: 2 }] } → 201 { data: { id } }
 * wms.ship('RES-10001') // → a signed SHIPMENT_DISPATCHED event to webhookUrl
 * await wms.close()
 */
export async function startAcmeWmsSimulator(options: AcmeWmsSimulatorOptions): Promise<AcmeWmsSimulator> {
  if ((options.webhookUrl === undefined) !== (options.webhookSecret === undefined)) throw new Error('set both webhookUrl and webhookSecret, or neither')
  const warehouse = options.warehouse ?? 'WH-1'
  const maxItemCodes = options.maxItemCodes ?? 20
  const accepted = [
    digest(`key:${options.apiKey}`),
    ...(options.basicAuth ? [digest(`basic:${Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString('base64')}`)] : []),
  ]

  const book = createStockBook({ stock: options.stock ?? defaultAcmeStock(), reservationId: (n) => `RES-${10_000 + n}`, refusal: acmeRefusal })
  const idempotency = createIdempotencyStore()
  const recorded: RecordedRequest[] = []
  const timers = createSimulatorTimers()
  const outbox = createWebhookOutbox<AcmeWebhookBody>(
    options.webhookUrl !== undefined ? { url: options.webhookUrl, secret: options.webhookSecret! } : undefined,
    { retries: options.webhookRetries, retryDelayMs: options.webhookRetryDelayMs },
  )
  let seq = 0
  let delay = 0
  let failures: { remaining: number; status: number; body: unknown; headers: Record<string, string> }[] = []

  function acmeLevel(level: StockBookLevel): AcmeStockLevel {
    return { itemCode: level.sku, warehouse, onHand: level.onHand, allocated: level.reserved, available: level.available }
  }

  /** The book's reservation in this WMS's names (a new object: safe to hand out). */
  function acmeReservation(reservation: StockBookReservation): AcmeReservation {
    const shipment = reservation.shipment
    return {
      id: reservation.id,
      clientRef: reservation.reference,
      warehouse,
      status: acmeStatus[reservation.status],
      allowBackorder: reservation.allowPartial,
      items: reservation.lines.map((line) => ({ ...(line.lineId !== undefined ? { lineRef: line.lineId } : {}), itemCode: line.sku, qty: line.quantity, allocated: line.reserved })),
      createdAt: reservation.createdAt,
      updatedAt: reservation.updatedAt,
      ...(shipment
        ? { shipment: { carrierName: shipment.carrier, trackingNo: shipment.trackingNumber, shippedAt: shipment.shippedAt, ...(shipment.deliveredAt !== undefined ? { deliveredAt: shipment.deliveredAt } : {}) } }
        : {}),
    }
  }

  function emit(body: AcmeWebhookBody extends infer T ? (T extends unknown ? Omit<T, 'seq' | 'occurredAt'> : never) : never): void {
    seq += 1
    outbox.emit({ ...body, seq, occurredAt: new Date().toISOString() } as AcmeWebhookBody)
  }

  function inventoryChanged(reason: 'RECEIPT' | 'RELEASE', itemCodes: Iterable<string>): void {
    const items = book.levels(itemCodes).map(acmeLevel)
    if (items.length > 0) emit({ eventType: 'INVENTORY_CHANGED', payload: { reason, items } })
  }

  // Many WMSs refuse a second release; this one does too.
  function release(id: string): AcmeReservation {
    const { reservation, changed } = book.release(id)
    if (!changed) throw new Refusal(409, 'ALREADY_RELEASED', `reservation ${id} was already released`)
    inventoryChanged('RELEASE', reservation.lines.map((line) => line.sku))
    return acmeReservation(reservation)
  }

  function ship(id: string, shipment: z.infer<typeof shipSchema> = {}): AcmeReservation {
    const { reservation, changed } = book.ship(id, {
      carrier: shipment.carrierName ?? options.carrier ?? 'ZTO Express',
      trackingNumber: shipment.trackingNo ?? `ZT${id.replace(/\D/g, '').padStart(10, '0')}`,
    })
    const shipped = acmeReservation(reservation)
    if (!changed) return shipped
    emit({
      eventType: 'SHIPMENT_DISPATCHED',
      payload: {
        reservationId: shipped.id,
        clientRef: shipped.clientRef,
        carrierName: shipped.shipment!.carrierName,
        trackingNo: shipped.shipment!.trackingNo,
        items: shipped.items
          .filter((item) => item.allocated > 0)
          .map((item) => ({ ...(item.lineRef !== undefined ? { lineRef: item.lineRef } : {}), itemCode: item.itemCode, qty: item.allocated })),
      },
    })
    if (options.autoDeliverAfterMs !== undefined) timers.later(options.autoDeliverAfterMs, () => deliver(id))
    return shipped
  }

  function deliver(id: string): AcmeReservation {
    const { reservation, changed } = book.deliver(id)
    if (changed) emit({ eventType: 'SHIPMENT_DELIVERED', payload: { reservationId: reservation.id, clientRef: reservation.reference, deliveredAt: reservation.shipment!.deliveredAt! } })
    return acmeReservation(reservation)
  }

  function receive(itemCode: string, qty: number): AcmeStockLevel {
    const received = acmeLevel(book.receive(itemCode, qty))
    inventoryChanged('RECEIPT', [itemCode])
    return received
  }

  function refuse(reply: FastifyReply, err: unknown): FastifyReply {
    if (!(err instanceof Refusal)) throw err
    return reply.code(err.status).send(errorBody(err.code, err.message, err.extra))
  }

  function authorized(request: FastifyRequest): boolean {
    const key = headerValue(request.headers['x-api-key'])
    const authorization = headerValue(request.headers.authorization) ?? ''
    const presented =
      key !== undefined ? `key:${key}` : authorization.startsWith('Bearer ') ? `key:${authorization.slice(7)}` : authorization.startsWith('Basic ') ? `basic:${authorization.slice(6)}` : undefined
    if (presented === undefined) return false
    const given = digest(presented)
    return accepted.some((expected) => timingSafeEqual(given, expected))
  }

  const app = Fastify({ logger: false })
  const isPing = (url: string) => url === `${simulatorApiPrefix}/ping` || url.startsWith(`${simulatorApiPrefix}/ping?`)

  app.addHook('onRequest', (request, reply, done) => {
    if (!authorized(request)) {
      void reply.code(401).send(errorBody('UNAUTHORIZED', 'missing or wrong credentials'))
      return
    }
    if (isPing(request.url)) return done()
    const failure = failures[0]
    if (!failure) return done()
    failure.remaining -= 1
    if (failure.remaining <= 0) failures.shift()
    void reply.code(failure.status).headers(failure.headers).send(failure.body)
  })

  app.addHook('preHandler', (request, _reply, done) => {
    const idempotencyKey = headerValue(request.headers['idempotency-key'])
    recorded.push({ method: request.method, url: request.url, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}), body: request.body ?? null })
    done()
  })

  app.addHook('onSend', (request, _reply, payload, done) => {
    if (delay === 0 || isPing(request.url)) return done(null, payload)
    setTimeout(() => done(null, payload), delay)
  })

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody('NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`))
  })

  app.setErrorHandler((error, _request, reply) => {
    const status = (error as { statusCode?: number }).statusCode
    if (typeof status === 'number' && status >= 400 && status < 500) return reply.code(status).send(errorBody('BAD_REQUEST', (error as Error).message))
    return reply.code(500).send(errorBody('INTERNAL', 'internal error'))
  })

  await app.register(
    async (api) => {
      api.get('/ping', async () => ({ ok: true }))

      // ?itemCodes=A,B answers those items it knows (unknown ones are left out); no filter answers all.
      api.get('/inventory', (request: FastifyRequest<{ Querystring: { itemCodes?: string | string[] } }>, reply) => {
        const filter = request.query.itemCodes
        const listed = filter === undefined ? undefined : (Array.isArray(filter) ? filter : [filter]).flatMap((value) => value.split(','))
        const codes = listed && [...new Set(listed.filter((code) => code.length > 0))]
        const levels = book.levels(codes)
        // Without a filter, every item counts.
        if ((codes ?? levels).length > maxItemCodes) return reply.code(400).send(errorBody('TOO_MANY_ITEMS', `at most ${maxItemCodes} item codes per query`))
        const data = levels.map(acmeLevel)
        return reply.send({ data, meta: { count: data.length } })
      })

      api.post('/inventory/:itemCode/receipts', (request: FastifyRequest<{ Params: { itemCode: string } }>, reply) => {
        const parsed = receiptSchema.safeParse(request.body)
        if (!parsed.success) return reply.code(400).send(errorBody('VALIDATION_ERROR', 'the receipt is invalid', validationErrors(parsed.error)))
        return reply.code(201).send({ data: receive(request.params.itemCode, parsed.data.qty) })
      })

      // From the idempotency check to the booking everything is synchronous: no other request runs
      // between "is there enough?" and "take it".
      api.post('/reservations', (request, reply) => {
        const claim = idempotency.claim(headerValue(request.headers['idempotency-key']), request.body)
        if (claim.kind === 'reused') return reply.code(422).send(errorBody('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request'))
        if (claim.kind === 'replay') return reply.code(claim.response.status).header('idempotent-replayed', 'true').type('application/json').send(claim.response.payload)
        const parsed = createSchema.safeParse(request.body)
        if (!parsed.success) return reply.code(400).send(errorBody('VALIDATION_ERROR', 'the reservation is invalid', validationErrors(parsed.error)))
        if (parsed.data.warehouse !== undefined && parsed.data.warehouse !== warehouse) {
          return reply.code(422).send(errorBody('UNKNOWN_WAREHOUSE', `no warehouse ${parsed.data.warehouse}`))
        }
        let reservation: StockBookReservation
        try {
          reservation = book.reserve({ reference: parsed.data.clientRef, allowPartial: parsed.data.allowBackorder, lines: stockLines(parsed.data.items) })
        } catch (err) {
          // A refusal is not remembered under the key: the same request may succeed once stock arrives.
          return refuse(reply, err)
        }
        const payload = JSON.stringify({ data: acmeReservation(reservation) })
        claim.remember({ status: 201, payload })
        if (options.autoShipAfterMs !== undefined && reservation.lines.some((line) => line.reserved > 0)) timers.later(options.autoShipAfterMs, () => ship(reservation.id))
        return reply.code(201).type('application/json').send(payload)
      })

      api.get('/reservations', (request: FastifyRequest<{ Querystring: { clientRef?: string } }>, reply) => {
        const clientRef = request.query.clientRef
        const data = (clientRef === undefined ? book.all() : book.byReference(clientRef)).map(acmeReservation)
        return reply.send({ data, meta: { count: data.length } })
      })

      api.get('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
        try {
          return reply.send({ data: acmeReservation(book.find(request.params.id)) })
        } catch (err) {
          return refuse(reply, err)
        }
      })

      // Replaces the items of an open reservation; what it holds counts as free for the new
      // quantities. When they do not fit it keeps what it had. Repeating it is harmless.
      api.patch('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
        const parsed = updateSchema.safeParse(request.body)
        if (!parsed.success) return reply.code(400).send(errorBody('VALIDATION_ERROR', 'the change is invalid', validationErrors(parsed.error)))
        try {
          const allowBackorder = parsed.data.allowBackorder ?? book.find(request.params.id).allowPartial
          return reply.send({ data: acmeReservation(book.replace(request.params.id, stockLines(parsed.data.items), allowBackorder)) })
        } catch (err) {
          return refuse(reply, err)
        }
      })

      api.post('/reservations/:id/release', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
        try {
          return reply.send({ data: release(request.params.id) })
        } catch (err) {
          return refuse(reply, err)
        }
      })

      // What the warehouse floor does.
      api.post('/reservations/:id/ship', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
        const parsed = shipSchema.safeParse(request.body ?? {})
        if (!parsed.success) return reply.code(400).send(errorBody('VALIDATION_ERROR', 'the shipment is invalid', validationErrors(parsed.error)))
        try {
          return reply.send({ data: ship(request.params.id, parsed.data) })
        } catch (err) {
          return refuse(reply, err)
        }
      })

      api.post('/reservations/:id/deliver', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
        try {
          return reply.send({ data: deliver(request.params.id) })
        } catch (err) {
          return refuse(reply, err)
        }
      })
    },
    { prefix: simulatorApiPrefix },
  )

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('WMS simulator is not listening on a TCP port')
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address

  return {
    url: `http://${urlHost}:${address.port}`,
    stock: () => book.levels().map(acmeLevel),
    reservations: () => book.all().map(acmeReservation),
    requests: () => structuredClone(recorded),
    receive: (itemCode, qty) => receive(itemCode, qty),
    ship: (id, shipment) => ship(id, shipment),
    deliver: (id) => deliver(id),
    setWebhookTarget: (target) => outbox.setTarget(target),
    deliveries: () => outbox.deliveries(),
    flushWebhooks: () => outbox.flush(),
    faults: {
      failNext(count, status, body = errorBody('INJECTED_FAULT', `injected HTTP ${status}`), headers = {}) {
        if (count > 0) failures.push({ remaining: count, status, body, headers })
      },
      delayMs(ms) {
        delay = Math.max(0, ms)
      },
      reset() {
        failures = []
        delay = 0
      },
    },
    async close() {
      timers.clear()
      outbox.close()
      await app.close()
    },
  }
}
