/**
 * The demo WMS: a Fastify server on loopback that holds stock per SKU (whole units) and takes
 * reservations over real HTTP. A reservation never oversells: the check and the booking run in one
 * synchronous step, so concurrent requests cannot both take the last units. It is all-or-nothing
 * unless the request allows partial lines. Reservations can be adjusted, released, shipped and
 * delivered; shipments and stock changes go out as signed Standard Webhooks in the WMS's own format
 * (see events.ts) when a webhook target is set. The stock and reservations are the kit's stock book
 * (simulator-stock.ts), whose shapes are this WMS's wire shapes; this file holds the routes, events,
 * faults and drift. State lives in memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { WmsStockChangedEvent, WmsWebhookBody } from './events.ts'
import { createWebhookOutbox, type WebhookDelivery, type WebhookTarget } from '../../src/connector-kit/simulator-webhooks.ts'
import {
  createIdempotencyStore,
  createSimulatorTimers,
  createStockBook,
  type StockBookLevel,
  type StockBookLine,
  type StockBookRefusal,
  type StockBookReservation,
  type StockBookStatus,
} from '../../src/connector-kit/simulator-stock.ts'

// This WMS answers with the stock book's own shapes.
export type StockLevel = StockBookLevel
export type ReservationLine = StockBookLine
export type ReservationStatus = StockBookStatus
export type SimulatedReservation = StockBookReservation

/** Scripted faults; `reset()` disarms everything. They apply to every route but `/health`. */
export interface WmsFaultControl {
  /** The next `count` requests answer `status` with these headers and change nothing. */
  failNext(count: number, status: number, headers?: Record<string, string>): void
  /** Every answer is held this long after the request was handled: the work is done, the answer is late. */
  delayMs(ms: number): void
  reset(): void
}

export interface WmsSimulator {
  url: string
  /** Every SKU's stock, sorted by SKU. */
  stock(): StockLevel[]
  reservations(): SimulatedReservation[]
  /** A goods receipt, like `POST /stock/:sku/receipts`: adds on-hand units (a new SKU is created) and sends `stock.changed`. */
  receive(sku: string, quantity: number): StockLevel
  /** Ships an active reservation, like `POST /reservations/:id/ship`; shipping twice ships once. */
  ship(reservationId: string, shipment?: { carrier?: string; trackingNumber?: string }): SimulatedReservation
  /** Marks a shipped reservation delivered, like `POST /reservations/:id/deliver`. */
  deliver(reservationId: string): SimulatedReservation
  /** Where events go from now on; `undefined` stops sending. */
  setWebhookTarget(target: WebhookTarget | undefined): void
  /** Every event sent (or being sent) and how its delivery went. */
  deliveries(): WebhookDelivery<WmsWebhookBody>[]
  /** Resolves when every event so far was delivered or given up. */
  flushWebhooks(): Promise<void>
  faults: WmsFaultControl
  /** Drift for reconciliation tests, made in the WMS's own state (no webhooks, no idempotency keys). */
  drift: WmsDriftControl
  close(): Promise<void>
}

/** Edits the WMS's state directly, as a person on the warehouse floor (or a bug) would. */
export interface WmsDriftControl {
  /**
   * Adds a reservation as if made by hand (an orphan, or a second one for one of our orders). An
   * active one books its units (`reserved` defaults to `quantity`; unknown SKUs are created empty).
   */
  addReservation(reservation: { reference: string; lines: { sku: string; quantity: number; reserved?: number; lineId?: string }[]; status?: ReservationStatus }): SimulatedReservation
  /** Replaces what each line of a reservation holds (`reserved`, and `quantity` when given), rebooking stock. */
  setReserved(id: string, lines: { sku: string; reserved: number; quantity?: number }[]): SimulatedReservation
}

