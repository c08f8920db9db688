/**
 * The demo CRM as a running system: a small HTTP server on loopback where a person (or a script)
 * creates sales orders, which the CRM then pushes to orderbridge as signed Standard Webhooks. It can
 * also decide approvals and push them as `order.approval`, and it takes what orderbridge writes back:
 * order status (idempotent, with a history), notes and stock levels, in its own snake_case format.
 * State lives in memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import { createDemoCrmSender, sampleOrder, type DeliveryResult } from './sender.ts'
import type { DemoCrmApproval, DemoCrmOrder } from './index.ts'
import { canonicalJson } from '../../src/connector-kit/index.ts'
import { createIdempotencyStore } from '../../src/connector-kit/simulator-stock.ts'

const decimal = z.string().regex(/^-?\d+(\.\d+)?$/, 'must be a decimal string such as "199.00"')

const statusBodySchema = z.object({
  status: z.string().min(1),
  payment_status: z.string().min(1).optional(),
  erp_order_no: z.string().min(1).optional(),
  invoice_no: z.string().min(1).optional(),
  carrier: z.string().min(1).optional(),
  tracking_no: z.string().min(1).optional(),
  paid_amount: decimal.optional(),
  currency: z.string().regex(/^[A-Z]{3}$/).optional(),
  comment: z.string().optional(),
})
const noteBodySchema = z.object({ title: z.string().min(1), body: z.string() })
const stockBodySchema = z.object({
  levels: z.array(z.object({ product_code: z.string().min(1), available: decimal, on_hand: decimal.optional(), warehouse: z.string().min(1).optional() })),
})
const approvalBodySchema = z.object({
  decision: z.enum(['approved', 'rejected']),
  level: z.string().min(1).optional(),
  comment: z.string().optional(),
  approver: z.string().min(1).optional(),
})
const createBody = z.object({ count: z.number().int().min(1).max(1000).default(1) })

export type CrmOrderStatus = z.infer<typeof statusBodySchema> & { updated_at: string }

export interface CrmOrderStatuses {
  orderId: string
  current: CrmOrderStatus
  /** Every distinct status in the order it arrived; a repeated update adds nothing. */
  history: CrmOrderStatus[]
}

export interface CrmNote {
  id: string
  order_id: string
  title: string
  body: string
  created_at: string
}

export interface CrmStockLevel {
  product_code: string
  available: string
  on_hand?: string
  warehouse?: string
  updated_at: string
}

/** Scripted faults on the writeback routes (status, notes, stock); `reset()` disarms everything. */
export interface CrmFaultControl {
  /** The next `count` writeback requests answer `status` with these headers and change nothing. */
  failNext(count: number, status: number, headers?: Record<string, string>): void
  /** Every writeback answer is held this long after the request was handled. */
  delayMs(ms: number): void
  reset(): void
}

export interface CrmSimulator {
  url: string
  orders(): { order: DemoCrmOrder; delivery: DeliveryResult }[]
  /** What orderbridge wrote back, per CRM order id. */
  statuses(): CrmOrderStatuses[]
  notes(): CrmNote[]
  /** Stock levels pushed to the CRM, sorted by product code and warehouse. */
  stock(): CrmStockLevel[]
  /** Decides an approval in the CRM and pushes it as `order.approval`, like `POST /orders/:id/approval`. */
  approve(orderId: string, decision: DemoCrmApproval['decision'], extra?: Omit<DemoCrmApproval, 'order_id' | 'decision'>): Promise<DeliveryResult>
  faults: CrmFaultControl
  /** Drift for reconciliation tests: sets (or, with `undefined`, forgets) the status an order shows, as a person in the CRM would. */
  setStatus(orderId: string, status: Omit<CrmOrderStatus, 'updated_at'> | undefined): void
  close(): Promise<void>
}

export interface CrmSimulatorOptions {
  webhookUrl: string
  /** The Standard Webhooks secret deliveries are signed with (`whsec_…`). */
  secret: string
  port?: number
  host?: string
  /** When set, the writeback routes (status, notes, stock) need `Authorization: Bearer <apiToken>`. */
  apiToken?: string
  /** CRM-run approval: decide every order created here this long (default 0 ms) after it was delivered. */
  approval?: { decision: DemoCrmApproval['decision']; afterMs?: number; level?: string; approver?: string }
  /** Delivery retries after the first attempt (default 5). */
  retries?: number
}

interface ArmedFailure {
  remaining: number
  status: number
  headers: Record<string, string>
}

