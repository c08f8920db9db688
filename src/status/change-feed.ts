/**
 * The change feed: an ordered, gap-free log that pollers page through by sequence number.
 * Gap-free because appenders take one transaction-scoped lock, so sequence numbers are assigned
 * and committed in the same order; append last in a transaction to hold the lock briefly.
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

const feedLockKey = 7_000_002

export async function appendChanges(tx: Queryable, changes: readonly ChangeInput[]): Promise<void> {
  if (!changes.length) return
  await tx.query('select pg_advisory_xact_lock($1)', [feedLockKey])
  await tx.query(
    `insert into changes (type, order_id, connection_id, data)
     select * from unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[])`,
    [
      changes.map((c) => c.type),
      changes.map((c) => c.orderId ?? null),
      changes.map((c) => c.connectionId ?? null),
      changes.map((c) => JSON.stringify(c.data ?? {})),
    ],
  )
}

export async function readChanges(db: Queryable, after: number, limit: number): Promise<Change[]> {
  const rows = await db.query<{ seq: number; at: Date; type: string; order_id: string | null; connection_id: string | null; data: Record<string, unknown> }>(
    'select seq, at, type, order_id, connection_id, data from changes where seq > $1 order by seq limit $2',
    [after, limit],
  )
  return rows.map((r) => ({ seq: r.seq, at: r.at.toISOString(), type: r.type, orderId: r.order_id, connectionId: r.connection_id, data: r.data }))
}

/** The newest sequence number, so a poller can start from "now". */
export async function headOfFeed(db: Queryable): Promise<number> {
  const [row] = await db.query<{ seq: number | null }>('select max(seq) as seq from changes')
  return row?.seq ?? 0
}