export interface WmsSimulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number
  /** Defaults to 127.0.0.1. */
  host?: string
  apiToken: string
  /** On-hand quantity per SKU; defaults to SKU-100 … SKU-109 with 1000 each. */
  stock?: Record<string, number>
  /** Where to POST events; both or neither of `webhookUrl` and `webhookSecret` (`whsec_…`). */
  webhookUrl?: string
  webhookSecret?: string
  /** Ship each new reservation (that holds anything) this long after it was made. */
  autoShipAfterMs?: number
  /** Deliver each shipment this long after it shipped. */
  autoDeliverAfterMs?: number
  /** Send `stock.changed` for reservations too (available stock falls), not only receipts and releases. */
  announceReservations?: boolean
  /** Carrier named on shipments that do not name one. Default `SF Express`. */
  carrier?: string
  /** Webhook retries after the first attempt (default 5) and the first backoff (default 200 ms, doubling). */
  webhookRetries?: number
  webhookRetryDelayMs?: number
}

export function defaultWmsStock(): Record<string, number> {
  return Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`SKU-${100 + i}`, 1000]))
}

const linesSchema = z
  .array(z.object({ lineId: z.string().min(1).optional(), sku: z.string().min(1), quantity: z.number().int().positive() }))
  .min(1)

const reservationBodySchema = z.object({
  reference: z.string().min(1),
  allowPartial: z.boolean().default(false),
  lines: linesSchema,
})

const replaceBodySchema = z.object({ allowPartial: z.boolean().default(false), lines: linesSchema })
const shipBodySchema = z.object({ carrier: z.string().min(1).optional(), trackingNumber: z.string().min(1).optional() })
const receiptBodySchema = z.object({ quantity: z.number().int().positive() })

/** An event before the outbox stamps it with its sequence and time (per member of the union). */
type Unstamped<T> = T extends unknown ? Omit<T, 'sequence' | 'occurred_at'> : never

interface ArmedFailure {
  remaining: number
  status: number
  headers: Record<string, string>
}

/** A refusal: the HTTP answer of a route, or the error thrown by the method of the same name. */
class WmsRefusal extends Error {
  readonly status: number
  readonly code: string
  readonly details: unknown[] | undefined

  constructor(status: number, code: string, message: string, details?: unknown[]) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
  }
}

/** How this WMS words each refusal of the stock book. */
function wmsRefusal(refusal: StockBookRefusal): WmsRefusal {
  switch (refusal.reason) {
    case 'unknown_reservation':
      return new WmsRefusal(404, 'not_found', `no reservation ${refusal.id}`)
    case 'invalid_receipt':
      return new WmsRefusal(422, 'validation', 'a receipt is a positive whole number of units')
    case 'unknown_skus':
      return new WmsRefusal(422, 'unknown_sku', 'the reservation names unknown SKUs', refusal.skus.map((sku) => ({ sku })))
    case 'insufficient_stock':
      return new WmsRefusal(409, 'insufficient_stock', 'not enough stock for every line; nothing was reserved', refusal.shortages)
    case 'not_active':
      return new WmsRefusal(409, 'reservation_closed', `reservation ${refusal.id} is ${refusal.status} and cannot change`)
    case 'shipped':
      return new WmsRefusal(409, 'reservation_shipped', `reservation ${refusal.id} has shipped and cannot be released`)
    case 'released':
      return new WmsRefusal(409, 'reservation_released', `reservation ${refusal.id} was released and cannot ship`)
    case 'nothing_to_ship':
      return new WmsRefusal(409, 'nothing_to_ship', `reservation ${refusal.id} holds nothing`)
    case 'not_shipped':
      return new WmsRefusal(409, 'reservation_not_shipped', `reservation ${refusal.id} has not shipped`)
  }
}

function errorBody(code: string, message: string, details?: unknown[]) {
  return { error: { code, message, ...(details ? { details } : {}) } }
}

function reservationId(n: number): string {
  return `RSV-${String(n).padStart(6, '0')}`
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

function validationDetails(error: z.ZodError) {
  return error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }))
}

function isHealth(url: string): boolean {
  return url === '/health' || url.startsWith('/health?')
}

