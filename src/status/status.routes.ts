/**
 * Read surfaces: orders with their links and timeline, the change feed (filtered, with ETags and
 * long-polls), and what became of an accepted delivery; and the acknowledgement a system that
 * pulls orders sends back. Who may call is in src/auth/route-policy.ts; here, integration keys see
 * only their connection's orders, changes and events (404 on others) and acknowledge only for
 * their connection, and every order is answered as projectOrderFor shapes it for the reader.
 * Routes call repositories, never connectors.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Principal } from '../auth/api-keys.ts'
import { ordersVisibleTo } from '../auth/connection-scope.ts'
import { projectOrderFor } from '../auth/projection.ts'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Database } from '../db/database.ts'
import { findOrder, linksOf, timelineOf, type LinkRow, type OrderRow } from '../orders/order.repository.ts'
import { orderStates } from '../orders/order-state.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { errorBody } from '../shared/http-errors.ts'
import { headOfFeed } from './change-feed.ts'
import { changesEtag, etagMatches, mayMatch, parseTypeFilter, readChangePage, typeFilterItem, type ChangeFilter, type ChangePage } from './change-query.ts'
import { createChangeSignal, TooManyWaiters, type ChangeSignal, type ListenSource } from './change-signal.ts'
import { acknowledgeOrder } from './order-ack.ts'
import { listOrderPage } from './order-list.ts'
import { commaList, instant } from './query-params.ts'

export function parseQuery<T>(schema: z.ZodType<T>, req: FastifyRequest, reply: FastifyReply): T | undefined {
  const result = schema.safeParse(req.query)
  if (result.success) return result.data
  void reply.code(400).send(errorBody('invalid_query', 'the query string is invalid', issuesOf(result.error)))
  return undefined
}

export interface StatusRoutesOptions {
  db: Database
  /** Configured connections: an acknowledgement by an admin or ops key names one of them. */
  connections: Pick<ConnectionRegistry, 'get'>
  /** Wakes long-polls of the change feed. Default: one that polls, or listens when `listen` is given. Closed with the app. */
  changeSignal?: ChangeSignal
  /** PostgreSQL: a LISTEN connection (postgresListener) for the default signal. */
  listen?: ListenSource
  /** Long-polls allowed to wait at once per process (default 1000); beyond, 503. */
  maxWaiters?: number
}

/** The connection an integration key is limited to; undefined for every other key. */
const visibleTo = (p: Principal | undefined) => (p?.role === 'integration' ? (p.connection ?? '\u0000none') : undefined)

function orderView(order: OrderRow, links: LinkRow[]) {
  return {
    id: order.id,
    connection: order.sourceConnection,
    externalId: order.externalId,
    state: order.state,
    version: order.sourceVersion,
    revision: order.revision,
    currency: order.currency,
    total: order.total,
    paymentState: order.paymentState,
    amountPaid: order.amountPaid,
    ...(order.hold ? { hold: order.hold } : {}),
    document: order.document,
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
    links: links
      .filter((l) => l.orderId === order.id)
      .map((l) => ({ connection: l.connectionId, operation: l.operation, externalId: l.externalId, status: l.status, lastSyncedVersion: l.lastSyncedVersion, lastError: l.lastError, updatedAt: l.updatedAt })),
  }
}

export const paymentStates = ['not_invoiced', 'invoiced', 'partially_paid', 'paid'] as const

const listQuery = z.object({
  connection: z.string().min(1).optional().describe('orders from this connection or linked to it'),
  externalId: z.string().min(1).optional(),
  state: commaList(orderStates).optional().describe('one or more states, comma-separated'),
  paymentState: commaList(paymentStates).optional(),
  updatedSince: instant.optional().describe('orders whose row changed at or after this time'),
  customer: z.string().min(1).optional().describe("the document's customer.externalId"),
  needsAttention: z.enum(['true', 'false']).transform((v) => v === 'true').optional().describe('true: a link needs attention or is dead'),
  after: z.uuid().optional().describe('the cursor: `next` of the previous page'),
  limit: z.coerce.number().int().min(1).max(500).default(50),
})

/** Long-polls wait at most this long. */
export const maxWaitSeconds = 30

const changesQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  connection: z.string().min(1).optional().describe("changes of this connection or of orders from or linked to it"),
  type: z
    .string()
    .refine((v) => v.split(',').every((t) => typeFilterItem.test(t.trim())), 'expected change types or prefixes, comma-separated: order.created,sync. (or sync.*)')
    .optional(),
  wait: z.coerce.number().min(0).max(maxWaitSeconds).default(0).describe('seconds to wait for a change when there is none yet'),
})

