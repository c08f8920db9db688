/**
 * The change feed: an ordered, gap-free log that pollers page through by sequence number.
 * Gap-free because every statement that appends first takes one transaction-scoped lock (inside
 * the statement, so it costs no round trip): sequence numbers are then assigned and committed in
 * the same order, and a reader never sees seq n+1 before n. Append last in a transaction to hold
 * the lock briefly. (Reading in transaction-id order below the snapshot's xmin would need no lock,
 * but that horizon spans every database on the server: one long transaction anywhere stalls it.)
 *
 * The same statement notifies `changeFeedChannel` (payload: the schema), once per statement and,
 * as PostgreSQL folds equal notifications, once per transaction, delivered at commit: long-polls
 * (change-signal.ts) wake on it instead of polling.
 */
import type { Queryable } from '../db/database.ts'

export interface ChangeInput {
  type: string
  orderId?: string
  connectionId?: string
  data?: Record<string, unknown>
}

export interface Change {
  seq: number
  at: string
  type: string
  orderId: string | null
  connectionId: string | null
  data: Record<string, unknown>
}

export async function appendChanges(tx: Queryable, changes: readonly ChangeInput[]): Promise<void> {
  if (!changes.length) return
  await tx.query(`insert into changes (type, order_id, connection_id, data) ${changeRows(1)}`, changeParams(changes))
}

/** Where appenders announce new changes; the payload is the schema, so databases shared by several schemas wake only their own readers. */
export const changeFeedChannel = 'orderbridge_changes'

const feedLockKey = 7_000_002

/**
 * The `select` that `changeParams` fills from `$first` on, for statements that write changes with other rows.
 * Its one-time filter (an InitPlan, evaluated once before the first row is produced, so before any
 * sequence number is drawn) takes the feed's lock and sends the notification.
 */
export function changeRows(first: number): string {
  return `select c.* from unnest($${first}::text[], $${first + 1}::uuid[], $${first + 2}::text[], $${first + 3}::jsonb[]) c
    where cardinality($${first}::text[]) > 0 and exists (select from pg_advisory_xact_lock(${feedLockKey}), pg_notify('${changeFeedChannel}', coalesce(current_schema(), '')))`
}

export function changeParams(changes: readonly ChangeInput[]): unknown[] {
  return [changes.map((c) => c.type), changes.map((c) => c.orderId ?? null), changes.map((c) => c.connectionId ?? null), changes.map((c) => JSON.stringify(c.data ?? {}))]
}

export async function readChanges(db: Queryable, after: number, limit: number): Promise<Change[]> {
  const rows = await db.query<{ seq: number; at: Date; type: string; order_id: string | null; connection_id: string | null; data: Record<string, unknown> }>(
    'select seq, at, type, order_id, connection_id, data from changes where seq > $1 order by seq limit $2',
    [after, limit],
  )
  return rows.map((r) => ({ seq: r.seq, at: r.at.toISOString(), type: r.type, orderId: r.order_id, connectionId: r.connection_id, data: r.data }))
}

/** The newest sequence number, so a poller can start from "now"; 0 when there is none. */
export async function headOfFeed(db: Queryable): Promise<number> {
  const [row] = await db.query<{ seq: number | null }>('select max(seq) as seq from changes')
  return row?.seq ?? 0
}