/**
 * Starts the demo WMS.
 *
 * @example
 * const wms = await startWmsSimulator({ apiToken: 'demo-token', stock: { 'SKU-1': 5 }, webhookUrl, webhookSecret })
 * // POST `${wms.url}/reservations` { reference, lines: [{ lineId: '1', sku: 'SKU-1', quantity: 2 }] }
 * wms.ship('RSV-000001') // → a signed `shipment.shipped` event to webhookUrl
 * await wms.close()
 */
export async function startWmsSimulator(options: WmsSimulatorOptions): Promise<WmsSimulator> {
  const host = options.host ?? '127.0.0.1'
  const expectedToken = digest(`Bearer ${options.apiToken}`)
  if ((options.webhookUrl === undefined) !== (options.webhookSecret === undefined)) {
    throw new Error('set both webhookUrl and webhookSecret, or neither')
  }

  const book = createStockBook({ stock: options.stock ?? defaultWmsStock(), reservationId, refusal: wmsRefusal })
  const idempotency = createIdempotencyStore()
  const timers = createSimulatorTimers()
  const outbox = createWebhookOutbox<WmsWebhookBody>(
    options.webhookUrl !== undefined ? { url: options.webhookUrl, secret: options.webhookSecret! } : undefined,
    { retries: options.webhookRetries, retryDelayMs: options.webhookRetryDelayMs },
  )
  let sequence = 0
  let delay = 0
  let failures: ArmedFailure[] = []

  function event(body: Unstamped<WmsWebhookBody>): void {
    sequence += 1
    outbox.emit({ ...body, sequence, occurred_at: new Date().toISOString() } as WmsWebhookBody)
  }

  function stockChanged(reason: WmsStockChangedEvent['reason'], skus: Iterable<string>): void {
    const changed = book.levels(skus)
    if (changed.length === 0) return
    event({
      type: 'stock.changed',
      reason,
      levels: changed.map((l) => ({ sku: l.sku, on_hand: l.onHand, reserved: l.reserved, available: l.available })),
    })
  }

  function listOf(value: string | string[] | undefined): string[] | undefined {
    if (value === undefined) return undefined
    return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).filter((v) => v.length > 0)
  }

  // Releasing twice releases once: the second call answers the same and changes nothing.
  function release(id: string): SimulatedReservation {
    const { reservation, changed } = book.release(id)
    if (changed) stockChanged('release', reservation.lines.map((line) => line.sku))
    return reservation
  }

  function ship(id: string, shipment: z.infer<typeof shipBodySchema> = {}): SimulatedReservation {
    const { reservation, changed } = book.ship(id, {
      carrier: shipment.carrier ?? options.carrier ?? 'SF Express',
      trackingNumber: shipment.trackingNumber ?? `SF${id.replace(/\D/g, '').padStart(10, '0')}`,
    })
    if (!changed) return reservation
    event({
      type: 'shipment.shipped',
      reservation_id: reservation.id,
      reference: reservation.reference,
      carrier: reservation.shipment!.carrier,
      tracking_number: reservation.shipment!.trackingNumber,
      lines: reservation.lines
        .filter((line) => line.reserved > 0)
        .map((line) => ({ ...(line.lineId !== undefined ? { line_id: line.lineId } : {}), sku: line.sku, quantity: line.reserved })),
    })
    if (options.autoDeliverAfterMs !== undefined) timers.later(options.autoDeliverAfterMs, () => deliver(id))
    return reservation
  }

  function deliver(id: string): SimulatedReservation {
    const { reservation, changed } = book.deliver(id)
    if (changed) event({ type: 'shipment.delivered', reservation_id: reservation.id, reference: reservation.reference, delivered_at: reservation.shipment!.deliveredAt! })
    return reservation
  }

  function receive(sku: string, quantity: number): StockLevel {
    const received = book.receive(sku, quantity)
    stockChanged('receipt', [sku])
    return received
  }

  function refuse(reply: FastifyReply, err: unknown): FastifyReply {
    if (!(err instanceof WmsRefusal)) throw err
    return reply.code(err.status).send(errorBody(err.code, err.message, err.details))
  }

  const app = Fastify({ logger: false, forceCloseConnections: true })

  app.addHook('onRequest', (request, reply, done) => {
    if (isHealth(request.url)) return done()
    const given = headerValue(request.headers.authorization)
    if (given === undefined || !timingSafeEqual(digest(given), expectedToken)) {
      void reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('unauthorized', 'missing or wrong bearer token'))
      return
    }
    const failure = failures[0]
    if (!failure) return done()
    failure.remaining -= 1
    if (failure.remaining <= 0) failures.shift()
    void reply.code(failure.status).headers(failure.headers).send(errorBody('injected_fault', `injected HTTP ${failure.status}`))
  })

  // A slow answer: the work is done, only the answer is late (a client that gives up cannot tell).
  app.addHook('onSend', (request, _reply, payload, done) => {
    if (delay === 0 || isHealth(request.url)) return done(null, payload)
    setTimeout(() => done(null, payload), delay)
  })

  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`))
  })

  app.setErrorHandler((error, _request, reply) => {
    const fastifyError = error as { statusCode?: number; code?: string; message?: string }
    const status = typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500 ? fastifyError.statusCode : 500
    if (status === 500) return reply.code(500).send(errorBody('internal', 'internal error'))
    return reply.code(status).send(errorBody(fastifyError.code ?? 'bad_request', fastifyError.message ?? 'bad request'))
  })

  app.get('/health', async () => ({ status: 'ok' }))

  // `?sku=A&sku=B` answers those SKUs it knows (unknown ones are left out); no filter answers all.
  app.get('/stock', (request: FastifyRequest<{ Querystring: { sku?: string | string[] } }>, reply) => {
    const filter = request.query.sku
    return reply.send(book.levels(filter === undefined || Array.isArray(filter) ? filter : [filter]))
  })

  app.get('/stock/:sku', (request: FastifyRequest<{ Params: { sku: string } }>, reply) => {
    const found = book.level(request.params.sku)
    if (!found) return reply.code(404).send(errorBody('not_found', `unknown SKU ${request.params.sku}`))
    return reply.send(found)
  })

  app.post('/stock/:sku/receipts', (request: FastifyRequest<{ Params: { sku: string } }>, reply) => {
    const parsed = receiptBodySchema.safeParse(request.body)
    if (!parsed.success) return reply.code(422).send(errorBody('validation', 'the receipt is invalid', validationDetails(parsed.error)))
    return reply.code(201).send(receive(request.params.sku, parsed.data.quantity))
  })

  // Everything from the idempotency check to the booking is synchronous: no other request can run
  // between "is there enough?" and "take it".
  app.post('/reservations', (request: FastifyRequest, reply: FastifyReply) => {
    const claim = idempotency.claim(headerValue(request.headers['idempotency-key']), request.body)
    if (claim.kind === 'reused') return reply.code(422).send(errorBody('idempotency_key_reused', 'this Idempotency-Key was used with a different request body'))
    if (claim.kind === 'replay') return reply.code(claim.response.status).header('idempotent-replayed', 'true').type('application/json').send(claim.response.payload)

    const parsed = reservationBodySchema.safeParse(request.body)
    if (!parsed.success) return reply.code(422).send(errorBody('validation', 'the reservation is invalid', validationDetails(parsed.error)))

    let reservation: SimulatedReservation
    try {
      reservation = book.reserve(parsed.data)
    } catch (err) {
      // A refusal is not remembered under the key: the same request may succeed once stock arrives.
      return refuse(reply, err)
    }
    const held = reservation.lines.filter((line) => line.reserved > 0)
    if (options.announceReservations) stockChanged('reservation', held.map((line) => line.sku))
    const payload = JSON.stringify(reservation)
    claim.remember({ status: 201, payload })
    if (options.autoShipAfterMs !== undefined && held.length > 0) timers.later(options.autoShipAfterMs, () => ship(reservation.id))
    return reply.code(201).type('application/json').send(payload)
  })

  // `?reference=` one reference; `?references=a,b,c` several at once (reconciliation); with
  // `status=`, `since=`, `after=` (an id) and `limit=`, a page in id order.
  app.get(
    '/reservations',
    (request: FastifyRequest<{ Querystring: { reference?: string | string[]; references?: string | string[]; status?: string; since?: string; after?: string; limit?: string } }>, reply) => {
      const raw = request.query.reference
      const reference = Array.isArray(raw) ? raw[0] : raw
      const references = listOf(request.query.references)
      if (references !== undefined) return reply.send([...new Set(references)].flatMap((ref) => book.byReference(ref)))
      const { status, since, after, limit } = request.query
      if (status === undefined && since === undefined && after === undefined && limit === undefined) {
        return reply.send(reference === undefined ? book.all() : book.byReference(reference))
      }
      const max = Math.min(Math.max(Number(limit ?? 500) || 500, 1), 5000)
      const sinceMs = since === undefined ? undefined : Date.parse(since)
      const out: SimulatedReservation[] = []
      for (let n = after === undefined ? 1 : Number(/(\d+)$/.exec(after)?.[1] ?? 0) + 1; n <= book.count() && out.length < max; n++) {
        const reservation = book.get(reservationId(n))
        if (!reservation) continue
        if (reference !== undefined && reservation.reference !== reference) continue
        if (status !== undefined && reservation.status !== status) continue
        if (sinceMs !== undefined && !(Date.parse(reservation.updatedAt) >= sinceMs)) continue
        out.push(reservation)
      }
      return reply.send(out)
    },
  )

  app.get('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const reservation = book.get(request.params.id)
    if (!reservation) return reply.code(404).send(errorBody('not_found', `no reservation ${request.params.id}`))
    return reply.send(reservation)
  })

  // Replaces the lines of an active reservation. The units it holds count as free for the new
  // quantities; when they do not fit (all-or-nothing) it keeps what it had. Repeating it is harmless.
  app.put('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const parsed = replaceBodySchema.safeParse(request.body)
    if (!parsed.success) return reply.code(422).send(errorBody('validation', 'the reservation is invalid', validationDetails(parsed.error)))
    try {
      return reply.send(book.replace(request.params.id, parsed.data.lines, parsed.data.allowPartial))
    } catch (err) {
      return refuse(reply, err)
    }
  })

  app.delete('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    try {
      return reply.send(release(request.params.id))
    } catch (err) {
      return refuse(reply, err)
    }
  })

  // Test and admin endpoints: what the warehouse floor does.
  app.post('/reservations/:id/ship', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const parsed = shipBodySchema.safeParse(request.body ?? {})
    if (!parsed.success) return reply.code(422).send(errorBody('validation', 'the shipment is invalid', validationDetails(parsed.error)))
    try {
      return reply.send(ship(request.params.id, parsed.data))
    } catch (err) {
      return refuse(reply, err)
    }
  })

  app.post('/reservations/:id/deliver', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    try {
      return reply.send(deliver(request.params.id))
    } catch (err) {
      return refuse(reply, err)
    }
  })

  await app.listen({ port: options.port ?? 0, host })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('WMS simulator is not listening on a TCP port')
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address

  return {
    url: `http://${urlHost}:${address.port}`,
    stock: () => book.levels(),
    reservations: () => book.all().map((reservation) => structuredClone(reservation)),
    drift: {
      addReservation(input) {
        const lines = input.lines.map((line) => ({ ...(line.lineId !== undefined ? { lineId: line.lineId } : {}), sku: line.sku, quantity: line.quantity, reserved: line.reserved ?? line.quantity }))
        return structuredClone(book.add({ reference: input.reference, allowPartial: false, lines, status: input.status ?? 'active' }))
      },
      setReserved: (id, changes) => structuredClone(book.setReserved(id, changes)),
    },
    receive: (sku, quantity) => receive(sku, quantity),
    ship: (id, shipment) => structuredClone(ship(id, shipment)),
    deliver: (id) => structuredClone(deliver(id)),
    setWebhookTarget: (target) => outbox.setTarget(target),
    deliveries: () => outbox.deliveries(),
    flushWebhooks: () => outbox.flush(),
    faults: {
      failNext(count, status, headers = {}) {
        if (count > 0) failures.push({ remaining: count, status, headers })
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
