/**
 * The demo WMS: a Fastify server on loopback that holds stock per SKU and takes reservations over
 * real HTTP. A reservation is all-or-nothing and never oversells: the check and the booking run in
 * one synchronous step, so concurrent requests cannot both take the last units. State lives in
 * memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'

export interface StockLevel {
  sku: string
  onHand: number
  reserved: number
  available: number
}

export interface ReservationLine {
  sku: string
  quantity: number
}

export interface SimulatedReservation {
  id: string
  reference: string
  lines: ReservationLine[]
  status: 'active' | 'released'
  createdAt: string
}

export interface WmsSimulator {
  url: string
  /** Every SKU's stock, sorted by SKU. */
  stock(): StockLevel[]
  reservations(): SimulatedReservation[]
  close(): Promise<void>
}

export interface WmsSimulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number
  /** Defaults to 127.0.0.1. */
  host?: string
  apiToken: string
  /** On-hand quantity per SKU; defaults to SKU-100 … SKU-109 with 1000 each. */
  stock?: Record<string, number>
}

export function defaultWmsStock(): Record<string, number> {
  return Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`SKU-${100 + i}`, 1000]))
}

const reservationBodySchema = z.object({
  reference: z.string().min(1),
  lines: z.array(z.object({ sku: z.string().min(1), quantity: z.number().int().positive() })).min(1),
})

interface StoredResponse {
  fingerprint: string
  status: number
  payload: string
}

function errorBody(code: string, message: string, details?: unknown[]) {
  return { error: { code, message, ...(details ? { details } : {}) } }
}

/** JSON with object keys sorted, so two equal bodies compare equal whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * Starts the demo WMS.
 *
 * @example
 * const wms = await startWmsSimulator({ apiToken: 'demo-token', stock: { 'SKU-1': 5 } })
 * // POST `${wms.url}/reservations` { reference, lines: [{ sku: 'SKU-1', quantity: 2 }] }
 * await wms.close()
 */
export async function startWmsSimulator(options: WmsSimulatorOptions): Promise<WmsSimulator> {
  const host = options.host ?? '127.0.0.1'
  const expectedToken = digest(`Bearer ${options.apiToken}`)

  const levels = new Map<string, { onHand: number; reserved: number }>()
  for (const [sku, onHand] of Object.entries(options.stock ?? defaultWmsStock())) {
    if (!Number.isInteger(onHand) || onHand < 0) throw new Error(`stock for ${sku} must be a non-negative integer`)
    levels.set(sku, { onHand, reserved: 0 })
  }
  const reservations = new Map<string, SimulatedReservation>()
  const responsesByKey = new Map<string, StoredResponse>()
  let counter = 0

  function level(sku: string): StockLevel | undefined {
    const entry = levels.get(sku)
    return entry && { sku, onHand: entry.onHand, reserved: entry.reserved, available: entry.onHand - entry.reserved }
  }

  const app = Fastify({ logger: false, forceCloseConnections: true })

  app.addHook('onRequest', (request, reply, done) => {
    if (request.url === '/health' || request.url.startsWith('/health?')) return done()
    const given = headerValue(request.headers.authorization)
    if (given !== undefined && timingSafeEqual(digest(given), expectedToken)) return done()
    void reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('unauthorized', 'missing or wrong bearer token'))
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

  app.get('/stock', async () => [...levels.keys()].sort().map((sku) => level(sku)))

  app.get('/stock/:sku', (request: FastifyRequest<{ Params: { sku: string } }>, reply) => {
    const found = level(request.params.sku)
    if (!found) return reply.code(404).send(errorBody('not_found', `unknown SKU ${request.params.sku}`))
    return reply.send(found)
  })

  // Everything from the idempotency check to the booking is synchronous: no other request can run
  // between "is there enough?" and "take it".
  app.post('/reservations', (request: FastifyRequest, reply: FastifyReply) => {
    const idempotencyKey = headerValue(request.headers['idempotency-key'])
    const fingerprint = idempotencyKey === undefined ? '' : canonicalJson(request.body)
    if (idempotencyKey !== undefined) {
      const stored = responsesByKey.get(idempotencyKey)
      if (stored && stored.fingerprint !== fingerprint) {
        return reply.code(422).send(errorBody('idempotency_key_reused', 'this Idempotency-Key was used with a different request body'))
      }
      if (stored) return reply.code(stored.status).header('idempotent-replayed', 'true').type('application/json').send(stored.payload)
    }

    const parsed = reservationBodySchema.safeParse(request.body)
    if (!parsed.success) {
      const details = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }))
      return reply.code(422).send(errorBody('validation', 'the reservation is invalid', details))
    }
    const { reference, lines } = parsed.data

    // One SKU may appear on several lines: check the total asked for each.
    const requested = new Map<string, number>()
    for (const line of lines) requested.set(line.sku, (requested.get(line.sku) ?? 0) + line.quantity)

    const unknown = [...requested.keys()].filter((sku) => !levels.has(sku))
    if (unknown.length > 0) {
      return reply.code(422).send(errorBody('unknown_sku', 'the reservation names unknown SKUs', unknown.map((sku) => ({ sku }))))
    }
    const short = [...requested].flatMap(([sku, quantity]) => {
      const available = level(sku)!.available
      return quantity > available ? [{ sku, requested: quantity, available }] : []
    })
    if (short.length > 0) {
      // Not remembered under the key: the same request may succeed once stock arrives.
      return reply.code(409).send(errorBody('insufficient_stock', 'not enough stock for every line; nothing was reserved', short))
    }

    for (const [sku, quantity] of requested) levels.get(sku)!.reserved += quantity
    counter += 1
    const reservation: SimulatedReservation = {
      id: `RSV-${String(counter).padStart(6, '0')}`,
      reference,
      lines: lines.map((line) => ({ sku: line.sku, quantity: line.quantity })),
      status: 'active',
      createdAt: new Date().toISOString(),
    }
    reservations.set(reservation.id, reservation)
    const payload = JSON.stringify({ id: reservation.id, reference, lines: reservation.lines })
    if (idempotencyKey !== undefined) responsesByKey.set(idempotencyKey, { fingerprint, status: 201, payload })
    return reply.code(201).type('application/json').send(payload)
  })

  app.get('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const reservation = reservations.get(request.params.id)
    if (!reservation) return reply.code(404).send(errorBody('not_found', `no reservation ${request.params.id}`))
    return reply.send(reservation)
  })

  // Releasing twice releases once: the second call answers the same and changes nothing.
  app.delete('/reservations/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const reservation = reservations.get(request.params.id)
    if (!reservation) return reply.code(404).send(errorBody('not_found', `no reservation ${request.params.id}`))
    if (reservation.status === 'active') {
      for (const line of reservation.lines) levels.get(line.sku)!.reserved -= line.quantity
      reservation.status = 'released'
    }
    return reply.send(reservation)
  })

  await app.listen({ port: options.port ?? 0, host })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('WMS simulator is not listening on a TCP port')
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address

  return {
    url: `http://${urlHost}:${address.port}`,
    stock: () => [...levels.keys()].sort().map((sku) => level(sku)!),
    reservations: () => [...reservations.values()].map((reservation) => structuredClone(reservation)),
    close: () => app.close(),
  }
}