const ackBody = z.strictObject({
  connection: z.string().min(1).max(200).optional().describe('the connection that took the order; integration keys: their own (may be left out)'),
  reference: z.string().min(1).max(200).optional().describe("the order's id in that system"),
  note: z.string().max(2000).optional(),
})

export const statusRoutes: FastifyPluginAsync<StatusRoutesOptions> = async (app, options) => {
  const { db, connections } = options
  const changeSignal = options.changeSignal ?? createChangeSignal(db, { ...(options.listen ? { listen: options.listen } : {}), maxWaiters: options.maxWaiters ?? 1000, log: app.log })
  // preClose runs before the server waits for requests in flight: waiting long-polls answer at
  // once (what they have, 200), so a SIGTERM drains in moments instead of up to maxWaitSeconds.
  app.addHook('preClose', async () => changeSignal.close())
  app.addHook('onClose', async () => changeSignal.close())

  /** The order if `principal` may see it. */
  async function visibleOrder(principal: Principal | undefined, id: string): Promise<{ order: OrderRow; links: LinkRow[] } | undefined> {
    const order = z.uuid().safeParse(id).success ? await findOrder(db, id) : undefined
    if (!order) return undefined
    const scope = visibleTo(principal)
    if (scope && !(await ordersVisibleTo(db, scope, [order.id])).has(order.id)) return undefined
    return { order, links: await linksOf(db, [order.id]) }
  }

  app.get<{ Params: { id: string } }>('/orders/:id', async (req, reply) => {
    const found = await visibleOrder(req.principal, req.params.id)
    if (!found) return reply.code(404).send(errorBody('not_found', `no order ${req.params.id}`))
    return projectOrderFor(req.principal, { ...orderView(found.order, found.links), timeline: await timelineOf(db, found.order.id) })
  })

  app.get<{ Params: { id: string } }>('/orders/:id/timeline', async (req, reply) => {
    const found = await visibleOrder(req.principal, req.params.id)
    if (!found) return reply.code(404).send(errorBody('not_found', `no order ${req.params.id}`))
    const { timeline } = projectOrderFor(req.principal, { timeline: await timelineOf(db, found.order.id) }) as { timeline: unknown[] }
    return { orderId: found.order.id, state: found.order.state, timeline }
  })

  app.get('/orders', async (req, reply) => {
    const q = parseQuery(listQuery, req, reply)
    if (!q) return reply
    const scope = visibleTo(req.principal)
    const { orders, next } = await listOrderPage(db, {
      ...(q.state ? { states: q.state } : {}),
      ...(q.paymentState ? { paymentStates: q.paymentState } : {}),
      ...(q.connection !== undefined ? { connection: q.connection } : {}),
      ...(q.externalId !== undefined ? { externalId: q.externalId } : {}),
      ...(q.updatedSince ? { updatedSince: q.updatedSince } : {}),
      ...(q.customer !== undefined ? { customer: q.customer } : {}),
      ...(q.needsAttention !== undefined ? { needsAttention: q.needsAttention } : {}),
      ...(q.after ? { after: q.after } : {}),
      ...(scope !== undefined ? { visibleTo: scope } : {}),
      limit: q.limit,
    })
    const links = await linksOf(db, orders.map((o) => o.id))
    return { orders: orders.map((o) => projectOrderFor(req.principal, orderView(o, links))), next }
  })

  app.post<{ Params: { id: string } }>('/orders/:id/ack', async (req, reply) => {
    const body = ackBody.safeParse(req.body ?? {})
    if (!body.success) return reply.code(422).send(errorBody('validation_failed', 'the acknowledgement is invalid', issuesOf(body.error)))
    const principal = req.principal!
    let connection: string
    if (principal.role === 'integration') {
      connection = principal.connection ?? ''
      if (body.data.connection !== undefined && body.data.connection !== connection) {
        return reply.code(403).send(errorBody('forbidden', `an integration key acknowledges for its own connection (${connection}) only`))
      }
    } else {
      const named = body.data.connection
      if (named === undefined || !connections.get(named)) {
        const message = named === undefined ? 'required: the configured connection that took the order' : `no configured connection "${named}"`
        return reply.code(422).send(errorBody('validation_failed', 'the acknowledgement is invalid', [{ path: 'connection', message }]))
      }
      connection = named
    }
    const found = await visibleOrder(principal, req.params.id)
    if (!found) return reply.code(404).send(errorBody('not_found', `no order ${req.params.id}`))
    const { ack, created } = await acknowledgeOrder(db, {
      orderId: found.order.id,
      connection,
      ...(body.data.reference !== undefined ? { reference: body.data.reference } : {}),
      ...(body.data.note !== undefined ? { note: body.data.note } : {}),
      by: `${principal.role} key ${principal.name}`,
    })
    return reply.code(created ? 201 : 200).send(ack)
  })

  app.get('/changes', async (req, reply) => {
    const q = parseQuery(changesQuery, req, reply)
    if (!q) return reply
    const scope = visibleTo(req.principal)
    const filter: ChangeFilter = { ...parseTypeFilter(q.type), ...(q.connection !== undefined ? { connection: q.connection } : {}), ...(scope !== undefined ? { scope } : {}) }
    let page = await readChangePage(db, q.after, q.limit, filter)
    if (!page.changes.length && q.wait > 0) {
      const waited = await longPoll(page, q.wait * 1000, q.limit, filter, reply)
      if (waited instanceof TooManyWaiters) {
        return reply.code(503).header('retry-after', '1').send(errorBody('too_many_waiters', `${waited.max} requests are waiting for changes already; poll without wait or try again`))
      }
      // Ended by shutdown: the server is waiting for this connection to go idle, so end it.
      if (waited.closing) void reply.header('connection', 'close')
      page = waited.page
    }
    const etag = changesEtag(page.next, filter)
    void reply.header('etag', etag).header('cache-control', 'private, no-cache')
    if (etagMatches(req.headers['if-none-match'], etag)) return reply.code(304).send()
    return { changes: page.changes, next: page.next, head: await headOfFeed(db) }
  })

  /**
   * Reads on from `page` until a change passes the filter, `ms` pass, the client goes away or
   * the app closes. Subscribes before reading, so a change readable after the read wakes it.
   */
  async function longPoll(page: ChangePage, ms: number, limit: number, filter: ChangeFilter, reply: FastifyReply): Promise<{ page: ChangePage; closing: boolean } | TooManyWaiters> {
    const deadline = Date.now() + ms
    const gone = new AbortController()
    const onClose = () => gone.abort()
    reply.raw.once('close', onClose)
    try {
      const waiter = await changeSignal.subscribe((change) => mayMatch(filter, change)).catch((err: unknown) => {
        if (err instanceof TooManyWaiters) return err
        throw err
      })
      if (waiter instanceof TooManyWaiters) return waiter
      try {
        for (;;) {
          page = await readChangePage(db, page.next, limit, filter)
          if (page.changes.length || gone.signal.aborted || Date.now() >= deadline) return { page, closing: false }
          // Filtered: the page stopped before the head; read on without waiting.
          if (!page.caughtUp) continue
          const outcome = await waiter.wait(deadline - Date.now(), gone.signal)
          if (outcome !== 'change') return { page, closing: outcome === 'closed' }
        }
      } finally {
        waiter.release()
      }
    } finally {
      reply.raw.off('close', onClose)
    }
  }

  app.get<{ Params: { eventId: string } }>('/events/:eventId', async (req, reply) => {
    const id = /^\d+$/.test(req.params.eventId) ? Number(req.params.eventId) : undefined
    const [event] = id === undefined ? [] : await db.query<Record<string, unknown>>(
      'select id, connection_id, event_id, event_type, external_id, source_version, received_at, status, processed_at, order_id, errors, mapping_version, first_mapping_version from inbox_events where id = $1',
      [id],
    )
    const scope = visibleTo(req.principal)
    if (!event || (scope && event.connection_id !== scope)) return reply.code(404).send(errorBody('not_found', `no event ${req.params.eventId}`))
    return {
      eventId: String(event.id),
      connection: event.connection_id,
      webhookId: event.event_id,
      type: event.event_type,
      externalId: event.external_id,
      sourceVersion: event.source_version,
      receivedAt: (event.received_at as Date).toISOString(),
      status: event.status,
      processedAt: event.processed_at ? (event.processed_at as Date).toISOString() : null,
      orderId: event.order_id,
      errors: event.errors,
      mappingVersion: event.mapping_version,
      firstMappingVersion: event.first_mapping_version,
    }
  })
}
