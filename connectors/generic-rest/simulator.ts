/**
 * The demo ERP: a Fastify server on loopback that speaks the REST API the generic-rest connector
 * expects, over real HTTP, with faults that tests can script (error answers, commits whose answer is
 * lost, latency). State lives in memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'

export interface SimulatedSalesOrder {
  id: string
  reference: string
  currency: string
  lines: unknown[]
  createdAt: string
  updatedAt: string
  [field: string]: unknown
}

export interface SimulatedRequest {
  method: string
  /** The request target, query string included (like HTTP/2's `:path`). */
  path: string
  idempotencyKey?: string
}

/**
 * Random faults for chaos tests. Every request to the sales-order API (not `/health`) draws its fate
 * from a PRNG seeded with `seed`, so a failing run can be reproduced with the same seed (the fates come
 * in the same sequence; which request gets which depends on arrival order). Shares are of all requests.
 */
export interface ChaosOptions {
  /** Share answered 500, 502, 503 or 504 (no Retry-After) before the request is handled. */
  fail5xx?: number
  /** Share answered 429 with `Retry-After: retryAfterSeconds` before the request is handled. */
  tooMany?: number
  retryAfterSeconds?: number
  /**
   * Share that time out: the answer is held `hangMs` (set it above the client's timeout) and never
   * arrives in time. `afterCommitShare` of them (default half) are handled first, so a write commits
   * and only its answer is lost; the rest are dropped unhandled after the hang.
   */
  timeout?: number
  afterCommitShare?: number
  /** Of the after-commit timeouts, the share whose connection is dropped at once instead of held. Default 0. */
  dropShare?: number
  /** How long a timed-out request is held. Default 1500 ms. */
  hangMs?: number
  seed: number
}

/** What chaos injected so far, by kind. `requests` counts every request that drew a fate. */
export interface ChaosCounts {
  requests: number
  fail5xx: number
  tooMany: number
  /** Held, then dropped without being handled: nothing was written. */
  hangBeforeCommit: number
  /** Handled (a write committed), then the answer held past the client's timeout. */
  hangAfterCommit: number
  /** Handled (a write committed), then the connection dropped unanswered. */
  dropAfterCommit: number
}

/** Scripted faults; each call adds to what is already armed, `reset()` disarms everything. */
export interface FaultControl {
  /** The next `count` writes (POST/PUT) answer `status` with these headers and change nothing. */
  failNext(count: number, status: number, headers?: Record<string, string>): void
  /** The next `count` POSTs that create an order commit it, then drop the connection unanswered. */
  commitThenDrop(count: number): void
  /** Every request waits this long before it is handled. */
  delayMs(ms: number): void
  /** Random faults from now on (scripted faults still go first); replaces earlier chaos and zeroes its counts. */
  chaos(options: ChaosOptions): void
  /** What chaos has injected since it was armed. */
  injected(): ChaosCounts
  reset(): void
}

export interface ErpSimulator {
  url: string
  salesOrders(): SimulatedSalesOrder[]
  /** Every request received, in arrival order, including rejected ones. */
  requests(): SimulatedRequest[]
  faults: FaultControl
  close(): Promise<void>
}

export interface ErpSimulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number
  /** Defaults to 127.0.0.1. */
  host?: string
  apiToken: string
}

const salesOrderBodySchema = z.looseObject({
  reference: z.string().min(1),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be a 3-letter ISO 4217 code'),
  lines: z.array(z.unknown()).min(1),
})

interface StoredResponse {
  fingerprint: string
  status: number
  payload: string
}

interface ArmedFailure {
  remaining: number
  status: number
  headers: Record<string, string>
}

