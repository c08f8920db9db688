/**
 * Scheduling notifications, inside the caller's transaction: an order transition (or an invoice)
 * becomes rows in `notifications`, one per rule, order and occurrence, and leaving a state cancels
 * the reminders that waited for it. The database is the record; after commit the caller hands the
 * returned plan to `enqueueNotificationJobs`, which only mirrors it into delayed BullMQ jobs. If that
 * enqueue is lost, `sweepNotifications` re-creates the jobs from the rows.
 *
 * Sends nothing and calls no remote system.
 */
import { createHash } from 'node:crypto'
import type { Queue } from 'bullmq'
import type { Queryable } from '../db/database.ts'
import type { OrderState } from '../orders/order-state.ts'
import type { NotificationJob, NotificationSettings, TriggerKind } from './notification.schemas.ts'

/** A notification row that needs a delayed job. */
export interface ScheduledNotification {
  id: number
  ruleId: string
  orderId: string
  sendAt: Date
  jobId: string
}

/** A notification row that was cancelled; its delayed job should go. */
export interface CancelledNotification {
  id: number
  ruleId: string
  orderId: string
  jobId: string
}

/** What a transaction scheduled and cancelled; hand it to `enqueueNotificationJobs` after commit. */
export interface NotificationPlan {
  schedule: ScheduledNotification[]
  cancel: CancelledNotification[]
}

export const emptyPlan = (): NotificationPlan => ({ schedule: [], cancel: [] })

/** Merges plans, e.g. of several transitions in one transaction. */
export function mergePlans(...plans: NotificationPlan[]): NotificationPlan {
  return { schedule: plans.flatMap((p) => p.schedule), cancel: plans.flatMap((p) => p.cancel) }
}

/**
 * The job id of a notification: derived from rule, order and occurrence, so scheduling the same
 * notification twice (or re-creating it after a Redis flush) names the same job. No `:` in it.
 */
export function notificationJobId(ruleId: string, orderId: string, occurrence: string): string {
  return `notify-${ruleId}-${orderId}-${createHash('sha256').update(occurrence).digest('hex').slice(0, 16)}`
}

/** States after which nothing is waited for any more: reminders of every kind are cancelled. */
const finalStates: readonly OrderState[] = ['cancelled', 'rejected', 'completed']

export interface OrderTransition {
  orderId: string
  /** Undefined for a new order. */
  from?: OrderState
  to: OrderState
  /** When the order entered `to`; the same value for a retry of the same transition. */
  at: Date
}

interface InsertedRow {
  id: number
  rule_id: string
  order_id: string
  occurrence: string
  status: string
  send_at: Date
}

interface CancelledRow {
  id: number
  rule_id: string
  order_id: string
  occurrence: string
}

async function insertNotification(
  tx: Queryable,
  row: { ruleId: string; orderId: string; occurrence: string; trigger: TriggerKind; states?: readonly string[]; enteredAt?: Date; invoiceRef?: string; dueDate?: string; sendAt: Date },
): Promise<ScheduledNotification | undefined> {
  // On conflict the existing row answers: scheduling twice is one notification, and a row that was
  // already sent or cancelled stays so.
  const [r] = await tx.query<InsertedRow>(
    `insert into notifications (rule_id, order_id, occurrence, trigger, states, entered_at, invoice_ref, due_date, send_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     on conflict (rule_id, order_id, occurrence) do update set rule_id = notifications.rule_id
     returning id, rule_id, order_id, occurrence, status, send_at`,
    [
      row.ruleId,
      row.orderId,
      row.occurrence,
      row.trigger,
      row.states ? JSON.stringify(row.states) : null,
      row.enteredAt ?? null,
      row.invoiceRef ?? null,
      row.dueDate ?? null,
      row.sendAt,
    ],
  )
  if (!r || r.status !== 'scheduled') return undefined
  return { id: r.id, ruleId: r.rule_id, orderId: r.order_id, sendAt: r.send_at, jobId: notificationJobId(r.rule_id, r.order_id, r.occurrence) }
}

const toCancelled = (r: CancelledRow): CancelledNotification => ({ id: r.id, ruleId: r.rule_id, orderId: r.order_id, jobId: notificationJobId(r.rule_id, r.order_id, r.occurrence) })

