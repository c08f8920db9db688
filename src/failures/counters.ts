/**
 * Honest counters: each one is a count of rows that record the thing itself, read from the
 * database when asked, never a number kept in memory or inferred from others. Each is attributed to
 * the connection where it happens: deliveries to the source (e.g. demo-crm), sync outcomes to the
 * target (e.g. demo-erp). Reads only.
 *
 * - accepted: inbox rows, i.e. distinct deliveries committed (received since `since`).
 * - duplicate: redeliveries of an event already in the inbox, answered from it and counted in
 *   delivery_counters in the same statement as the batch insert. Kept per hour, so `since` is
 *   rounded down to its hour for this counter.
 * - rejected: rows in rejected_deliveries, i.e. deliveries refused for any reason (bad signature,
 *   unknown connection, invalid body, too large...).
 * - staleSkipped: inbox rows with status stale (an older or repeated version, applied as no change).
 * - synced, failed, dead, needsAttention, cancelled: links, one per order and target, by their
 *   status now: synced (the target holds the order's current version), retrying (shown as failed:
 *   a retryable failure, another try is scheduled), dead (retries used up), needs_attention (a
 *   permanent failure), cancelled (the target's order was cancelled, or never created), held (a
 *   stock reservation waiting for stock: counted as `onHold`). `since`
 *   counts links that reached that status since then. `links` has every status, so it adds up to
 *   the number of links.
 * - replayed: replays made by a person: link replays (rows in replays, one per link, bulk or not)
 *   plus event replays (audit entries event.replayed, which replayEvent writes for every event
 *   replay, through /failures or /events/:id/replay).
 * - inbox: every inbox status, adding up to accepted.
 */
import type { Queryable } from '../db/database.ts'

export const linkStatuses = ['pending', 'retrying', 'held', 'synced', 'dead', 'needs_attention', 'resolved', 'cancelled'] as const
export const inboxStatuses = ['pending', 'processed', 'stale', 'needs_attention', 'dismissed'] as const

export interface Counters {
  accepted: number
  duplicate: number
  rejected: number
  synced: number
  /** Links retrying now. */
  failed: number
  dead: number
  needsAttention: number
  replayed: number
  staleSkipped: number
  cancelled: number
  /** Stock reservations waiting for stock. */
  onHold: number
  links: Record<(typeof linkStatuses)[number], number>
  inbox: Record<(typeof inboxStatuses)[number], number>
}

const zero = (): Counters => ({
  accepted: 0,
  duplicate: 0,
  rejected: 0,
  synced: 0,
  failed: 0,
  dead: 0,
  needsAttention: 0,
  replayed: 0,
  staleSkipped: 0,
  cancelled: 0,
  onHold: 0,
  links: Object.fromEntries(linkStatuses.map((s) => [s, 0])) as Counters['links'],
  inbox: Object.fromEntries(inboxStatuses.map((s) => [s, 0])) as Counters['inbox'],
})

type Row = { connection_id: string; status?: string; n: number }

/** The counters of every connection that has any, from `since` on (all time when unset). */
export async function countersByConnection(db: Queryable, options: { since?: Date; connection?: string } = {}): Promise<Map<string, Counters>> {
  const params = [options.since ?? null, options.connection ?? null]
  const scoped = (at: string, connection = 'connection_id') => `($1::timestamptz is null or ${at} >= $1) and ($2::text is null or ${connection} = $2)`
  // One query: on PGlite statements run one at a time anyway, and on PostgreSQL it is one round trip.
  const rows = await db.query<Row & { source: string }>(
    `select 'inbox' as source, connection_id, status, count(*)::int8 as n from inbox_events where ${scoped('received_at')} group by connection_id, status
     union all
     select 'links', connection_id, status, count(*)::int8 from links where ${scoped('updated_at')} group by connection_id, status
     union all
     select 'duplicate', connection_id, null, sum(duplicates)::int8 from delivery_counters
       where ($1::timestamptz is null or hour >= date_trunc('hour', $1::timestamptz, 'UTC')) and ($2::text is null or connection_id = $2) group by connection_id
     union all
     select 'rejected', connection_id, null, count(*)::int8 from rejected_deliveries where ${scoped('received_at')} group by connection_id
     union all
     select 'replayed', connection_id, null, count(*)::int8 from replays where kind = 'link' and ${scoped('at')} group by connection_id
     union all
     select 'replayed', e.connection_id, null, count(*)::int8 from audit_log a
       join inbox_events e on e.id = (case when a.subject ~ '^event:[0-9]{1,18}$' then substr(a.subject, 7)::int8 end)
       where a.action = 'event.replayed' and ${scoped('a.at', 'e.connection_id')} group by e.connection_id`,
    params,
  )
  const byConnection = new Map<string, Counters>()
  const of = (id: string) => byConnection.get(id) ?? byConnection.set(id, zero()).get(id)!
  for (const r of rows) {
    const c = of(r.connection_id)
    if (r.source === 'inbox') {
      c.accepted += r.n
      if (r.status && r.status in c.inbox) c.inbox[r.status as keyof Counters['inbox']] += r.n
      if (r.status === 'stale') c.staleSkipped += r.n
    } else if (r.source === 'links') {
      if (r.status && r.status in c.links) c.links[r.status as keyof Counters['links']] += r.n
    } else if (r.source === 'duplicate') c.duplicate += r.n
    else if (r.source === 'rejected') c.rejected += r.n
    else if (r.source === 'replayed') c.replayed += r.n
  }
  for (const c of byConnection.values()) {
    c.synced = c.links.synced
    c.failed = c.links.retrying
    c.dead = c.links.dead
    c.needsAttention = c.links.needs_attention
    c.cancelled = c.links.cancelled
    c.onHold = c.links.held
  }
  return byConnection
}

/** The counters of all connections added together (or of the one asked for). */
export async function counters(db: Queryable, options: { since?: Date; connection?: string } = {}): Promise<Counters> {
  const total = zero()
  for (const c of (await countersByConnection(db, options)).values()) {
    for (const key of Object.keys(total) as (keyof Counters)[]) {
      const value = c[key]
      if (typeof value === 'number') (total[key] as number) += value
    }
    for (const s of linkStatuses) total.links[s] += c.links[s]
    for (const s of inboxStatuses) total.inbox[s] += c.inbox[s]
  }
  return total
}
