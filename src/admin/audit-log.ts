/**
 * The audit log: who changed what, when, with the value before and after. Append-only.
 */
import type { Queryable } from '../db/database.ts'

export interface AuditEntry {
  actor: string
  action: string
  /** What was changed, as `kind:id`, e.g. `mapping:demo-crm.to-canonical.order`. */
  subject: string
  before?: unknown
  after?: unknown
}

export async function recordAudit(tx: Queryable, e: AuditEntry): Promise<void> {
  await tx.query('insert into audit_log (actor, action, subject, before, after) values ($1, $2, $3, $4, $5)', [
    e.actor,
    e.action,
    e.subject,
    e.before === undefined ? null : JSON.stringify(e.before),
    e.after === undefined ? null : JSON.stringify(e.after),
  ])
}

export async function listAudit(db: Queryable, filter: { subject?: string; before?: number; limit: number }) {
  const rows = await db.query<{ id: number; at: Date; actor: string; action: string; subject: string; before: unknown; after: unknown }>(
    `select id, at, actor, action, subject, before, after from audit_log
     where ($1::text is null or subject = $1) and ($2::int8 is null or id < $2) order by id desc limit $3`,
    [filter.subject ?? null, filter.before ?? null, filter.limit],
  )
  return rows.map((r) => ({ ...r, at: r.at.toISOString() }))
}
