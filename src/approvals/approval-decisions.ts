/**
 * Approvals an order waits for, and their decisions. Levels are decided in order: an approver
 * sees and decides an order only when every level before theirs has approved. Finance can also be
 * approved by the credit check (check-credit.step.ts), recorded as automatic with the figures.
 */
import type { Connection } from '../connections/connection-registry.ts'
import type { Database, Queryable } from '../db/database.ts'
import type { Lifecycle, OrderRef, UnitOfWork } from '../orders/lifecycle.ts'
import { newUnitOfWork, operations } from '../orders/lifecycle.ts'
import { lockOrder } from '../orders/order.repository.ts'
import type { ApprovalLevel } from './approval-rules.schemas.ts'
import type { RequiredApprovals } from './approval-rule-versions.ts'

export interface ApprovalDecisionInput {
  decision: 'approve' | 'reject'
  comment?: string
}

/** Who decides: an approver of one level, or an admin, who may decide any level. */
export interface Decider {
  name: string
  level: ApprovalLevel | null
}

export class ApprovalRefused extends Error {
  readonly code: 'not_found' | 'not_pending' | 'not_your_level'
  constructor(code: ApprovalRefused['code'], message: string) {
    super(message)
    this.code = code
  }
}

/**
 * A new order that needs approval: one row per level, the order to `pending_approval`, and the
 * credit check asked for when finance must approve and the ERP can tell the customer's credit.
 */
export async function requestApprovals(tx: Queryable, lifecycle: Lifecycle, work: UnitOfWork, order: OrderRef, required: RequiredApprovals, creditConnection?: Connection): Promise<void> {
  await lifecycle.transition(tx, work, order, 'pending_approval', `approval rules${required.rulesVersion ? ` v${required.rulesVersion}` : ''}: ${required.reasons.join('; ')}`, {
    levels: required.levels,
    rule: required.matchedRule,
  })
  await addApprovals(tx, lifecycle, work, order, required, creditConnection)
}

/** The approval rows an order waiting for approval needs, and its credit check. */
export async function addApprovals(tx: Queryable, lifecycle: Lifecycle, work: UnitOfWork, order: OrderRef, required: RequiredApprovals, creditConnection?: Connection): Promise<void> {
  await tx.query(
    `insert into approvals (order_id, level, position, rule) select $1, level, position, $3 from unnest($2::text[]) with ordinality as l(level, position)
     on conflict (order_id, level) do nothing`,
    [order.id, required.levels, required.matchedRule],
  )
  if (required.levels.includes('finance') && creditConnection) {
    await lifecycle.requestStep(tx, work, { orderId: order.id, connection: creditConnection, operation: operations.creditCheck, version: order.sourceVersion })
  }
}

/** Approves one level; the last approval moves the order to `approved`. The caller holds the order's lock. */
export async function approveLevel(tx: Queryable, lifecycle: Lifecycle, work: UnitOfWork, order: OrderRef, d: { level: ApprovalLevel; by: string; automatic: boolean; comment?: string }): Promise<void> {
  await tx.query(
    `update approvals set status = 'approved', decided_by = $3, decided_at = now(), automatic = $4, comment = $5 where order_id = $1 and level = $2 and status = 'pending'`,
    [order.id, d.level, d.by, d.automatic, d.comment ?? null],
  )
  work.events.push({ orderId: order.id, kind: 'approval', cause: d.by, detail: { level: d.level, decision: 'approve', automatic: d.automatic, ...(d.comment ? { comment: d.comment } : {}) } })
  const [left] = await tx.query<{ n: number }>(`select count(*)::int as n from approvals where order_id = $1 and status = 'pending'`, [order.id])
  if (left!.n === 0 && order.state === 'pending_approval') await lifecycle.transition(tx, work, order, 'approved', `approved by ${d.by}`)
}

/** A person's decision through the API. */
export async function decideApproval(db: Database, lifecycle: Lifecycle, decider: Decider, orderId: string, input: ApprovalDecisionInput): Promise<{ state: string; level: ApprovalLevel }> {
  const work = newUnitOfWork()
  const result = await db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId)
    if (!order) throw new ApprovalRefused('not_found', `no order ${orderId}`)
    if (order.state !== 'pending_approval') throw new ApprovalRefused('not_pending', `the order is ${order.state}, not waiting for approval`)
    const [current] = await tx.query<{ level: ApprovalLevel }>(`select level from approvals where order_id = $1 and status = 'pending' order by position limit 1`, [orderId])
    if (!current) throw new ApprovalRefused('not_pending', 'no approval is pending')
    if (decider.level !== null && decider.level !== current.level) {
      throw new ApprovalRefused('not_your_level', `the order waits for ${current.level} approval; your key approves at ${decider.level}`)
    }
    if (input.decision === 'approve') {
      await approveLevel(tx, lifecycle, work, order, { level: current.level, by: decider.name, automatic: false, ...(input.comment ? { comment: input.comment } : {}) })
    } else {
      await tx.query(`update approvals set status = 'rejected', decided_by = $3, decided_at = now(), comment = $4 where order_id = $1 and level = $2`, [orderId, current.level, decider.name, input.comment ?? null])
      work.events.push({ orderId, kind: 'approval', cause: decider.name, detail: { level: current.level, decision: 'reject', ...(input.comment ? { comment: input.comment } : {}) } })
      await lifecycle.transition(tx, work, order, 'rejected', `rejected by ${decider.name} (${current.level})${input.comment ? `: ${input.comment}` : ''}`)
    }
    await lifecycle.finish(tx, work)
    return { state: order.state, level: current.level }
  })
  await lifecycle.dispatch(work, `approval-${orderId}`)
  return result
}

export interface PendingApproval {
  orderId: string
  externalId: string
  sourceConnection: string
  customer: { externalId: string; name?: string }
  currency: string
  total: string
  level: ApprovalLevel
  rule: string | null
  waitingSince: string
  /** What the credit check saw (finance only). */
  credit: Record<string, unknown> | null
  approvals: { level: ApprovalLevel; status: string; decidedBy: string | null; automatic: boolean }[]
}

/** Orders waiting for approval at `level` now (all levels for null), oldest first. */
export async function listPendingApprovals(db: Queryable, level: ApprovalLevel | null, limit = 100): Promise<PendingApproval[]> {
  const rows = await db.query<Record<string, unknown>>(
    `select o.id, o.external_id, o.source_connection, o.document, o.currency, o.total::text as total, o.state_entered_at, a.level, a.rule, a.credit,
       (select jsonb_agg(jsonb_build_object('level', x.level, 'status', x.status, 'decidedBy', x.decided_by, 'automatic', x.automatic) order by x.position)
        from approvals x where x.order_id = o.id) as approvals
     from orders o
     join lateral (select level, rule, credit from approvals where order_id = o.id and status = 'pending' order by position limit 1) a on true
     where o.state = 'pending_approval' and ($1::text is null or a.level = $1)
     order by o.state_entered_at limit $2`,
    [level, limit],
  )
  return rows.map((r) => {
    const document = r.document as { customer: { externalId: string; name?: string } }
    return {
      orderId: r.id as string,
      externalId: r.external_id as string,
      sourceConnection: r.source_connection as string,
      customer: document.customer,
      currency: r.currency as string,
      total: r.total as string,
      level: r.level as ApprovalLevel,
      rule: r.rule as string | null,
      waitingSince: (r.state_entered_at as Date).toISOString(),
      credit: r.level === 'finance' ? (r.credit as Record<string, unknown> | null) : null,
      approvals: r.approvals as PendingApproval['approvals'],
    }
  })
}
