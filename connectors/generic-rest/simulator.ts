/**
 * The demo ERP: a Fastify server on loopback that speaks the REST API the generic-rest connector
 * expects, over real HTTP, with faults that tests can script (error answers, commits whose answer is
 * lost, latency). It also keeps customer credit (what each customer's open sales orders and invoices
 * add up to), invoices sales orders and registers payments, sending signed `invoice.issued` and
 * `payment.received` webhooks (see events.ts) when a webhook target is set. Money is kept exactly
 * (integers in millionths), never in floats. State lives in memory and dies with the server.
 * It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { ErpWebhookBody } from './events.ts'
import { createIdempotencyStore, type IdempotencyClaim } from '../../src/connector-kit/simulator-stock.ts'
import { createWebhookOutbox, type WebhookDelivery, type WebhookTarget } from '../../src/connector-kit/simulator-webhooks.ts'

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
  /** `GET /customers/:id/credit` answers `status` (default 503) until reset, as an unreachable credit service. */
  creditUnavailable(status?: number): void
  reset(): void
}

export interface SimulatedInvoice {
  id: string
  number: string
  salesOrderId: string
  reference: string
  customerCode: string
  currency: string
  /** Decimal strings. */
  amount: string
  paid: string
  open: string
  status: 'open' | 'partially_paid' | 'paid'
  issueDate: string
  dueDate: string
  createdAt: string
}

export interface SimulatedPayment {
  id: string
  invoiceId: string
  invoiceNumber: string
  salesOrderId: string
  reference: string
  amount: string
  currency: string
  receivedAt: string
}

/** What `GET /customers/:id/credit` answers. Amounts are decimal strings in `currency`. */
export interface SimulatedCredit {
  customerId: string
  currency: string
  limit: string
  /** Open sales orders not yet invoiced, plus what is unpaid on invoices, plus the opening balance. */
  outstanding: string
  available: string
  /** Set by hand, or because an invoice is unpaid past its due date. */
  overdue: boolean
  overdueAmount: string
}

export interface CustomerCreditSettings {
  /** Decimal string. Default 50000.00. */
  limit?: string
  /** Default CNY. */
  currency?: string
  /** What the customer owed before any order here; decimal string, default 0. */
  openingBalance?: string
  /** Marks the customer overdue whatever its invoices say. */
  overdue?: boolean
}

export interface ErpSimulator {
  url: string
  salesOrders(): SimulatedSalesOrder[]
  /** Every request received, in arrival order, including rejected ones. */
  requests(): SimulatedRequest[]
  invoices(): SimulatedInvoice[]
  payments(): SimulatedPayment[]
  /** The credit answer for a customer (its sales orders' `customerCode`). */
  credit(customerId: string): SimulatedCredit
  /** Changes a customer's credit settings, e.g. `{ overdue: true }`; the same as `PATCH /customers/:id/credit`. */
  setCredit(customerId: string, settings: CustomerCreditSettings): SimulatedCredit
  /** Invoices a sales order, like `POST /sales-orders/:id/invoice`; invoicing twice answers the first invoice. */
  invoice(salesOrderId: string, options?: { dueDate?: string }): SimulatedInvoice
  /** Registers a payment, like `POST /invoices/:id/payments`; partial payments are allowed, overpaying is not. */
  pay(invoiceId: string, amount: string): SimulatedPayment
  /** Where events go from now on; `undefined` stops sending. */
  setWebhookTarget(target: WebhookTarget | undefined): void
  deliveries(): WebhookDelivery<ErpWebhookBody>[]
  /** Resolves when every event so far was delivered or given up. */
  flushWebhooks(): Promise<void>
  faults: FaultControl
  /**
   * Bulk state for benchmarks and reconciliation tests, without HTTP, webhooks or idempotency keys:
   * each sales order gets the next id (as if POSTed), each invoice is issued for the sales order
   * it names (amount: its total unless given; paid: 0 unless given). Answers the new ids in order.
   */
  seed(state: { salesOrders?: SeedSalesOrder[]; invoices?: SeedInvoice[] }): { salesOrderIds: string[]; invoiceIds: string[] }
  /** Drift for reconciliation tests, made in the ERP's own state (no webhooks, no idempotency keys). */
  drift: ErpDriftControl
  close(): Promise<void>
}