/**
 * Records what an order transition means for notifications, in the transaction that makes the
 * transition (so both commit or neither does):
 * - `entered` rules naming `to` get a notification sent at once;
 * - `waiting` rules naming `to`, when `from` is not among their states, get a reminder sent when
 *   the order has stayed `after` (moving between a rule's states is one stay, not a new one);
 * - reminders waiting for states the order has now left are cancelled, and a final state
 *   (cancelled, rejected, completed) cancels invoice reminders too.
 * Calling it again for the same transition (same `at`) changes nothing.
 *
 * @example
 * const plan = await db.transaction(async (tx) => {
 *   // ... update the order's state, record the transition ...
 *   return onOrderTransition(tx, settings, { orderId, from: 'received', to: 'pending_approval', at: new Date() })
 * })
 * await enqueueNotificationJobs(notificationQueue, plan)
 */
export async function onOrderTransition(tx: Queryable, settings: Pick<NotificationSettings, 'rules'>, t: OrderTransition): Promise<NotificationPlan> {
  const occurrenceAt = t.at.toISOString()
  // A waiting reminder is for a stay in a set of states: moving within the set keeps it.
  const cancelled = await tx.query<CancelledRow>(
    `update notifications set status = 'cancelled', cancel_reason = $3, updated_at = now()
     where order_id = $1 and status = 'scheduled'
       and ((trigger = 'waiting' and not states @> jsonb_build_array($2::text))
            or ($4 and trigger in ('invoice_due', 'invoice_overdue')))
     returning id, rule_id, order_id, occurrence`,
    [t.orderId, t.to, `the order moved to ${t.to}`, finalStates.includes(t.to)],
  )
  const schedule: ScheduledNotification[] = []
  for (const rule of settings.rules) {
    const trigger = rule.trigger
    if (trigger.on === 'entered' && trigger.states.includes(t.to)) {
      const row = await insertNotification(tx, { ruleId: rule.id, orderId: t.orderId, occurrence: `${t.to}@${occurrenceAt}`, trigger: 'entered', states: [t.to], enteredAt: t.at, sendAt: t.at })
      if (row) schedule.push(row)
    }
    if (trigger.on === 'waiting' && trigger.states.includes(t.to) && !(t.from && trigger.states.includes(t.from))) {
      const occurrence = `waiting@${occurrenceAt}`
      // A new stay replaces an older one whose end was never reported.
      cancelled.push(
        ...(await tx.query<CancelledRow>(
          `update notifications set status = 'cancelled', cancel_reason = 'a new stay began', updated_at = now()
           where order_id = $1 and rule_id = $2 and status = 'scheduled' and occurrence <> $3
           returning id, rule_id, order_id, occurrence`,
          [t.orderId, rule.id, occurrence],
        )),
      )
      const sendAt = new Date(t.at.getTime() + trigger.after)
      const row = await insertNotification(tx, { ruleId: rule.id, orderId: t.orderId, occurrence, trigger: 'waiting', states: trigger.states, enteredAt: t.at, sendAt })
      if (row) schedule.push(row)
    }
  }
  return { schedule, cancel: cancelled.map(toCancelled) }
}

export interface InvoiceDue {
  orderId: string
  /** `YYYY-MM-DD` (the invoice is due by the end of that day, UTC) or an ISO timestamp. */
  dueDate: string
  /** The invoice's number; an order with several invoices gets reminders for each. */
  invoiceRef?: string
}

const datePattern = /^\d{4}-\d{2}-\d{2}$/

/** When the invoice falls due (`invoice_due` counts back from here) and when it is overdue (`invoice_overdue` counts on). */
export function dueMoments(dueDate: string): { due: Date; overdue: Date } {
  if (datePattern.test(dueDate)) {
    const start = new Date(`${dueDate}T00:00:00.000Z`)
    if (Number.isNaN(start.getTime())) throw new RangeError(`"${dueDate}" is not a date`)
    // Due "on" a date: payable until that day ends.
    return { due: start, overdue: new Date(start.getTime() + 86_400_000) }
  }
  const at = new Date(dueDate)
  if (Number.isNaN(at.getTime())) throw new RangeError(`"${dueDate}" is not a date or timestamp`)
  return { due: at, overdue: at }
}

/**
 * Schedules the invoice reminders of every `invoice_due` and `invoice_overdue` rule for one
 * invoice, in the caller's transaction. A due-soon reminder whose due date has already passed is
 * not scheduled (the overdue rule speaks then); one whose time has passed is sent at once. A new
 * due date for the same invoice cancels the reminders for the old one. Idempotent.
 */