function errorBody(code: string, message: string, details?: unknown[]) {
  return { error: { code, message, ...(details ? { details } : {}) } }
}

function invalid(reply: FastifyReply, what: string, error: z.ZodError): FastifyReply {
  const details = error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }))
  return reply.code(422).send(errorBody('validation', `the ${what} is invalid`, details))
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * Starts the demo CRM.
 *
 * @example
 * const crm = await startCrmSimulator({ webhookUrl: `${orderbridge}/webhooks/demo-crm`, secret, apiToken: 'crm-token' })
 * // POST `${crm.url}/orders` { count: 2 } → two signed order.created deliveries
 * await crm.approve('SO-1001', 'approved', { level: 'sales_manager' })
 * crm.statuses() // what orderbridge wrote back
 */
export async function startCrmSimulator(options: CrmSimulatorOptions): Promise<CrmSimulator> {
  const sender = createDemoCrmSender({ webhookUrl: options.webhookUrl, secret: options.secret, retries: options.retries })
  const expectedToken = options.apiToken === undefined ? undefined : digest(`Bearer ${options.apiToken}`)
  const orders: { order: DemoCrmOrder; delivery: DeliveryResult }[] = []
  const statuses = new Map<string, CrmOrderStatuses>()
  const notes: CrmNote[] = []
  const stock = new Map<string, CrmStockLevel>()
  const idempotency = createIdempotencyStore()
  const timers = new Set<NodeJS.Timeout>()
  let failures: ArmedFailure[] = []
  let delay = 0

  function approve(orderId: string, decision: DemoCrmApproval['decision'], extra: Omit<DemoCrmApproval, 'order_id' | 'decision'> = {}): Promise<DeliveryResult> {
    return sender.sendApproval({ order_id: orderId, decision, ...extra, decided_at: extra.decided_at ?? new Date().toISOString() })
  }

  /** The writeback routes' guard: the bearer token (when configured), then any armed fault. */
  function writeback(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    if (expectedToken !== undefined) {
      const given = headerValue(request.headers.authorization)
      if (given === undefined || !timingSafeEqual(digest(given), expectedToken)) {
        void reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('unauthorized', 'missing or wrong bearer token'))
        return
      }
    }
    const failure = failures[0]
    if (!failure) return done()
    failure.remaining -= 1
    if (failure.remaining <= 0) failures.shift()
    void reply.code(failure.status).headers(failure.headers).send(errorBody('injected_fault', `injected HTTP ${failure.status}`))
  }

  /**
   * Runs a write once per Idempotency-Key (Stripe-style): a retry with the same key and body gets the
   * first answer and changes nothing; the same key with another body is a 422. An invalid body is
   * answered 422 and not remembered.
   */
  function once<T>(
    request: FastifyRequest,
    reply: FastifyReply,
    scope: string,
    what: string,
    schema: z.ZodType<T>,
    run: (body: T) => { status: number; body: unknown },
  ): FastifyReply {
    const key = headerValue(request.headers['idempotency-key'])
    const claim = idempotency.claim(key === undefined ? undefined : `${scope}:${key}`, request.body)
    if (claim.kind === 'reused') return reply.code(422).send(errorBody('idempotency_key_reused', 'this Idempotency-Key was used with a different request body'))
    if (claim.kind === 'replay') return reply.code(claim.response.status).header('idempotent-replayed', 'true').type('application/json').send(claim.response.payload)
    const body = schema.safeParse(request.body)
    if (!body.success) return invalid(reply, what, body.error)
    const outcome = run(body.data)
    const payload = JSON.stringify(outcome.body)
    claim.remember({ status: outcome.status, payload })
    return reply.code(outcome.status).type('application/json').send(payload)
  }

  const app = Fastify({ logger: false, forceCloseConnections: true })

  // A slow writeback answer: the work is done, only the answer is late.
  app.addHook('onSend', (request, _reply, payload, done) => {
    if (delay === 0 || !(request.routeOptions.config as { writeback?: boolean } | undefined)?.writeback) return done(null, payload)
    setTimeout(() => done(null, payload), delay)
  })

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/orders', async () => orders)
  // Creates sample orders in the CRM; each is delivered to orderbridge before this answers.
  app.post('/orders', async (req, reply) => {
    const body = createBody.safeParse(req.body ?? {})
    if (!body.success) return reply.code(422).send({ error: { code: 'validation', message: body.error.issues[0]?.message } })
    const created = []
    for (let i = 0; i < body.data.count; i++) {
      const order = sampleOrder(orders.length + 1, `SO-${1001 + orders.length}`)
      const delivery = await sender.send('order.created', order)
      orders.push({ order, delivery })
      created.push({ orderId: order.order_id, delivery })
      const auto = options.approval
      if (auto) {
        const timer = setTimeout(() => {
          timers.delete(timer)
          approve(order.order_id, auto.decision, { level: auto.level, approver: auto.approver }).catch(() => {})
        }, auto.afterMs ?? 0)
        timers.add(timer)
      }
    }
    return reply.code(201).send(created)
  })

  // An approver decides in the CRM; the decision is pushed to orderbridge before this answers.
  app.post('/orders/:id/approval', async (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const body = approvalBodySchema.safeParse(request.body)
    if (!body.success) return invalid(reply, 'approval', body.error)
    const { decision, ...extra } = body.data
    return reply.send({ orderId: request.params.id, decision, delivery: await approve(request.params.id, decision, extra) })
  })

  const writebackRoute = { onRequest: writeback, config: { writeback: true } }

  // Replaces the order's status. The same status again (a retry, or the same key) changes nothing.
  app.put('/orders/:id/status', writebackRoute, (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const orderId = request.params.id
    return once(request, reply, `status:${orderId}`, 'status', statusBodySchema, (body) => {
      const known = statuses.get(orderId)
      const { updated_at: _at, ...current } = known?.current ?? { updated_at: '' }
      if (!known || canonicalJson(current) !== canonicalJson(body)) {
        const status: CrmOrderStatus = { ...body, updated_at: new Date().toISOString() }
        if (known) {
          known.current = status
          known.history.push(status)
        } else {
          statuses.set(orderId, { orderId, current: status, history: [status] })
        }
      }
      return { status: 200, body: { order_id: orderId, ...statuses.get(orderId)!.current } }
    })
  })

  // Reconciliation: the current status of several orders at once; orders without one are left out.
  app.get('/statuses', writebackRoute, (request: FastifyRequest<{ Querystring: { order_ids?: string | string[] } }>, reply) => {
    const raw = request.query.order_ids
    const ids = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).flatMap((v) => v.split(',')).filter((v) => v.length > 0)
    return reply.send([...new Set(ids)].flatMap((id) => {
      const known = statuses.get(id)
      return known ? [{ order_id: id, ...known.current }] : []
    }))
  })

  app.get('/orders/:id/status', writebackRoute, (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const known = statuses.get(request.params.id)
    if (!known) return reply.code(404).send(errorBody('not_found', `no status for order ${request.params.id}`))
    return reply.send({ order_id: known.orderId, ...known.current, history: known.history })
  })

  // A note is new each time; the Idempotency-Key makes a retried one count once.
  app.post('/orders/:id/notes', writebackRoute, (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const orderId = request.params.id
    return once(request, reply, `note:${orderId}`, 'note', noteBodySchema, (body) => {
      const note: CrmNote = { id: `NOTE-${String(notes.length + 1).padStart(6, '0')}`, order_id: orderId, ...body, created_at: new Date().toISOString() }
      notes.push(note)
      return { status: 201, body: note }
    })
  })

  // Sets the levels it names (per product and warehouse) and leaves the others; repeating it is harmless.
  app.put('/stock', writebackRoute, (request, reply) => {
    const body = stockBodySchema.safeParse(request.body)
    if (!body.success) return invalid(reply, 'stock update', body.error)
    const now = new Date().toISOString()
    for (const level of body.data.levels) stock.set(`${level.product_code}\u0000${level.warehouse ?? ''}`, { ...level, updated_at: now })
    return reply.send({ updated: body.data.levels.length })
  })

  const address = await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  return {
    url: address,
    orders: () => orders,
    statuses: () => [...statuses.values()].map((entry) => structuredClone(entry)),
    notes: () => notes.map((note) => ({ ...note })),
    stock: () => [...stock.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, level]) => ({ ...level })),
    approve,
    setStatus(orderId, status) {
      if (status === undefined) return void statuses.delete(orderId)
      const current: CrmOrderStatus = { ...status, updated_at: new Date().toISOString() }
      const known = statuses.get(orderId)
      if (known) {
        known.current = current
        known.history.push(current)
      } else statuses.set(orderId, { orderId, current, history: [current] })
    },
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
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await app.close()
    },
  }
}