/** A sales order to seed: the body a POST would carry, and optionally a status. */
export type SeedSalesOrder = { reference: string; currency: string; lines: unknown[]; status?: string; [field: string]: unknown }
export interface SeedInvoice {
  salesOrderId: string
  amount?: string
  paid?: string
}

/** Edits the ERP's state directly, as a person in the ERP (or a bug) would. */
export interface ErpDriftControl {
  /** Adds a sales order as if keyed in by hand (an orphan, or a duplicate of one of ours). */
  addSalesOrder(document: SeedSalesOrder): SimulatedSalesOrder
  /** Changes fields of a sales order (e.g. `{ total: '1.00' }` or `{ lines: [...] }`). */
  updateSalesOrder(id: string, patch: Record<string, unknown>): SimulatedSalesOrder
  /** Deletes a sales order; its invoices stay. */
  deleteSalesOrder(id: string): void
  /** Changes an invoice's amount, what is paid on it, or its status. */
  updateInvoice(id: string, patch: Partial<Pick<SimulatedInvoice, 'amount' | 'paid' | 'open' | 'status'>>): SimulatedInvoice
}

export interface ErpSimulatorOptions {
  /** 0 (the default) picks a free port. */
  port?: number
  /** Defaults to 127.0.0.1. */
  host?: string
  apiToken: string
  /** Credit per customer id (`customerCode` on sales orders); `default` applies to every customer. */
  credit?: { default?: CustomerCreditSettings; customers?: Record<string, CustomerCreditSettings> }
  /** Start with the credit endpoint failing: `true` answers 503, a number answers that status. */
  creditUnavailable?: boolean | number
  /** Days from issue to due date of an invoice. Default 30. */
  paymentTermsDays?: number
  /** Where to POST events; both or neither of `webhookUrl` and `webhookSecret` (`whsec_…`). */
  webhookUrl?: string
  webhookSecret?: string
  /** Invoice each new sales order this long after it was created. */
  autoInvoiceAfterMs?: number
  /** Pay each new invoice in full this long after it was issued. */
  autoPayAfterMs?: number
  /** Webhook retries after the first attempt (default 5) and the first backoff (default 200 ms, doubling). */
  webhookRetries?: number
  webhookRetryDelayMs?: number
  /** Called with each sales order created through `POST /sales-orders` (not a replayed answer), as it is stored. */
  onSalesOrderCreated?: (order: Readonly<SimulatedSalesOrder>) => void
}

const salesOrderBodySchema = z.looseObject({
  reference: z.string().min(1),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be a 3-letter ISO 4217 code'),
  lines: z.array(z.unknown()).min(1),
})

interface ArmedFailure {
  remaining: number
  status: number
  headers: Record<string, string>
}

function errorBody(code: string, message: string, details?: unknown[]) {
  return { error: { code, message, ...(details ? { details } : {}) } }
}

/** A repeated Idempotency-Key: the first answer again, or 422 when the body differs. */
function answerClaimed(reply: FastifyReply, claim: Exclude<IdempotencyClaim, { kind: 'new' }>): FastifyReply {
  if (claim.kind === 'reused') return reply.code(422).send(errorBody('idempotency_key_reused', 'this Idempotency-Key was used with a different request body'))
  return reply.code(claim.response.status).header('idempotent-replayed', 'true').type('application/json').send(claim.response.payload)
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

const microsPerUnit = 1_000_000n

/** "569.08" → 569080000n (millionths); undefined for anything but a plain decimal with at most 6 places. */
function toMicros(value: unknown): bigint | undefined {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value
  if (typeof text !== 'string') return undefined
  const match = /^(-)?(\d+)(?:\.(\d{1,6}))?$/.exec(text)
  if (!match) return undefined
  const micros = BigInt(match[2]!) * microsPerUnit + BigInt((match[3] ?? '').padEnd(6, '0'))
  return match[1] ? -micros : micros
}

/** 569080000n → "569.08": at least two decimals, more only when needed. */
function formatMoney(micros: bigint): string {
  const sign = micros < 0n ? '-' : ''
  const abs = micros < 0n ? -micros : micros
  const fraction = String(abs % microsPerUnit).padStart(6, '0').replace(/0{1,4}$/, '')
  return `${sign}${abs / microsPerUnit}.${fraction.padEnd(2, '0')}`
}

function today(): string {
  return new Date().toISOString().slice(0, 10)
}

function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10)
}

