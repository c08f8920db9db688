/**
 * Everything that needs a person, as one list read from the database: sync links that are dead
 * letters or need attention, and inbox events that need attention. An item's id names its row
 * (`link:<order>:<connection>:<operation>`, `event:<inbox id>`), so it stays valid while the item is
 * open and needs no table of its own. Reads only; failure-actions.ts changes the rows.
 */
import type { Queryable } from '../db/database.ts'
import type { FailureKind } from '../connector-kit/index.ts'

/** What the list can be filtered on; `resolved` covers resolved links and dismissed events. */
export const failureStatuses = ['dead', 'needs_attention', 'resolved'] as const
export type FailureStatus = (typeof failureStatuses)[number]

/** The link statuses that a replay or a resolve acts on. */
export const openLinkStatuses = ['dead', 'needs_attention'] as const

export type FailureRef = { type: 'link'; orderId: string; connectionId: string; operation: string } | { type: 'event'; inboxId: number }

export const linkFailureId = (l: { orderId: string; connectionId: string; operation: string }) => `link:${l.orderId}:${l.connectionId}:${l.operation}`
export const eventFailureId = (inboxId: number) => `event:${inboxId}`

const linkIdPattern = /^link:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([a-z0-9][a-z0-9-]*):([A-Za-z0-9_.-]+)$/
const eventIdPattern = /^event:([1-9]\d{0,15})$/

export function parseFailureId(id: string): FailureRef | undefined {
  const link = linkIdPattern.exec(id)
  if (link) return { type: 'link', orderId: link[1]!, connectionId: link[2]!, operation: link[3]! }
  const event = eventIdPattern.exec(id)
  const inboxId = event ? Number(event[1]) : undefined
  return inboxId !== undefined && Number.isSafeInteger(inboxId) ? { type: 'event', inboxId } : undefined
}

/** Where the next page starts: the last item's time (microseconds, as Postgres keeps it) and id. */
export interface FailureCursor {
  atMicros: number
  id: string
}

export const encodeCursor = (c: FailureCursor) => Buffer.from(`${c.atMicros}|${c.id}`, 'utf8').toString('base64url')

export function decodeCursor(text: string): FailureCursor | undefined {
  const decoded = Buffer.from(text, 'base64url').toString('utf8')
  const bar = decoded.indexOf('|')
  const atMicros = Number(decoded.slice(0, bar))
  const id = decoded.slice(bar + 1)
  return bar > 0 && Number.isSafeInteger(atMicros) && parseFailureId(id) ? { atMicros, id } : undefined
}

export interface FailureFilter {
  connection?: string
  kind?: FailureKind
  /** Unset: the open items (dead and needs_attention). */
  status?: FailureStatus
  since?: Date
  /** Items that changed after this are left out (a bulk replay's snapshot). */
  until?: Date
  /** One item by id. */
  id?: string
}

export interface Resolution {
  reason: string | null
  actor: string
  at: string
}

interface FailureBase {
  id: string
  connection: string
  status: string
  kind: string | null
  message: string
  /** When the item reached its status. */
  updatedAt: string
  orderId: string | null
  /** The CRM's order number. */
  externalId: string | null
  sourceVersion: number | null
  resolution: Resolution | null
}

export interface LinkFailure extends FailureBase {
  type: 'link'
  operation: string
  httpStatus: number | null
  /** The target's id for the order, once it has one. */
  targetExternalId: string | null
  /** Calls made to the target for the order's current version. */
  attempts: number
}

export interface EventFailure extends FailureBase {
  type: 'event'
  /** The inbox id, as in GET /api/v1/events/:eventId. */
  eventId: string
  webhookId: string
  eventType: string
  errors: string[]
  mappingVersion: number | null
}

export type Failure = LinkFailure | EventFailure

const statusesFor = (status: FailureStatus | undefined): { links: string[]; events: string[] } => {
  if (status === 'dead') return { links: ['dead'], events: [] }
  if (status === 'needs_attention') return { links: ['needs_attention'], events: ['needs_attention'] }
  if (status === 'resolved') return { links: ['resolved'], events: ['dismissed'] }
  return { links: [...openLinkStatuses], events: ['needs_attention'] }
}

