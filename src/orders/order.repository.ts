/**
 * Orders, their timeline and their links to other systems, as stored in the database.
 */
import type { Queryable } from '../db/database.ts'
import { appendChanges, changeParams, changeRows, type ChangeInput } from '../status/change-feed.ts'
import type { CanonicalOrder } from './order.schemas.ts'
import type { OrderState } from './order-state.ts'

export interface OrderRow {
  id: string
  sourceConnection: string
  externalId: string
  state: OrderState
  sourceVersion: number
  revision: number
  document: CanonicalOrder
  currency: string
  total: string
  /** The payment track: not_invoiced, invoiced, partially_paid, paid. */
  paymentState: string
  amountPaid: string
  /**
   * What stock the order still waits for: `missing`, the lines short while it is on hold (hold
   * policy); `backordered`, the lines reserved only in part (partial policy), topped up as stock arrives.
   */
  hold: { missing?: { lineId: string; sku: string; requested: string; available: string }[]; backordered?: { lineId: string; sku: string; requested: string; reserved: string }[] } | null
  createdAt: string
  updatedAt: string
}

export interface LinkRow {
  orderId: string
  connectionId: string
  operation: string
  externalId: string | null
  status: string
  lastSyncedVersion: number | null
  lastError: { kind: string; message: string } | null
  updatedAt: string
}

export interface TimelineEntry {
  at: string
  kind: string
  fromState: string | null
  toState: string | null
  cause: string
  detail: Record<string, unknown> | null
}

const orderColumns =
  'id, source_connection, external_id, state, source_version, revision, document, currency, total::text as total, payment_state, amount_paid::text as amount_paid, hold, created_at, updated_at'

export function orderFromRow(r: Record<string, unknown>): OrderRow {
  return {
    id: r.id as string,
    sourceConnection: r.source_connection as string,
    externalId: r.external_id as string,
    state: r.state as OrderState,
    sourceVersion: r.source_version as number,
    revision: r.revision as number,
    document: r.document as CanonicalOrder,
    currency: r.currency as string,
    total: r.total as string,
    paymentState: r.payment_state as string,
    amountPaid: r.amount_paid as string,
    hold: r.hold as OrderRow['hold'],
    createdAt: (r.created_at as Date).toISOString(),
    updatedAt: (r.updated_at as Date).toISOString(),
  }
}

function toLink(r: Record<string, unknown>): LinkRow {
  return {
    orderId: r.order_id as string,
    connectionId: r.connection_id as string,
    operation: r.operation as string,
    externalId: r.external_id as string | null,
    status: r.status as string,
    lastSyncedVersion: r.last_synced_version as number | null,
    lastError: r.last_error as LinkRow['lastError'],
    updatedAt: (r.updated_at as Date).toISOString(),
  }
}

/** The query for one order by id (`idParam`), for statements that read it with other rows; see `orderFromRow`. */
export function selectOrder(idParam: string): string {
  return `select ${orderColumns} from orders where id = ${idParam}`
}

export async function findOrder(db: Queryable, id: string): Promise<OrderRow | undefined> {
  const [row] = await db.query(`select ${orderColumns} from orders where id = $1`, [id])
  return row && orderFromRow(row)
}

export async function findOrderBySource(db: Queryable, connectionId: string, externalId: string): Promise<OrderRow | undefined> {
  const [row] = await db.query(`select ${orderColumns} from orders where source_connection = $1 and external_id = $2`, [connectionId, externalId])
  return row && orderFromRow(row)
}

/** Locks the order's row for the rest of the transaction, so its steps never interleave. */
export async function lockOrderBySource(tx: Queryable, connectionId: string, externalId: string): Promise<OrderRow | undefined> {
  const [row] = await tx.query(`select ${orderColumns} from orders where source_connection = $1 and external_id = $2 for update`, [connectionId, externalId])
  return row && orderFromRow(row)
}

export async function lockOrder(tx: Queryable, id: string): Promise<OrderRow | undefined> {
  const [row] = await tx.query(`select ${orderColumns} from orders where id = $1 for update`, [id])
  return row && orderFromRow(row)
}

