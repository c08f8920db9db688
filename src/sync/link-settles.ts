/**
 * How steps leave their links once the remote answered, written for a whole settle group in one
 * statement (settle-group.ts): each link records the target's id and the version reached (or goes
 * back to pending when a newer one was asked for meanwhile), its lease is given back, and the
 * calls' attempts are marked succeeded.
 */
import type { Queryable } from '../db/database.ts'

export interface LinkSettle {
  orderId: string
  connectionId: string
  operation: string
  /** The target's id for what the step wrote; null keeps the one the link has. */
  externalId: string | null
  /** The version this run brought the target to. */
  targetVersion: number
  /** `held`: the target answered but the version is not reached yet (stock short); the step runs again when asked. */
  done: 'synced' | 'cancelled' | 'held'
  attempts: { id: number; durationMs: number }[]
}

/**
 * A group holds one step per order, so no link appears twice. The `= any` conditions repeat the
 * join keys as index conditions; the attempts' is on their primary key, which the planner trusts
 * even before the table has statistics (src/db/table-statistics.ts keeps them where autovacuum does not).
 */
export async function writeLinkSettles(tx: Queryable, settles: readonly LinkSettle[]): Promise<void> {
  if (!settles.length) return
  const attempts = settles.flatMap((s) => s.attempts.map((a) => ({ id: a.id, duration_ms: a.durationMs, external_id: s.externalId })))
  await tx.query(
    `with answered as (
       update sync_attempts a set outcome = 'succeeded', finished_at = now(), duration_ms = s.duration_ms, external_id = s.external_id
       from json_to_recordset($1::json) as s(id int8, duration_ms int, external_id text)
       where a.id = s.id and a.id = any($2::bigint[]))
     update links l set external_id = coalesce(s.external_id, l.external_id),
       status = case when s.done = 'held' or coalesce(l.target_version, 0) <= s.target_version then s.done else 'pending' end,
       last_synced_version = case when s.done = 'held' then l.last_synced_version else greatest(coalesce(l.last_synced_version, 0), s.target_version) end,
       last_error = null, lease_owner = null, lease_until = null, updated_at = now(), override_document = null, override_version = null
     from json_to_recordset($3::json) as s(order_id uuid, connection_id text, operation text, external_id text, target_version int8, done text)
     where l.order_id = s.order_id and l.connection_id = s.connection_id and l.operation = s.operation and l.order_id = any($4::uuid[])`,
    [
      JSON.stringify(attempts),
      attempts.map((a) => a.id),
      JSON.stringify(settles.map((s) => ({ order_id: s.orderId, connection_id: s.connectionId, operation: s.operation, external_id: s.externalId, target_version: s.targetVersion, done: s.done }))),
      settles.map((s) => s.orderId),
    ],
  )
}