const moneyText = z.string().refine((value) => (toMicros(value) ?? 0n) > 0n, 'must be a positive decimal string such as "100.00"')
const dateText = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date such as 2026-12-31')
const invoiceBodySchema = z.object({ dueDate: dateText.optional() })
const paymentBodySchema = z.object({ amount: moneyText })
const creditPatchSchema = z.object({
  limit: z.string().refine((value) => toMicros(value) !== undefined, 'must be a decimal string').optional(),
  currency: z.string().regex(/^[A-Z]{3}$/).optional(),
  openingBalance: z.string().refine((value) => toMicros(value) !== undefined, 'must be a decimal string').optional(),
  overdue: z.boolean().optional(),
})

/** A refusal: the HTTP answer of a route, or the error thrown by the method of the same name. */
class ErpRefusal extends Error {
  readonly status: number
  readonly code: string

  constructor(status: number, code: string, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
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
  if ((options.webhookUrl === undefined) !== (options.webhookSecret === undefined)) {
    throw new Error('set both webhookUrl and webhookSecret, or neither')
  }
  const creditDefaults: Required<Omit<CustomerCreditSettings, 'overdue'>> & { overdue: boolean } = {
    limit: '50000.00',
    currency: 'CNY',
    openingBalance: '0',
    overdue: false,
    ...options.credit?.default,
  }
  const paymentTermsDays = options.paymentTermsDays ?? 30
  const creditFailure = (fault: boolean | number | undefined) => (fault === undefined || fault === false ? undefined : fault === true ? 503 : fault)

  const orders = new Map<string, SimulatedSalesOrder>()
  const customers = new Map<string, CustomerCreditSettings>(Object.entries(options.credit?.customers ?? {}))
  const invoices = new Map<string, SimulatedInvoice>()
  const invoiceIdBySalesOrder = new Map<string, string>()
  const invoiceIdsByReference = new Map<string, Set<string>>()
  const payments: SimulatedPayment[] = []
  const timers = new Set<NodeJS.Timeout>()
  const outbox = createWebhookOutbox<ErpWebhookBody>(
    options.webhookUrl !== undefined ? { url: options.webhookUrl, secret: options.webhookSecret! } : undefined,
    { retries: options.webhookRetries, retryDelayMs: options.webhookRetryDelayMs },
  )
  let creditStatus = creditFailure(options.creditUnavailable)
  let invoiceCounter = 0
  const idsByReference = new Map<string, Set<string>>()
  const idempotency = createIdempotencyStore()
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

  function later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer)
      try {
        run()
      } catch {
        // The order moved on (cancelled, paid by hand): nothing to do.
      }
    }, ms)
    timers.add(timer)
  }

  function storeInvoice(invoice: SimulatedInvoice): void {
    invoices.set(invoice.id, invoice)
    invoiceIdBySalesOrder.set(invoice.salesOrderId, invoice.id)
    let ids = invoiceIdsByReference.get(invoice.reference)
    if (!ids) invoiceIdsByReference.set(invoice.reference, (ids = new Set()))
    ids.add(invoice.id)
  }

  /** A sales order stored directly: the next id, no idempotency key, no webhook. */
  function storeSalesOrder(document: SeedSalesOrder): SimulatedSalesOrder {
    counter += 1
    const now = new Date().toISOString()
    const order: SimulatedSalesOrder = { ...document, id: `SO-${String(counter).padStart(6, '0')}`, createdAt: now, updatedAt: now }
    orders.set(order.id, order)
    index(order)
    return order
  }

  /** An invoice stored directly for a sales order, with the given amount and paid part. */
  function seedInvoice(seed: SeedInvoice): SimulatedInvoice {
    const order = orders.get(seed.salesOrderId)
    if (!order) throw new ErpRefusal(404, 'not_found', `no sales order ${seed.salesOrderId}`)
    const amount = toMicros(seed.amount ?? order.total)
    if (amount === undefined) throw new ErpRefusal(422, 'no_total', `sales order ${seed.salesOrderId} has no decimal total to invoice`)
    const paid = toMicros(seed.paid ?? '0') ?? 0n
    invoiceCounter += 1
    const serial = String(invoiceCounter).padStart(6, '0')
    const issueDate = today()
    const invoice: SimulatedInvoice = {
      id: `INV-${serial}`,
      number: `FP-${issueDate.slice(0, 4)}-${serial}`,
      salesOrderId: order.id,
      reference: order.reference,
      customerCode: typeof order.customerCode === 'string' ? order.customerCode : '',
      currency: order.currency,
      amount: formatMoney(amount),
      paid: formatMoney(paid),
      open: formatMoney(amount - paid),
      status: paid === 0n ? 'open' : paid >= amount ? 'paid' : 'partially_paid',
      issueDate,
      dueDate: addDays(issueDate, paymentTermsDays),
      createdAt: new Date().toISOString(),
    }
    storeInvoice(invoice)
    return invoice
  }

  /** A page by id (ids are issued in sequence: `${prefix}${n}`), after `after`, changed since `since`. */
  function page<T extends { updatedAt?: unknown; createdAt: string }>(
    get: (n: number) => T | undefined,
    last: number,
    query: { after?: string; since?: string; limit?: string },
  ): T[] {
    const limit = Math.min(Math.max(Number(query.limit ?? 500) || 500, 1), 5000)
    const start = query.after === undefined ? 1 : Number(/(\d+)$/.exec(query.after)?.[1] ?? 0) + 1
    const since = query.since === undefined ? undefined : Date.parse(query.since)
    const out: T[] = []
    for (let n = start; n <= last && out.length < limit; n++) {
      const item = get(n)
      if (!item) continue
      const changed = Date.parse(typeof item.updatedAt === 'string' ? item.updatedAt : item.createdAt)
      if (since !== undefined && !(changed >= since)) continue
      out.push(item)
    }
    return out
  }

  function listOf(value: string | string[] | undefined): string[] | undefined {
    if (value === undefined) return undefined
    return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).filter((v) => v.length > 0)
  }

  function creditOf(customerId: string): SimulatedCredit {
    const settings = { ...creditDefaults, ...customers.get(customerId) }
    let outstanding = toMicros(settings.openingBalance) ?? 0n
    let overdueAmount = 0n
    const now = today()
    for (const order of orders.values()) {
      if (order.customerCode !== customerId) continue
      const invoiceId = invoiceIdBySalesOrder.get(order.id)
      const invoice = invoiceId === undefined ? undefined : invoices.get(invoiceId)
      if (invoice) {
        const open = toMicros(invoice.open)!
        outstanding += open
        if (open > 0n && invoice.dueDate < now) overdueAmount += open
      } else if (order.status !== 'cancelled') {
        outstanding += toMicros(order.total) ?? 0n
      }
    }
    const limit = toMicros(settings.limit) ?? 0n
    return {
      customerId,
      currency: settings.currency,
      limit: formatMoney(limit),
      outstanding: formatMoney(outstanding),
      available: formatMoney(limit - outstanding),
      overdue: settings.overdue || overdueAmount > 0n,
      overdueAmount: formatMoney(overdueAmount),
    }
  }

  function setCredit(customerId: string, patch: CustomerCreditSettings): SimulatedCredit {
    customers.set(customerId, { ...customers.get(customerId), ...patch })
    return creditOf(customerId)
  }

  function issueInvoice(salesOrderId: string, body: z.infer<typeof invoiceBodySchema> = {}): { invoice: SimulatedInvoice; created: boolean } {
    const order = orders.get(salesOrderId)
    if (!order) throw new ErpRefusal(404, 'not_found', `no sales order ${salesOrderId}`)
    const existingId = invoiceIdBySalesOrder.get(salesOrderId)
    if (existingId !== undefined) return { invoice: invoices.get(existingId)!, created: false }
    if (order.status === 'cancelled') throw new ErpRefusal(409, 'sales_order_cancelled', `sales order ${salesOrderId} is cancelled`)
    const amount = toMicros(order.total)
    if (amount === undefined || amount <= 0n) throw new ErpRefusal(422, 'no_total', `sales order ${salesOrderId} has no positive decimal total to invoice`)
    invoiceCounter += 1
    const serial = String(invoiceCounter).padStart(6, '0')
    const issueDate = today()
    const invoice: SimulatedInvoice = {
      id: `INV-${serial}`,
      number: `FP-${issueDate.slice(0, 4)}-${serial}`,
      salesOrderId,
      reference: order.reference,
      customerCode: typeof order.customerCode === 'string' ? order.customerCode : '',
      currency: order.currency,
      amount: formatMoney(amount),
      paid: '0.00',
      open: formatMoney(amount),
      status: 'open',
      issueDate,
      dueDate: body.dueDate ?? addDays(issueDate, paymentTermsDays),
      createdAt: new Date().toISOString(),
    }
    storeInvoice(invoice)
    outbox.emit({
      event: 'invoice.issued',
      occurredAt: invoice.createdAt,
      invoice: {
        id: invoice.id,
        number: invoice.number,
        salesOrderId,
        reference: invoice.reference,
        amount: invoice.amount,
        currency: invoice.currency,
        issueDate: invoice.issueDate,
        dueDate: invoice.dueDate,
      },
    })
    if (options.autoPayAfterMs !== undefined) later(options.autoPayAfterMs, () => registerPayment(invoice.id, invoices.get(invoice.id)!.open))
    return { invoice, created: true }
  }

  function registerPayment(invoiceId: string, amountText: string): SimulatedPayment {
    const invoice = invoices.get(invoiceId)
    if (!invoice) throw new ErpRefusal(404, 'not_found', `no invoice ${invoiceId}`)
    const amount = toMicros(amountText)
    if (amount === undefined || amount <= 0n) throw new ErpRefusal(422, 'validation', 'a payment is a positive decimal amount')
    const open = toMicros(invoice.open)!
    if (amount > open) throw new ErpRefusal(422, 'overpayment', `invoice ${invoice.number} has ${invoice.open} ${invoice.currency} open`)
    const paid = toMicros(invoice.paid)! + amount
    invoice.paid = formatMoney(paid)
    invoice.open = formatMoney(open - amount)
    invoice.status = open - amount === 0n ? 'paid' : 'partially_paid'
    const payment: SimulatedPayment = {
      id: `PAY-${String(payments.length + 1).padStart(6, '0')}`,
      invoiceId,
      invoiceNumber: invoice.number,
      salesOrderId: invoice.salesOrderId,
      reference: invoice.reference,
      amount: formatMoney(amount),
      currency: invoice.currency,
      receivedAt: new Date().toISOString(),
    }
    payments.push(payment)
    outbox.emit({
      event: 'payment.received',
      occurredAt: payment.receivedAt,
      payment: { ...payment },
      invoice: { amount: invoice.amount, paid: invoice.paid, open: invoice.open, status: invoice.status },
    })
    return payment
  }

  function refuse(reply: FastifyReply, err: unknown): FastifyReply {
    if (!(err instanceof ErpRefusal)) throw err
    return reply.code(err.status).send(errorBody(err.code, err.message))
  }

  function invalid(reply: FastifyReply, what: string, error: z.ZodError): FastifyReply {
    const details = error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }))
    return reply.code(422).send(errorBody('validation', `the ${what} is invalid`, details))
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
    const claim = idempotency.claim(headerValue(request.headers['idempotency-key']), request.body)
    if (claim.kind !== 'new') return answerClaimed(reply, claim)
    const body = validate(request.body, reply)
    if (!body) return reply
    counter += 1
    const now = new Date().toISOString()
    const order: SimulatedSalesOrder = { ...body, id: `SO-${String(counter).padStart(6, '0')}`, createdAt: now, updatedAt: now }
    orders.set(order.id, order)
    index(order)
    options.onSalesOrderCreated?.(order)
    const payload = JSON.stringify(order)
    // Like Stripe: only a request that ran is remembered, so a fixed invalid body can be sent again.
    claim.remember({ status: 201, payload })
    if (options.autoInvoiceAfterMs !== undefined) later(options.autoInvoiceAfterMs, () => issueInvoice(order.id))
    if (drops > 0) {
      drops -= 1
      reply.hijack()
      request.raw.socket.destroy()
      return reply
    }
    return reply.code(201).type('application/json').send(payload)
  })

  // `?reference=` one reference; `?references=a,b,c` several at once (reconciliation);
  // `?since=&after=&limit=` a page in id order of the orders changed since (after the id `after`).
  app.get(
    '/sales-orders',
    (request: FastifyRequest<{ Querystring: { reference?: string | string[]; references?: string | string[]; since?: string; after?: string; limit?: string } }>, reply) => {
      const raw = request.query.reference
      const reference = Array.isArray(raw) ? raw[0] : raw
      const references = listOf(request.query.references)
      if (references !== undefined) return reply.send([...new Set(references)].flatMap((ref) => [...(idsByReference.get(ref) ?? [])].map((id) => orders.get(id))))
      if (reference !== undefined) return reply.send([...(idsByReference.get(reference) ?? [])].map((id) => orders.get(id)))
      if (request.query.since !== undefined || request.query.after !== undefined || request.query.limit !== undefined) {
        return reply.send(page((n) => orders.get(`SO-${String(n).padStart(6, '0')}`), counter, request.query))
      }
      return reply.send([...orders.values()])
    },
  )

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

  // Invoicing is idempotent: a second call answers the first invoice (200 instead of 201).
  app.post('/sales-orders/:id/invoice', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const body = invoiceBodySchema.safeParse(request.body ?? {})
    if (!body.success) return invalid(reply, 'invoice', body.error)
    try {
      const { invoice, created } = issueInvoice(request.params.id, body.data)
      return reply.code(created ? 201 : 200).send(invoice)
    } catch (err) {
      return refuse(reply, err)
    }
  })

  // `?salesOrderId=`; `?references=a,b,c` by our references (reconciliation); `?since=&after=&limit=` a page.
  app.get(
    '/invoices',
    (request: FastifyRequest<{ Querystring: { salesOrderId?: string; references?: string | string[]; since?: string; after?: string; limit?: string } }>, reply) => {
      const references = listOf(request.query.references)
      if (references !== undefined) return reply.send([...new Set(references)].flatMap((ref) => [...(invoiceIdsByReference.get(ref) ?? [])].map((id) => invoices.get(id))))
      if (request.query.since !== undefined || request.query.after !== undefined || request.query.limit !== undefined) {
        return reply.send(page((n) => invoices.get(`INV-${String(n).padStart(6, '0')}`), invoiceCounter, request.query))
      }
      const { salesOrderId } = request.query
      return reply.send([...invoices.values()].filter((invoice) => salesOrderId === undefined || invoice.salesOrderId === salesOrderId))
    },
  )

  app.get('/invoices/:id', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const invoice = invoices.get(request.params.id)
    if (!invoice) return reply.code(404).send(errorBody('not_found', `no invoice ${request.params.id}`))
    return reply.send(invoice)
  })

  app.get('/invoices/:id/payments', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    if (!invoices.has(request.params.id)) return reply.code(404).send(errorBody('not_found', `no invoice ${request.params.id}`))
    return reply.send(payments.filter((payment) => payment.invoiceId === request.params.id))
  })

  // A payment is a new fact each time; an Idempotency-Key makes a retried registration count once.
  app.post('/invoices/:id/payments', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const idempotencyKey = headerValue(request.headers['idempotency-key'])
    const claim = idempotency.claim(idempotencyKey === undefined ? undefined : `payment:${request.params.id}:${idempotencyKey}`, request.body)
    if (claim.kind !== 'new') return answerClaimed(reply, claim)
    const body = paymentBodySchema.safeParse(request.body)
    if (!body.success) return invalid(reply, 'payment', body.error)
    try {
      const payload = JSON.stringify(registerPayment(request.params.id, body.data.amount))
      claim.remember({ status: 201, payload })
      return reply.code(201).type('application/json').send(payload)
    } catch (err) {
      return refuse(reply, err)
    }
  })

  app.get('/customers/:id/credit', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    if (creditStatus !== undefined) return reply.code(creditStatus).send(errorBody('unavailable', 'the credit service is not available'))
    return reply.send(creditOf(request.params.id))
  })

  app.patch('/customers/:id/credit', (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const body = creditPatchSchema.safeParse(request.body)
    if (!body.success) return invalid(reply, 'credit change', body.error)
    return reply.send(setCredit(request.params.id, body.data))
  })

  await app.listen({ port: options.port ?? 0, host })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('ERP simulator is not listening on a TCP port')
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address

  return {
    url: `http://${urlHost}:${address.port}`,
    salesOrders: () => [...orders.values()].map((order) => structuredClone(order)),
    seed(state) {
      const salesOrderIds = (state.salesOrders ?? []).map((document) => storeSalesOrder(document).id)
      const invoiceIds = (state.invoices ?? []).map((invoice) => seedInvoice(invoice).id)
      return { salesOrderIds, invoiceIds }
    },
    drift: {
      addSalesOrder: (document) => structuredClone(storeSalesOrder(document)),
      updateSalesOrder(id, patch) {
        const current = orders.get(id)
        if (!current) throw new Error(`no sales order ${id}`)
        const order: SimulatedSalesOrder = { ...current, ...patch, id, updatedAt: new Date().toISOString() }
        unindex(current)
        orders.set(id, order)
        index(order)
        return structuredClone(order)
      },
      deleteSalesOrder(id) {
        const current = orders.get(id)
        if (!current) throw new Error(`no sales order ${id}`)
        unindex(current)
        orders.delete(id)
      },
      updateInvoice(id, patch) {
        const invoice = invoices.get(id)
        if (!invoice) throw new Error(`no invoice ${id}`)
        Object.assign(invoice, patch)
        return { ...invoice }
      },
    },
    requests: () => log.map((entry) => ({ ...entry })),
    invoices: () => [...invoices.values()].map((invoice) => ({ ...invoice })),
    payments: () => payments.map((payment) => ({ ...payment })),
    credit: (customerId) => creditOf(customerId),
    setCredit: (customerId, settings) => setCredit(customerId, settings),
    invoice: (salesOrderId, invoiceOptions) => ({ ...issueInvoice(salesOrderId, invoiceOptions).invoice }),
    pay: (invoiceId, amount) => ({ ...registerPayment(invoiceId, amount) }),
    setWebhookTarget: (target) => outbox.setTarget(target),
    deliveries: () => outbox.deliveries(),
    flushWebhooks: () => outbox.flush(),
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
      creditUnavailable(status = 503) {
        creditStatus = status
      },
      reset() {
        creditStatus = undefined
        failures = []
        drops = 0
        delay = 0
        chaos = undefined
        chaosCounts = noChaos()
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
