import type { Queryable } from '../db/database.ts'
import type { FieldIssue } from '../shared/field-issues.ts'

export interface Rejection {
  connectionId: string
  eventId?: string
  httpStatus: number
  code: string
  message: string
  details?: FieldIssue[]
  /** Only for authenticated deliveries, so a fixed document can be resent. */
  body?: string
}

const maxStoredBody = 256 * 1024

export async function recordRejection(db: Queryable, r: Rejection): Promise<void> {
  await db.query(
    `insert into rejected_deliveries (connection_id, event_id, http_status, code, message, details, body)
     values ($1, $2, $3, $4, $5, $6, $7)`,
    [r.connectionId, r.eventId ?? null, r.httpStatus, r.code, r.message, r.details ? JSON.stringify(r.details) : null, r.body?.slice(0, maxStoredBody) ?? null],
  )
}

export interface RejectedDelivery {
  id: number
  connectionId: string
  eventId: string | null
  receivedAt: string
  httpStatus: number
  code: string
  message: string
  details: FieldIssue[] | null
}

export async function listRejections(db: Queryable, filter: { connectionId?: string; limit: number; before?: number }): Promise<RejectedDelivery[]> {
  const rows = await db.query<Record<string, unknown>>(
    `select id, connection_id, event_id, received_at, http_status, code, message, details from rejected_deliveries
     where ($1::text is null or connection_id = $1) and ($2::int8 is null or id < $2)
     order by id desc limit $3`,
    [filter.connectionId ?? null, filter.before ?? null, filter.limit],
  )
  return rows.map((r) => ({
    id: r.id as number,
    connectionId: r.connection_id as string,
    eventId: r.event_id as string | null,
    receivedAt: (r.received_at as Date).toISOString(),
    httpStatus: r.http_status as number,
    code: r.code as string,
    message: r.message as string,
    details: r.details as FieldIssue[] | null,
  }))
}