export async function scheduleInvoiceReminders(tx: Queryable, settings: Pick<NotificationSettings, 'rules'>, invoice: InvoiceDue, now = new Date()): Promise<NotificationPlan> {
  const ref = invoice.invoiceRef ?? 'invoice'
  const { due, overdue } = dueMoments(invoice.dueDate)
  const occurrence = `invoice:${ref}@${invoice.dueDate}`
  const cancelled = await tx.query<CancelledRow>(
    `update notifications set status = 'cancelled', cancel_reason = 'the invoice due date changed', updated_at = now()
     where order_id = $1 and status = 'scheduled' and trigger in ('invoice_due', 'invoice_overdue') and invoice_ref = $2 and occurrence <> $3
     returning id, rule_id, order_id, occurrence`,
    [invoice.orderId, ref, occurrence],
  )
  const schedule: ScheduledNotification[] = []
  const dueDate = invoice.dueDate.slice(0, 10)
  for (const rule of settings.rules) {
    const trigger = rule.trigger
    let sendAt: Date | undefined
    if (trigger.on === 'invoice_due' && due.getTime() > now.getTime()) sendAt = new Date(due.getTime() - trigger.before)
    if (trigger.on === 'invoice_overdue') sendAt = new Date(overdue.getTime() + trigger.after)
    if (!sendAt) continue
    const row = await insertNotification(tx, { ruleId: rule.id, orderId: invoice.orderId, occurrence, trigger: trigger.on, invoiceRef: ref, dueDate, sendAt })
    if (row) schedule.push(row)
  }
  return { schedule, cancel: cancelled.map(toCancelled) }
}

/** Cancels an order's invoice reminders (all, or one invoice's), e.g. when it is paid. In the caller's transaction. */
export async function cancelInvoiceReminders(tx: Queryable, input: { orderId: string; invoiceRef?: string; reason?: string }): Promise<NotificationPlan> {
  const cancelled = await tx.query<CancelledRow>(
    `update notifications set status = 'cancelled', cancel_reason = $3, updated_at = now()
     where order_id = $1 and status = 'scheduled' and trigger in ('invoice_due', 'invoice_overdue') and ($2::text is null or invoice_ref = $2)
     returning id, rule_id, order_id, occurrence`,
    [input.orderId, input.invoiceRef ?? null, input.reason ?? 'the invoice was paid'],
  )
  return { schedule: [], cancel: cancelled.map(toCancelled) }
}

export interface EnqueueResult {
  enqueued: number
  removed: number
  /** Jobs that could not be added or removed; the sweeper repairs additions, and a stale job finds its row cancelled. */
  failed: number
}

/**
 * Adds a delayed job unless one with its id is waiting, delayed or active. A finished job with the
 * same id is replaced, so a re-enqueue from the database is never swallowed by a stale id.
 */
export async function ensureDelayedJob(queue: Queue<NotificationJob>, n: { id: number; jobId: string; delayMs: number; correlationId: string }): Promise<boolean> {
  const existing = await queue.getJob(n.jobId)
  if (existing) {
    const state = await existing.getState()
    if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return false
    await existing.remove().catch(() => {})
  }
  await queue.add('notify', { notificationId: n.id, correlationId: n.correlationId }, { jobId: n.jobId, delay: Math.max(0, Math.round(n.delayMs)) })
  return true
}

/**
 * Mirrors a committed plan into the queue: a delayed job per scheduled notification, and removes
 * the jobs of cancelled ones. Call it after the transaction commits; it never throws (Redis is
 * transport only: what it misses, the sweeper and the worker's own re-check make up for).
 */
export async function enqueueNotificationJobs(queue: Queue<NotificationJob>, plan: NotificationPlan, now = Date.now()): Promise<EnqueueResult> {
  const result: EnqueueResult = { enqueued: 0, removed: 0, failed: 0 }
  for (const n of plan.schedule) {
    try {
      if (await ensureDelayedJob(queue, { id: n.id, jobId: n.jobId, delayMs: n.sendAt.getTime() - now, correlationId: `notification-${n.id}` })) result.enqueued++
    } catch {
      result.failed++
    }
  }
  for (const n of plan.cancel) {
    try {
      // An active job cannot be removed; it finds its row cancelled and sends nothing.
      if ((await queue.remove(n.jobId)) === 1) result.removed++
    } catch {
      result.failed++
    }
  }
  return result
}
