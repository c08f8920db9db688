/**
 * The change feed: an ordered, gap-free log that pollers page through with a cursor.
 * Appenders take no lock. Rows are read in (transaction id, seq) order and only once their
 * transaction is older than every running one (migration 006), so a row can never appear behind
 * a cursor a poller already holds. The cursor is the seq of the last row seen: an opaque position,
 * not a count.
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

/** The `select` that `changeParams` fills from `$first` on, for statements that write changes with other rows. */
export function changeRows(first: number): string {
  return `select * from unnest($${first}::text[], $${first + 1}::uuid[], $${first + 2}::text[], $${first + 3}::jsonb[])`
}

export function changeParams(changes: readonly ChangeInput[]): unknown[] {
  return [changes.map((c) => c.type), changes.map((c) => c.orderId ?? null), changes.map((c) => c.connectionId ?? null), changes.map((c) => JSON.stringify(c.data ?? {}))]
}

const settled = 'tx < pg_snapshot_xmin(pg_current_snapshot())'

export async function readChanges(db: Queryable, after: number, limit: number): Promise<Change[]> {
  const rows = await db.query<{ seq: number; at: Date; type: string; order_id: string | null; connection_id: string | null; data: Record<string, unknown> }>(
    after > 0
      ? `select seq, at, type, order_id, connection_id, data from changes
         where (tx, seq) > (select tx, seq from changes where seq = $1) and ${settled} order by tx, seq limit $2`
      : `select seq, at, type, order_id, connection_id, data from changes where $1::bigint = 0 and ${settled} order by tx, seq limit $2`,
    [after, limit],
  )
  return rows.map((r) => ({ seq: r.seq, at: r.at.toISOString(), type: r.type, orderId: r.order_id, connectionId: r.connection_id, data: r.data }))
}

/** The cursor of the newest readable change, so a poller can start from "now"; 0 when there is none. */
export async function headOfFeed(db: Queryable): Promise<number> {
  const [row] = await db.query<{ seq: number }>(`select seq from changes where ${settled} order by tx desc, seq desc limit 1`)
  return row?.seq ?? 0
}