function errorBody(code: string, message: string, details?: { path: string; message: string }[]) {
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

function isWrite(method: string): boolean {
  return method === 'POST' || method === 'PUT'
}

/** mulberry32: small, fast and good enough to scatter faults; the same seed gives the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const noChaos = (): ChaosCounts => ({ requests: 0, fail5xx: 0, tooMany: 0, hangBeforeCommit: 0, hangAfterCommit: 0, dropAfterCommit: 0 })

type AfterCommitFate = 'hang' | 'drop'

/**
 * Starts the demo ERP.
 *
 * @example
 * const erp = await startErpSimulator({ apiToken: 'demo-token' })
 * erp.faults.failNext(1, 503, { 'retry-after': '2' })
 * // … drive the connector against erp.url …
 * await erp.close()
 */
export async function startErpSimulator(options: ErpSimulatorOptions): Promise<ErpSimulator> {
  const host = options.host ?? '127.0.0.1'
  const expectedToken = digest(`Bearer ${options.apiToken}`)

  const orders = new Map<string, SimulatedSalesOrder>()
  const idsByReference = new Map<string, Set<string>>()
  const responsesByKey = new Map<string, StoredResponse>()
  const log: SimulatedRequest[] = []
  let counter = 0
  let delay = 0
  let failures: ArmedFailure[] = []
  let drops = 0
  let chaos: { options: Required<ChaosOptions>; random: () => number } | undefined
  let chaosCounts = noChaos()
  // Requests whose answer chaos holds or drops after they were handled.
  const afterCommit = new WeakMap<FastifyRequest, AfterCommitFate>()

  function index(order: SimulatedSalesOrder): void {
    let ids = idsByReference.get(order.reference)
    if (!ids) idsByReference.set(order.reference, (ids = new Set()))
    ids.add(order.id)
  }

  function unindex(order: SimulatedSalesOrder): void {
    const ids = idsByReference.get(order.reference)
    ids?.delete(order.id)
    if (ids?.size === 0) idsByReference.delete(order.reference)
  }

  function validate(body: unknown, reply: FastifyReply): z.infer<typeof salesOrderBodySchema> | undefined {
    const parsed = salesOrderBodySchema.safeParse(body)
    if (parsed.success) return parsed.data
    const details = parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }))
    void reply.code(422).send(errorBody('validation', 'the sales order is invalid', details))
    return undefined
  }

  const app = Fastify({ logger: false, forceCloseConnections: true })

  app.addHook('onRequest', (request, reply, done) => {
    const idempotencyKey = headerValue(request.headers['idempotency-key'])
    log.push({ method: request.method, path: request.url, ...(idempotencyKey !== undefined ? { idempotencyKey } : {}) })
    const authenticate = () => {
      if (request.url === '/health' || request.url.startsWith('/health?')) return done()
      const given = headerValue(request.headers.authorization)
      if (given !== undefined && timingSafeEqual(digest(given), expectedToken)) return done()
      void reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('unauthorized', 'missing or wrong bearer token'))
    }
    if (delay > 0) setTimeout(authenticate, delay)
    else authenticate()
  })

  // After authentication and body parsing, like a failure in the ERP's application layer.
  app.addHook('preHandler', (request, reply, done) => {
    const failure = isWrite(request.method) ? failures[0] : undefined
    if (!failure) return chaosBeforeHandling(request, reply, done)
    failure.remaining -= 1
    if (failure.remaining <= 0) failures.shift()
    void reply.code(failure.status).headers(failure.headers).send(errorBody('injected_fault', `injected HTTP ${failure.status}`))
  })

  function chaosBeforeHandling(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    if (!chaos || request.url === '/health' || request.url.startsWith('/health?')) return done()
    const { options, random } = chaos
    // Two draws for every request, whatever its fate, so the sequence of fates depends on the seed only.
    const draw = random()
    const detail = random()
    chaosCounts.requests += 1
    let bound = options.fail5xx
    if (draw < bound) {
      chaosCounts.fail5xx += 1
      const status = [500, 502, 503, 504][Math.floor(detail * 4)]!
      void reply.code(status).send(errorBody('injected_fault', `injected HTTP ${status}`))
      return
    }
    bound += options.tooMany
    if (draw < bound) {
      chaosCounts.tooMany += 1
      void reply.code(429).header('retry-after', String(options.retryAfterSeconds)).send(errorBody('injected_fault', 'injected HTTP 429'))
      return
    }
    bound += options.timeout
    if (draw >= bound) return done()
    if (detail < options.afterCommitShare) {
      const fate: AfterCommitFate = detail < options.afterCommitShare * options.dropShare ? 'drop' : 'hang'
      chaosCounts[fate === 'drop' ? 'dropAfterCommit' : 'hangAfterCommit'] += 1
      afterCommit.set(request, fate)
      return done()
    }
    chaosCounts.hangBeforeCommit += 1
    reply.hijack()
    setTimeout(() => request.raw.socket.destroy(), options.hangMs)
  }

  // The request was handled (a write committed); chaos loses its answer.
  app.addHook('onSend', (request, _reply, payload, done) => {
    const fate = afterCommit.get(request)
    if (fate === undefined) return done(null, payload)
    if (fate === 'drop') {
      request.raw.socket.destroy()
      return done(null, payload)
    }
    setTimeout(() => done(null, payload), chaos?.options.hangMs ?? 0)
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

  app.post('/sales-orders', (request: FastifyRequest, reply: FastifyReply) => {
    const idempotencyKey = headerValue(request.headers['idempotency-key'])
    const fingerprint = idempotencyKey === undefined ? '' : canonicalJson(request.body)
    if (idempotencyKey !== undefined) {
      const stored = responsesByKey.get(idempotencyKey)
      if (stored && stored.fingerprint !== fingerprint) {
        return reply.code(422).send(errorBody('idempotency_key_reused', 'this Idempotency-Key was used with a different request body'))
      }
      if (stored) return reply.code(stored.status).header('idempotent-replayed', 'true').type('application/json').send(stored.payload)
    }
    const body = validate(request.body, reply)
    if (!body) return reply
    counter += 1
    const now = new Date().toISOString()
    const order: SimulatedSalesOrder = { ...body, id: `SO-${String(counter).padStart(6, '0')}`, createdAt: now, updatedAt: now }
    orders.set(order.id, order)
    index(order)
    const payload = JSON.stringify(order)
    // Like Stripe: only a request that ran is remembered, so a fixed invalid body can be sent again.
    if (idempotencyKey !== undefined) responsesByKey.set(idempotencyKey, { fingerprint, status: 201, payload })
    if (drops > 0) {
      drops -= 1
      reply.hijack()
      request.raw.socket.destroy()
      return reply
    }
    return reply.code(201).type('application/json').send(payload)
  })

  app.get('/sales-orders', (request: FastifyRequest<{ Querystring: { reference?: string | string[] } }>, reply) => {
    const raw = request.query.reference
    const reference = Array.isArray(raw) ? raw[0] : raw
    const ids = reference === undefined ? [...orders.keys()] : [...(idsByReference.get(reference) ?? [])]
    return reply.send(ids.map((id) => orders.get(id)))
  })

  app.get('/sales-orders/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const order = orders.get(request.params.id)
    if (!order) return reply.code(404).send(errorBody('not_found', `no sales order ${request.params.id}`))
    return reply.send(order)
  })

  app.put('/sales-orders/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const current = orders.get(request.params.id)
    if (!current) return reply.code(404).send(errorBody('not_found', `no sales order ${request.params.id}`))
    const body = validate(request.body, reply)
    if (!body) return reply
    const order: SimulatedSalesOrder = { ...body, id: current.id, createdAt: current.createdAt, updatedAt: new Date().toISOString() }
    unindex(current)
    orders.set(order.id, order)
    index(order)
    return reply.send(order)
  })

  // Cancelling is idempotent, as the connector expects: a second cancel answers the same.
  app.post('/sales-orders/:id/cancel', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const current = orders.get(request.params.id)
    if (!current) return reply.code(404).send(errorBody('not_found', `no sales order ${request.params.id}`))
    const order: SimulatedSalesOrder = { ...current, status: 'cancelled', cancelledAt: current.cancelledAt ?? new Date().toISOString() }
    orders.set(order.id, order)
    return reply.send(order)
  })

  await app.listen({ port: options.port ?? 0, host })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('ERP simulator is not listening on a TCP port')
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address

  return {
    url: `http://${urlHost}:${address.port}`,
    salesOrders: () => [...orders.values()].map((order) => structuredClone(order)),
    requests: () => log.map((entry) => ({ ...entry })),
    faults: {
      failNext(count, status, headers = {}) {
        if (count > 0) failures.push({ remaining: count, status, headers })
      },
      commitThenDrop(count) {
        drops += Math.max(0, count)
      },
      delayMs(ms) {
        delay = Math.max(0, ms)
      },
      chaos(options) {
        const share = (name: string, value: number | undefined, fallback = 0) => {
          const v = value ?? fallback
          if (!(v >= 0 && v <= 1)) throw new RangeError(`chaos ${name} must be a share between 0 and 1, got ${v}`)
          return v
        }
        const resolved: Required<ChaosOptions> = {
          fail5xx: share('fail5xx', options.fail5xx),
          tooMany: share('tooMany', options.tooMany),
          timeout: share('timeout', options.timeout),
          afterCommitShare: share('afterCommitShare', options.afterCommitShare, 0.5),
          dropShare: share('dropShare', options.dropShare),
          retryAfterSeconds: options.retryAfterSeconds ?? 1,
          hangMs: options.hangMs ?? 1500,
          seed: options.seed,
        }
        if (resolved.fail5xx + resolved.tooMany + resolved.timeout > 1) throw new RangeError('chaos shares add up to more than 1')
        chaos = { options: resolved, random: seededRandom(options.seed) }
        chaosCounts = noChaos()
      },
      injected: () => ({ ...chaosCounts }),
      reset() {
        failures = []
        drops = 0
        delay = 0
        chaos = undefined
        chaosCounts = noChaos()
      },
    },
    close: () => app.close(),
  }
}
