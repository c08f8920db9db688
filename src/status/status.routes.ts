/**
 * Read surfaces for everyone with a key: orders with their links and timeline, the change feed,
 * and what became of an accepted delivery. Routes call repositories, never connectors.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Principal } from '../auth/api-keys.ts'
import type { Database } from '../db/database.ts'
import { findOrder, linksOf, listOrders, timelineOf, type LinkRow, type OrderRow } from '../orders/order.repository.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { errorBody } from '../shared/http-errors.ts'
import { headOfFeed, readChanges } from './change-feed.ts'

export function parseQuery<T>(schema: z.ZodType<T>, req: FastifyRequest, reply: FastifyReply): T | undefined {
  const result = schema.safeParse(req.query)
  if (result.success) return result.data
  void reply.code(400).send(errorBody('invalid_query', 'the query string is invalid', issuesOf(result.error)))
  return undefined
}

const visibleTo = (p: Principal | undefined) => (p?.role === 'integration' ? (p.scope ?? '\u0000none') : undefined)

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
    document: order.document,
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
    links: links
      .filter((l) => l.orderId === order.id)
      .map((l) => ({ connection: l.connectionId, operation: l.operation, externalId: l.externalId, status: l.status, lastSyncedVersion: l.lastSyncedVersion, lastError: l.lastError, updatedAt: l.updatedAt })),
  }
}

const listQuery = z.object({
  connection: z.string().optional(),
  externalId: z.string().optional(),
  state: z.string().optional(),
  after: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
})

const changesQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
})

export const statusRoutes: FastifyPluginAsync<{ db: Database }> = async (app, { db }) => {
  app.get<{ Params: { id: string } }>('/orders/:id', async (req, reply) => {
    const order = z.uuid().safeParse(req.params.id).success ? await findOrder(db, req.params.id) : undefined
    const links = order ? await linksOf(db, [order.id]) : []
    const scope = visibleTo(req.principal)
    if (!order || (scope && order.sourceConnection !== scope && !links.some((l) => l.connectionId === scope))) {
      return reply.code(404).send(errorBody('not_found', `no order ${req.params.id}`))
    }
    return { ...orderView(order, links), timeline: await timelineOf(db, order.id) }
  })

  app.get('/orders', async (req, reply) => {
    const q = parseQuery(listQuery, req, reply)
    if (!q) return reply
    const orders = await listOrders(db, { connectionId: q.connection, externalId: q.externalId, state: q.state, after: q.after, limit: q.limit, visibleTo: visibleTo(req.principal) })
    const links = await linksOf(db, orders.map((o) => o.id))
    return { orders: orders.map((o) => orderView(o, links)), next: orders.length === q.limit ? orders.at(-1)!.id : null }
  })

  app.get('/changes', async (req, reply) => {
    const q = parseQuery(changesQuery, req, reply)
    if (!q) return reply
    const [changes, head] = await Promise.all([readChanges(db, q.after, q.limit), headOfFeed(db)])
    return { changes, next: changes.at(-1)?.seq ?? q.after, head }
  })

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