/** Locks several orders in one statement, in id order, so two callers locking overlapping sets never deadlock. */
export async function lockOrders(tx: Queryable, ids: readonly string[]): Promise<Map<string, OrderRow>> {
  const rows = await tx.query(`select ${orderColumns} from orders where id = any($1::uuid[]) order by id for update`, [ids])
  return new Map(rows.map((r) => [r.id as string, orderFromRow(r)]))
}

export interface OrderFilter {
  connectionId?: string
  externalId?: string
  state?: string
  /** Cursor: orders created before this one (by creation order). */
  after?: string
  /** Only orders from or linked to this connection (integration keys). */
  visibleTo?: string
  limit: number
}

export async function listOrders(db: Queryable, f: OrderFilter): Promise<OrderRow[]> {
  const rows = await db.query(
    `select ${orderColumns} from orders
     where ($1::text is null or source_connection = $1)
       and ($2::text is null or external_id = $2)
       and ($3::text is null or state = $3)
       and ($4::uuid is null or (created_at, id) < (select created_at, id from orders where id = $4))
       and ($6::text is null or source_connection = $6 or exists (select 1 from links l where l.order_id = orders.id and l.connection_id = $6))
     order by created_at desc, id desc limit $5`,
    [f.connectionId ?? null, f.externalId ?? null, f.state ?? null, f.after ?? null, f.limit, f.visibleTo ?? null],
  )
  return rows.map(orderFromRow)
}

export async function linksOf(db: Queryable, orderIds: readonly string[]): Promise<LinkRow[]> {
  if (!orderIds.length) return []
  const rows = await db.query(
    'select order_id, connection_id, operation, external_id, status, last_synced_version, last_error, updated_at from links where order_id = any($1::uuid[]) order by connection_id, operation',
    [orderIds],
  )
  return rows.map(toLink)
}

/** What happened to the order, oldest first: its transitions and events, and every call made to another system for it. */
export async function timelineOf(db: Queryable, orderId: string): Promise<TimelineEntry[]> {
  const rows = await db.query<Record<string, unknown>>(
    `select at, kind, from_state, to_state, cause, detail from (
       select at, id as n, 0 as source, kind, from_state, to_state, cause, detail from order_events where order_id = $1
       union all
       select started_at, id, 1, 'external_call', null, null, connection_id || ' ' || operation || ': ' || outcome,
         jsonb_strip_nulls(jsonb_build_object('connection', connection_id, 'operation', operation, 'outcome', outcome, 'version', source_version,
           'durationMs', duration_ms, 'externalId', external_id, 'failureKind', failure_kind, 'error', error_message))
       from sync_attempts where order_id = $1) t
     order by at, source, n`,
    [orderId],
  )
  return rows.map((r) => ({
    at: (r.at as Date).toISOString(),
    kind: r.kind as string,
    fromState: r.from_state as string | null,
    toState: r.to_state as string | null,
    cause: r.cause as string,
    detail: r.detail as Record<string, unknown> | null,
  }))
}

export interface OrderEventInput {
  orderId: string
  kind: string
  from?: OrderState
  to?: OrderState
  cause: string
  detail?: Record<string, unknown>
}

/**
 * Writes timeline entries and change-feed entries in one statement: a step collects what happened
 * and records it once, at the end of its transaction.
 */
export async function recordHistory(tx: Queryable, events: readonly OrderEventInput[], changes: readonly ChangeInput[]): Promise<void> {
  if (!events.length) return appendChanges(tx, changes)
  await tx.query(
    `with timeline as (
       insert into order_events (order_id, kind, from_state, to_state, cause, detail)
       select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[]))
     insert into changes (type, order_id, connection_id, data) ${changeRows(7)}`,
    [
      events.map((e) => e.orderId),
      events.map((e) => e.kind),
      events.map((e) => e.from ?? null),
      events.map((e) => e.to ?? null),
      events.map((e) => e.cause),
      events.map((e) => (e.detail ? JSON.stringify(e.detail) : null)),
      ...changeParams(changes),
    ],
  )
}
