/**
 * Acknowledgements from systems that pull orders (an ERP polling the API instead of being pushed
 * to): "connection X has taken order O". One per order and connection, kept as a timeline entry
 * (kind `acknowledged`) with an `order.acknowledged` change; a repeated acknowledgement changes
 * nothing and is answered with the first. Migration 010 makes (order, connection) unique.
 */
import type { Database, Queryable } from '../db/database.ts'
import { appendChanges } from './change-feed.ts'

export const acknowledgedKind = 'acknowledged'
export const acknowledgedChange = 'order.acknowledged'

export interface AckInput {
  orderId: string
  connection: string
  reference?: string
  note?: string
  /** Who sent it, for the timeline: `integration key erp-poller`. */
  by: string
}

export interface Ack {
  orderId: string
  connection: string
  acknowledgedAt: string
  reference: string | null
  note: string | null
  by: string
}

interface AckRow {
  at: Date
  cause: string
  detail: { connection: string; reference?: string; note?: string }
}

const toAck = (orderId: string, r: AckRow): Ack => ({
  orderId,
  connection: r.detail.connection,
  acknowledgedAt: r.at.toISOString(),
  reference: r.detail.reference ?? null,
  note: r.detail.note ?? null,
  by: r.cause,
})

async function firstAck(db: Queryable, orderId: string, connection: string): Promise<Ack | undefined> {
  const [row] = await db.query<AckRow>(
    `select at, cause, detail from order_events where order_id = $1 and kind = '${acknowledgedKind}' and detail->>'connection' = $2`,
    [orderId, connection],
  )
  return row && toAck(orderId, row)
}

/** Records the acknowledgement unless there is one already; `created` says which. The order must exist. */
export async function acknowledgeOrder(db: Database, input: AckInput): Promise<{ ack: Ack; created: boolean }> {
  const known = await firstAck(db, input.orderId, input.connection)
  if (known) return { ack: known, created: false }
  const detail = { connection: input.connection, ...(input.reference !== undefined ? { reference: input.reference } : {}), ...(input.note !== undefined ? { note: input.note } : {}) }
  const inserted = await db.transaction(async (tx) => {
    const [row] = await tx.query<AckRow>(
      `insert into order_events (order_id, kind, cause, detail) values ($1, '${acknowledgedKind}', $2, $3)
       on conflict (order_id, (detail->>'connection')) where kind = '${acknowledgedKind}' do nothing
       returning at, cause, detail`,
      [input.orderId, input.by, JSON.stringify(detail)],
    )
    if (!row) return undefined
    await appendChanges(tx, [
      { type: acknowledgedChange, orderId: input.orderId, connectionId: input.connection, data: { acknowledgedAt: row.at.toISOString(), ...(input.reference !== undefined ? { reference: input.reference } : {}) } },
    ])
    return row
  })
  if (inserted) return { ack: toAck(input.orderId, inserted), created: true }
  // Another request acknowledged it first; its row is committed now (the insert waited for it).
  const first = await firstAck(db, input.orderId, input.connection)
  if (!first) throw new Error(`acknowledgement of ${input.orderId} for ${input.connection} vanished`)
  return { ack: first, created: false }
}