// One row shape for both arms, so the union can be filtered, sorted and paged as one list.
const failuresSql = `
  select 'link:' || l.order_id || ':' || l.connection_id || ':' || l.operation as id, 'link' as type,
         l.connection_id as connection, l.status, l.last_error->>'kind' as kind, l.last_error->>'message' as message,
         l.updated_at as at, l.order_id, o.external_id, o.source_version,
         l.operation, (l.last_error->>'httpStatus')::int as http_status, l.external_id as target_external_id,
         null::int8 as inbox_id, null::text as webhook_id, null::text as event_type, null::jsonb as errors, null::int as mapping_version
  from links l join orders o on o.id = l.order_id
  where l.status = any($3::text[])
  union all
  select 'event:' || e.id, 'event', e.connection_id, e.status, 'data', coalesce(e.errors->>0, 'the event cannot be processed as it is'),
         coalesce(e.processed_at, e.received_at), e.order_id, e.external_id, e.source_version,
         null, null, null,
         e.id, e.event_id, e.event_type, e.errors, e.mapping_version
  from inbox_events e
  where e.status = any($4::text[])`

const filterSql = `($1::text is null or f.connection = $1) and ($2::text is null or f.kind = $2)
    and ($5::timestamptz is null or f.at >= $5) and ($6::timestamptz is null or f.at <= $6) and ($7::text is null or f.id = $7)`

const filterParams = (filter: FailureFilter) => {
  const statuses = statusesFor(filter.status)
  return [filter.connection ?? null, filter.kind ?? null, statuses.links, statuses.events, filter.since ?? null, filter.until ?? null, filter.id ?? null]
}

/** Newest first; `after` continues from the last item of the previous page. */
export async function listFailures(db: Queryable, filter: FailureFilter & { limit: number; after?: FailureCursor }): Promise<{ failures: Failure[]; next: string | null }> {
  const rows = await db.query<Record<string, unknown>>(
    `with page as (
       select f.*, (extract(epoch from f.at) * 1000000)::int8 as at_micros from (${failuresSql}) f
       where ${filterSql}
         and ($8::int8 is null or (f.at, f.id) < (timestamptz 'epoch' + $8::int8 * interval '1 microsecond', $9::text))
       order by f.at desc, f.id desc limit $10
     )
     select p.*,
       case when p.type = 'link' then (
         select count(*)::int from sync_attempts a
         where a.order_id = p.order_id and a.connection_id = p.connection and a.operation = p.operation and a.source_version = p.source_version
       ) end as attempts,
       case when p.status in ('resolved', 'dismissed') then (
         select jsonb_build_object('reason', a.after->>'reason', 'actor', a.actor, 'at', a.at) from audit_log a
         where a.subject = p.id and a.action in ('link.resolved', 'event.dismissed') order by a.id desc limit 1
       ) end as resolution
     from page p order by p.at desc, p.id desc`,
    [...filterParams(filter), filter.after?.atMicros ?? null, filter.after?.id ?? null, filter.limit],
  )
  const failures = rows.map(toFailure)
  const last = rows.at(-1)
  return { failures, next: rows.length === filter.limit && last ? encodeCursor({ atMicros: last.at_micros as number, id: last.id as string }) : null }
}

export async function countFailures(db: Queryable, filter: FailureFilter): Promise<number> {
  const [row] = await db.query<{ n: number }>(`select count(*)::int as n from (${failuresSql}) f where ${filterSql}`, filterParams(filter))
  return row?.n ?? 0
}

export async function findFailure(db: Queryable, id: string): Promise<Failure | undefined> {
  // Open or resolved; once replayed, the item is ordinary work again and is found as an order or event.
  for (const status of [undefined, 'resolved'] as const) {
    const { failures } = await listFailures(db, { id, status, limit: 1 })
    if (failures[0]) return failures[0]
  }
  return undefined
}

function toFailure(r: Record<string, unknown>): Failure {
  const base: FailureBase = {
    id: r.id as string,
    connection: r.connection as string,
    status: r.status as string,
    kind: r.kind as string | null,
    message: (r.message as string | null) ?? '',
    updatedAt: (r.at as Date).toISOString(),
    orderId: r.order_id as string | null,
    externalId: r.external_id as string | null,
    sourceVersion: r.source_version as number | null,
    resolution: r.resolution ? { ...(r.resolution as Resolution) } : null,
  }
  if (base.resolution) base.resolution.at = new Date(base.resolution.at).toISOString()
  if (r.type === 'link') {
    return {
      ...base,
      type: 'link',
      operation: r.operation as string,
      httpStatus: r.http_status as number | null,
      targetExternalId: r.target_external_id as string | null,
      attempts: (r.attempts as number | null) ?? 0,
    }
  }
  return {
    ...base,
    type: 'event',
    eventId: String(r.inbox_id),
    webhookId: r.webhook_id as string,
    eventType: r.event_type as string,
    errors: (r.errors as string[] | null) ?? [],
    mappingVersion: r.mapping_version as number | null,
  }
}
