/**
 * Group commit for the inbox: concurrent deliveries are written in one multi-row insert, and each
 * is answered only after that insert has committed. While one batch is being written, the next one
 * gathers, so batches grow with load and latency stays one round trip at low load.
 */
import type { Database } from '../db/database.ts'

export interface InboxEntry {
  connectionId: string
  eventId: string
  type: string
  externalId: string
  sourceVersion: number
  document: Record<string, unknown>
}

export interface InboxOutcome {
  inboxId: number
  duplicate: boolean
}

export interface InboxWriter {
  write(entry: InboxEntry): Promise<InboxOutcome>
  /** Waits for every accepted write to finish. */
  drain(): Promise<void>
}

interface Pending {
  entry: InboxEntry
  resolve(outcome: InboxOutcome): void
  reject(err: unknown): void
}

const maxBatch = 500
// Two batches in flight keep the database and this process busy at once: while one commits, the
// next is already being sent. More would only make batches smaller.
const maxInFlight = 2

/** `onCommitted` runs after the answers are sent (e.g. to enqueue); drain() waits for it too. */
export function createInboxWriter(db: Database, onCommitted: (inboxIds: number[]) => Promise<void>): InboxWriter {
  let queue: Pending[] = []
  let scheduled = false
  const loops = new Set<Promise<void>>()
  const afterCommit = new Set<Promise<void>>()

  // setImmediate lets the deliveries parsed in this turn of the event loop join the batch.
  function schedule(): void {
    if (scheduled || loops.size >= maxInFlight) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      if (!queue.length || loops.size >= maxInFlight) return
      const loop: Promise<void> = flushLoop().finally(() => {
        loops.delete(loop)
        if (queue.length) schedule()
      })
      loops.add(loop)
    })
  }

  async function flushLoop(): Promise<void> {
    while (queue.length) {
      const batch = queue.splice(0, maxBatch)
      try {
        const fresh = await writeBatch(db, batch)
        if (fresh.length) {
          const done: Promise<void> = onCommitted(fresh).finally(() => afterCommit.delete(done))
          afterCommit.add(done)
        }
      } catch (err) {
        for (const p of batch) p.reject(err)
      }
    }
  }

  return {
    write(entry) {
      return new Promise<InboxOutcome>((resolve, reject) => {
        queue.push({ entry, resolve, reject })
        schedule()
      })
    },
    async drain() {
      while (queue.length || loops.size || scheduled) {
        if (loops.size) await Promise.allSettled([...loops])
        else await new Promise((resolve) => setImmediate(resolve))
      }
      await Promise.allSettled([...afterCommit])
    },
  }
}

const keyOf = (e: InboxEntry) => `${e.connectionId}\u0000${e.eventId}`

/** Inserts the batch; resolves every waiter; returns the ids that are new. */
async function writeBatch(db: Database, batch: Pending[]): Promise<number[]> {
  // A delivery repeated inside one batch gets the same answer as one repeated later.
  const firsts = new Map<string, InboxEntry>()
  for (const p of batch) if (!firsts.has(keyOf(p.entry))) firsts.set(keyOf(p.entry), p.entry)
  const entries = [...firsts.values()]
  const deliveries = new Map<string, number>()
  for (const p of batch) deliveries.set(p.entry.connectionId, (deliveries.get(p.entry.connectionId) ?? 0) + 1)
  // Every delivery that adds no row is a duplicate. It is counted in the same statement as the
  // insert, so the count commits with the rows or not at all; a batch without duplicates writes
  // no counter row and takes no lock on one.
  const inserted = await db.query<{ id: number; connection_id: string; event_id: string }>(
    `with ins as (
       insert into inbox_events (connection_id, event_id, event_type, external_id, source_version, document)
       -- One JSON parameter: escaping six parallel arrays cost the driver more than the insert.
       -- Sorted, so concurrent batches (and API processes) take the unique-key locks in one order.
       select c, e, t, x, v, d from json_to_recordset($1::json) as r(c text, e text, t text, x text, v int8, d jsonb)
       order by c, e
       on conflict (connection_id, event_id) do nothing
       returning id, connection_id, event_id
     ), dup as (
       select d.connection_id, d.n - (select count(*) from ins where ins.connection_id = d.connection_id) as duplicates
       from unnest($2::text[], $3::int8[]) as d(connection_id, n)
     ), counted as (
       insert into delivery_counters (connection_id, hour, duplicates)
       select connection_id, date_trunc('hour', now(), 'UTC'), duplicates from dup where duplicates > 0
       -- one lock order for every writer, so two API processes never wait on each other's rows crosswise
       order by connection_id
       on conflict (connection_id, hour) do update set duplicates = delivery_counters.duplicates + excluded.duplicates
     )
     select id, connection_id, event_id from ins`,
    [
      JSON.stringify(entries.map((e) => ({ c: e.connectionId, e: e.eventId, t: e.type, x: e.externalId, v: e.sourceVersion, d: e.document }))),
      [...deliveries.keys()],
      [...deliveries.values()],
    ],
  )
  const ids = new Map(inserted.map((r) => [`${r.connection_id}\u0000${r.event_id}`, r.id]))
  const fresh = new Set(ids.values())
  const missing = entries.filter((e) => !ids.has(keyOf(e)))
  if (missing.length) {
    const existing = await db.query<{ id: number; connection_id: string; event_id: string }>(
      `select i.id, i.connection_id, i.event_id from inbox_events i
       join unnest($1::text[], $2::text[]) as k(connection_id, event_id) using (connection_id, event_id)`,
      [missing.map((e) => e.connectionId), missing.map((e) => e.eventId)],
    )
    for (const r of existing) ids.set(`${r.connection_id}\u0000${r.event_id}`, r.id)
  }
  const answered = new Set<number>()
  for (const p of batch) {
    const inboxId = ids.get(keyOf(p.entry))
    if (inboxId === undefined) {
      p.reject(new Error('inbox row vanished between insert and lookup'))
      continue
    }
    p.resolve({ inboxId, duplicate: !fresh.has(inboxId) || answered.has(inboxId) })
    answered.add(inboxId)
  }
  return [...fresh]
}
