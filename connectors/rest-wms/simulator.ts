/**
 * A third-party WMS for the REST WMS connector's demo and tests: a Fastify server on loopback with
 * its own API and field names (under /api/v2: itemCode, qty, clientRef, allocated; answers in
 * `{ data }` envelopes; errors as `{ code, message }`), unlike orderbridge's. It holds stock per item
 * in whole units and never oversells: the check and the booking run in one synchronous step, so two
 * requests cannot both take the last units. It honours `Idempotency-Key` on reservations, answers
 * 409 `INSUFFICIENT_STOCK` with `shortages: [{ itemCode, available }]`, answers a second release
 * with 409 `ALREADY_RELEASED` (many WMSs do), and sends shipment and stock events as signed
 * Standard Webhooks. Auth: `X-Api-Key`, `Authorization: Bearer <key>` or HTTP Basic. State lives in
 * memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import { createWebhookOutbox, type WebhookDelivery, type WebhookTarget } from '../../src/connector-kit/simulator-webhooks.ts'

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

function errorBody(code: string, message: string, extra: Record<string, unknown> = {}) {
  return { code, message, ...extra }
}

/** JSON with object keys sorted, so two equal bodies compare equal whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
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

  const levels = new Map<string, { onHand: number; allocated: number }>()
  for (const [itemCode, onHand] of Object.entries(options.stock ?? defaultAcmeStock())) {
    if (!Number.isInteger(onHand) || onHand < 0) throw new Error(`stock for ${itemCode} must be a non-negative integer`)
    levels.set(itemCode, { onHand, allocated: 0 })
  }
  const reservations = new Map<string, AcmeReservation>()
  const responsesByKey = new Map<string, { fingerprint: string; status: number; payload: string }>()
  const recorded: RecordedRequest[] = []
  const timers = new Set<NodeJS.Timeout>()
  const outbox = createWebhookOutbox<AcmeWebhookBody>(
    options.webhookUrl !== undefined ? { url: options.webhookUrl, secret: options.webhookSecret! } : undefined,
    { retries: options.webhookRetries, retryDelayMs: options.webhookRetryDelayMs },
  )
  let counter = 10_000
  let seq = 0
  let delay = 0
  let failures: { remaining: number; status: number; body: unknown; headers: Record<string, string> }[] = []

  function level(itemCode: string): AcmeStockLevel | undefined {
    const entry = levels.get(itemCode)
    return entry && { itemCode, warehouse, onHand: entry.onHand, allocated: entry.allocated, available: entry.onHand - entry.allocated }
  }

  function later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer)
      try {
        run()
      } catch {
        // The reservation moved on (released, shipped by hand): nothing to do.
      }
    }, ms)
    timers.add(timer)
  }

  function emit(body: AcmeWebhookBody extends infer T ? (T extends unknown ? Omit<T, 'seq' | 'occurredAt'> : never) : never): void {
    seq += 1
    outbox.emit({ ...body, seq, occurredAt: new Date().toISOString() } as AcmeWebhookBody)
  }

  function inventoryChanged(reason: 'RECEIPT' | 'RELEASE', itemCodes: Iterable<string>): void {
    const items = [...new Set(itemCodes)].sort().map((code) => level(code)!)
    if (items.length > 0) emit({ eventType: 'INVENTORY_CHANGED', payload: { reason, items } })
  }

  /**
   * What `items` would hold now, counting what `heldBy` holds as free. Without backorders it refuses
   * with the items that fall short (an item on several lines counts in total); with them it fills
   * lines in order. Synchronous, and it books nothing.
   */
  function allocate(items: RequestedItem[], allowBackorder: boolean, heldBy?: AcmeReservation): AcmeReservationItem[] {
    const free = new Map<string, number>()
    for (const item of items) {
      if (free.has(item.itemCode)) continue
      const current = level(item.itemCode)
      if (!current) continue
      const own = heldBy?.items.filter((held) => held.itemCode === item.itemCode).reduce((sum, held) => sum + held.allocated, 0) ?? 0
      free.set(item.itemCode, current.available + own)
    }
    const unknown = [...new Set(items.map((item) => item.itemCode))].filter((code) => !free.has(code))
    if (unknown.length > 0) throw new Refusal(422, 'UNKNOWN_ITEM', 'the reservation names unknown items', { items: unknown })
    if (!allowBackorder) {
      const wanted = new Map<string, number>()
      for (const item of items) wanted.set(item.itemCode, (wanted.get(item.itemCode) ?? 0) + item.qty)
      const shortages = [...wanted].flatMap(([itemCode, qty]) => (qty > free.get(itemCode)! ? [{ itemCode, available: free.get(itemCode)! }] : []))
      if (shortages.length > 0) throw new Refusal(409, 'INSUFFICIENT_STOCK', 'not enough stock for every item; nothing was reserved', { shortages })
    }
    return items.map((item) => {
      const allocated = Math.min(item.qty, free.get(item.itemCode)!)
      free.set(item.itemCode, free.get(item.itemCode)! - allocated)
      return { ...(item.lineRef !== undefined ? { lineRef: item.lineRef } : {}), itemCode: item.itemCode, qty: item.qty, allocated }
    })
  }

  function book(items: readonly AcmeReservationItem[], sign: 1 | -1): void {
    for (const item of items) levels.get(item.itemCode)!.allocated += sign * item.allocated
  }

  function find(id: string): AcmeReservation {
    const reservation = reservations.get(id)
    if (!reservation) throw new Refusal(404, 'NOT_FOUND', `no reservation ${id}`)
    return reservation
  }

  function release(id: string): AcmeReservation {
    const reservation = find(id)
    if (reservation.status === 'RELEASED') throw new Refusal(409, 'ALREADY_RELEASED', `reservation ${id} was already released`)
    if (reservation.status !== 'OPEN') throw new Refusal(409, 'RESERVATION_SHIPPED', `reservation ${id} has shipped and cannot be released`)
    book(reservation.items, -1)
    reservation.status = 'RELEASED'
    reservation.updatedAt = new Date().toISOString()
    inventoryChanged('RELEASE', reservation.items.map((item) => item.itemCode))
    return reservation
  }

  function ship(id: string, shipment: z.infer<typeof shipSchema> = {}): AcmeReservation {
    const reservation = find(id)
    if (reservation.status === 'SHIPPED' || reservation.status === 'DELIVERED') return reservation
    if (reservation.status === 'RELEASED') throw new Refusal(409, 'RESERVATION_NOT_OPEN', `reservation ${id} was released`)
    if (reservation.items.every((item) => item.allocated === 0)) throw new Refusal(409, 'NOTHING_TO_SHIP', `reservation ${id} holds nothing`)
    for (const item of reservation.items) {
      const entry = levels.get(item.itemCode)!
      entry.onHand -= item.allocated
      entry.allocated -= item.allocated
    }
    const now = new Date().toISOString()
    reservation.status = 'SHIPPED'
    reservation.updatedAt = now
    reservation.shipment = {
      carrierName: shipment.carrierName ?? options.carrier ?? 'ZTO Express',
      trackingNo: shipment.trackingNo ?? `ZT${id.replace(/\D/g, '').padStart(10, '0')}`,
      shippedAt: now,
    }
    emit({
      eventType: 'SHIPMENT_DISPATCHED',
      payload: {
        reservationId: reservation.id,
        clientRef: reservation.clientRef,
        carrierName: reservation.shipment.carrierName,
        trackingNo: reservation.shipment.trackingNo,
        items: reservation.items
          .filter((item) => item.allocated > 0)
          .map((item) => ({ ...(item.lineRef !== undefined ? { lineRef: item.lineRef } : {}), itemCode: item.itemCode, qty: item.allocated })),
      },
    })
    if (options.autoDeliverAfterMs !== undefined) later(options.autoDeliverAfterMs, () => deliver(id))
    return reservation
  }

  function deliver(id: string): AcmeReservation {
    const reservation = find(id)
    if (reservation.status === 'DELIVERED') return reservation
    if (reservation.status !== 'SHIPPED') throw new Refusal(409, 'NOT_SHIPPED', `reservation ${id} has not shipped`)
    const now = new Date().toISOString()
    reservation.status = 'DELIVERED'
    reservation.updatedAt = now
    reservation.shipment!.deliveredAt = now
    emit({ eventType: 'SHIPMENT_DELIVERED', payload: { reservationId: reservation.id, clientRef: reservation.clientRef, deliveredAt: now } })
    return reservation
  }

  function receive(itemCode: string, qty: number): AcmeStockLevel {
    if (!Number.isInteger(qty) || qty <= 0) throw new Refusal(400, 'VALIDATION_ERROR', 'a receipt is a positive whole number of units')
    const entry = levels.get(itemCode)
    if (entry) entry.onHand += qty
    else levels.set(itemCode, { onHand: qty, allocated: 0 })
    inventoryChanged('RECEIPT', [itemCode])
    return level(itemCode)!
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
        const codes = listed === undefined ? [...levels.keys()] : [...new Set(listed.filter((code) => code.length > 0))]
        if (codes.length > maxItemCodes) return reply.code(400).send(errorBody('TOO_MANY_ITEMS', `at most ${maxItemCodes} item codes per query`))
        const data = codes.filter((code) => levels.has(code)).sort().map((code) => level(code)!)
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
        const idempotencyKey = headerValue(request.headers['idempotency-key'])
        const fingerprint = canonicalJson(request.body)
        if (idempotencyKey !== undefined) {
          const stored = responsesByKey.get(idempotencyKey)
          if (stored && stored.fingerprint !== fingerprint) {
            return reply.code(422).send(errorBody('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request'))
          }
          if (stored) return reply.code(stored.status).header('idempotent-replayed', 'true').type('application/json').send(stored.payload)
        }
        const parsed = createSchema.safeParse(request.body)
        if (!parsed.success) return reply.code(400).send(errorBody('VALIDATION_ERROR', 'the reservation is invalid', validationErrors(parsed.error)))
        if (parsed.data.warehouse !== undefined && parsed.data.warehouse !== warehouse) {
          return reply.code(422).send(errorBody('UNKNOWN_WAREHOUSE', `no warehouse ${parsed.data.warehouse}`))
        }
        let items: AcmeReservationItem[]
        try {
          items = allocate(parsed.data.items, parsed.data.allowBackorder)
        } catch (err) {
          // A refusal is not remembered under the key: the same request may succeed once stock arrives.
          return refuse(reply, err)
        }
        book(items, 1)
        counter += 1
        const now = new Date().toISOString()
        const reservation: AcmeReservation = {
          id: `RES-${counter}`,
          clientRef: parsed.data.clientRef,
          warehouse,
          status: 'OPEN',
          allowBackorder: parsed.data.allowBackorder,
          items,
          createdAt: now,
          updatedAt: now,
        }
        reservations.set(reservation.id, reservation)
        const payload = JSON.stringify({ data: reservation })
        if (idempotencyKey !== undefined) responsesByKey.set(idempotencyKey, { fingerprint, status: 201, payload })
        if (options.autoShipAfterMs !== undefined && items.some((item) => item.allocated > 0)) later(options.autoShipAfterMs, () => ship(reservation.id))
        return reply.code(201).type('application/json').send(payload)
      })

      api.get('/reservations', (request: FastifyRequest<{ Querystring: { clientRef?: string } }>, reply) => {
        const clientRef = request.query.clientRef
        const data = [...reservations.values()].filter((reservation) => clientRef === undefined || reservation.clientRef === clientRef)
        return reply.send({ data, meta: { count: data.length } })
      })

      api.get('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
        try {
          return reply.send({ data: find(request.params.id) })
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
          const reservation = find(request.params.id)
          if (reservation.status !== 'OPEN') throw new Refusal(409, 'RESERVATION_NOT_OPEN', `reservation ${reservation.id} is ${reservation.status}`)
          const allowBackorder = parsed.data.allowBackorder ?? reservation.allowBackorder
          const items = allocate(parsed.data.items, allowBackorder, reservation)
          book(reservation.items, -1)
          book(items, 1)
          reservation.items = items
          reservation.allowBackorder = allowBackorder
          reservation.updatedAt = new Date().toISOString()
          return reply.send({ data: reservation })
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
    stock: () => [...levels.keys()].sort().map((code) => level(code)!),
    reservations: () => [...reservations.values()].map((reservation) => structuredClone(reservation)),
    requests: () => structuredClone(recorded),
    receive: (itemCode, qty) => receive(itemCode, qty),
    ship: (id, shipment) => structuredClone(ship(id, shipment)),
    deliver: (id) => structuredClone(deliver(id)),
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
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      outbox.close()
      await app.close()
    },
  }
}
