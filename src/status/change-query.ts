/**
 * Filtered reads of the change feed for pollers: by change type (exact or prefix) and by
 * connection, with the same gap-free cursor as readChanges (change-feed.ts). A page scans the feed
 * in commit order from the cursor and returns the changes that match; `next` is the last change
 * it looked at, matched or not, so a filtered poller moves past what it does not want and never
 * reads it again. Reads only; the ETag of a page is derived here too.
 */
import { createHash } from 'node:crypto'
import type { Queryable } from '../db/database.ts'
import type { Change } from './change-feed.ts'

export interface ChangeFilter {
  /** Exact types, e.g. `order.created`. */
  types: readonly string[]
  /** Type prefixes, e.g. `order.` (from `order.` or `order.*`). */
  typePrefixes: readonly string[]
  /** Changes of this connection or of orders from or linked to it (the rule of connection-scope.ts). */
  connection?: string
  /** An integration key's connection: the same rule, applied on top of `connection`. */
  scope?: string
}

export interface ChangePage {
  changes: Change[]
  /** The cursor to go on from: the last change this page looked at. */
  next: number
  /** True when the page reached the newest readable change (nothing more to read right now). */
  caughtUp: boolean
}

/** A page of `limit` changes looks at no more than this many when filtered, so one request stays short. */
export const filteredScanLimit = 2000

/**
 * `order.created,sync.` → exact and prefix types. `*` (or nothing) is every type.
 *
 * @example
 * parseTypeFilter('order.*,sync.failed') // { types: ['sync.failed'], typePrefixes: ['order.'] }
 */
export function parseTypeFilter(value: string | undefined): Pick<ChangeFilter, 'types' | 'typePrefixes'> {
  const items = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  if (items.includes('*')) return { types: [], typePrefixes: [] }
  const typePrefixes = items.filter((t) => t.endsWith('.') || t.endsWith('.*')).map((t) => t.replace(/\*$/, ''))
  return { types: [...new Set(items.filter((t) => !t.endsWith('.') && !t.endsWith('.*')))].sort(), typePrefixes: [...new Set(typePrefixes)].sort() }
}

export const typeFilterItem = /^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.|\.\*)?)$/

const isFiltered = (f: ChangeFilter) => f.types.length > 0 || f.typePrefixes.length > 0 || f.connection !== undefined || f.scope !== undefined

/** Does `change` pass the type and connection filters, as far as can be told without the database? (A change of an order may pass the connection rule through the order's links.) */
export function mayMatch(f: ChangeFilter, change: { type: string; orderId: string | null; connectionId: string | null }): boolean {
  const typed = (!f.types.length && !f.typePrefixes.length) || f.types.includes(change.type) || f.typePrefixes.some((p) => change.type.startsWith(p))
  const connected = [f.connection, f.scope].every((k) => k === undefined || change.connectionId === k || change.orderId !== null)
  return typed && connected
}

const visibleTo = (param: string) =>
  `(s.connection_id = ${param} or exists (select 1 from orders o where o.id = s.order_id
     and (o.source_connection = ${param} or exists (select 1 from links l where l.order_id = o.id and l.connection_id = ${param}))))`

/**
 * One page after `after` (0: from the start), in the feed's order (change-feed.ts). One statement,
 * so the changes and the position reached come from the same snapshot.
 */
export async function readChangePage(db: Queryable, after: number, limit: number, filter: ChangeFilter): Promise<ChangePage> {
  const scan = isFiltered(filter) ? Math.max(limit, filteredScanLimit) : limit
  const conditions: string[] = []
  const params: unknown[] = [after, scan, limit]
  if (filter.types.length || filter.typePrefixes.length) {
    params.push(filter.types, filter.typePrefixes)
    conditions.push(`(s.type = any($${params.length - 1}::text[]) or exists (select 1 from unnest($${params.length}::text[]) p where starts_with(s.type, p)))`)
  }
  for (const k of [filter.connection, filter.scope]) {
    if (k === undefined) continue
    params.push(k)
    conditions.push(visibleTo(`$${params.length}::text`))
  }
  const rows = await db.query<{ part: number; seq: number | null; at: Date | null; type: string | null; order_id: string | null; connection_id: string | null; data: Record<string, unknown> | null; scanned: number | null }>(
    `with scanned as (
       select seq, type, order_id, connection_id from changes where seq > $1 order by seq limit $2),
     wanted as (
       select s.seq from scanned s ${conditions.length ? `where ${conditions.join(' and ')}` : ''}
       order by s.seq limit $3)
     select 0 as part, c.seq, c.at, c.type, c.order_id, c.connection_id, c.data, null::bigint as scanned
     from wanted w join changes c on c.seq = w.seq
     union all
     select 1, (select max(seq) from scanned), null, null, null, null, null, (select count(*) from scanned)
     order by part, seq`,
    params,
  )
  const changes = rows
    .filter((r) => r.part === 0)
    .map((r) => ({ seq: r.seq!, at: r.at!.toISOString(), type: r.type!, orderId: r.order_id, connectionId: r.connection_id, data: r.data ?? {} }))
  const summary = rows.find((r) => r.part === 1)
  const scanned = Number(summary?.scanned ?? 0)
  const full = changes.length === limit
  return {
    changes,
    // A full page stops at its last change: what the scan saw after it is read again next time.
    next: full ? changes.at(-1)!.seq : (summary?.seq ?? after),
    caughtUp: !full && scanned < scan,
  }
}

/**
 * A weak validator for a page: the position reached and what was asked for (filters and the
 * key's scope), so a poller that sends back the ETag of its last answer gets 304 until something
 * new is there for it.
 */
export function changesEtag(next: number, filter: ChangeFilter): string {
  const asked = JSON.stringify([filter.types, filter.typePrefixes, filter.connection ?? null, filter.scope ?? null])
  return `W/"${next}-${createHash('sha256').update(asked).digest('base64url').slice(0, 16)}"`
}

/** Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 asks for If-None-Match). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false
  const opaque = (t: string) => t.trim().replace(/^W\//, '')
  return header.split(',').some((t) => t.trim() === '*' || opaque(t) === opaque(etag))
}
