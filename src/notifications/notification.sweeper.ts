/**
 * Redis is transport only: every scheduled notification has a row, and this re-creates the delayed
 * jobs a Redis flush (or an enqueue lost after commit) took away. The worker's re-check makes a
 * job that is created twice, or for a row that moved on, harmless.
 */
import type { Queue } from 'bullmq'
import type { Logger } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import { ensureDelayedJob, notificationJobId } from './notification-schedule.ts'
import type { NotificationJob } from './notification.schemas.ts'

export interface NotificationSweepResult {
  /** Scheduled notifications due within the horizon that were checked. */
  checked: number
  /** Jobs that were missing and were re-created. */
  enqueued: number
}

/**
 * Redis is transport only: re-creates the delayed job of every scheduled notification due within
 * `horizonMs` (default 10 minutes) that has none, e.g. after a Redis FLUSHALL. Notifications due
 * later get theirs from a later sweep, so each sweep stays small however many reminders wait.
 */
export async function sweepNotifications(db: Database, queue: Queue<NotificationJob>, options: { horizonMs?: number } = {}): Promise<NotificationSweepResult> {
  const rows = await db.query<{ id: number; rule_id: string; order_id: string; occurrence: string; delay_ms: number }>(
    `select id, rule_id, order_id, occurrence, greatest(0, extract(epoch from (send_at - now())) * 1000)::float8 as delay_ms
     from notifications
     where status = 'scheduled' and send_at < now() + make_interval(secs => $1) and (lease_until is null or lease_until < now())
     order by send_at limit 5000`,
    [(options.horizonMs ?? 10 * 60_000) / 1000],
  )
  let enqueued = 0
  for (const r of rows) {
    const jobId = notificationJobId(r.rule_id, r.order_id, r.occurrence)
    if (await ensureDelayedJob(queue, { id: r.id, jobId, delayMs: r.delay_ms, correlationId: `sweep-notification-${r.id}` })) enqueued++
  }
  return { checked: rows.length, enqueued }
}

/** Sweeps every `intervalMs` (and once at start); keep the horizon well above the interval. */
export function startNotificationSweeper(db: Database, queue: Queue<NotificationJob>, log: Logger, intervalMs: number, options: { horizonMs?: number } = {}): { stop(): Promise<void> } {
  let running: Promise<void> | undefined
  const sweepOnce = () => {
    running ??= sweepNotifications(db, queue, options)
      .then((r) => {
        if (r.enqueued) log.info({ ...r }, 'notification sweeper re-created delayed jobs')
      })
      .catch((err) => log.warn({ err }, 'notification sweep failed; will try again'))
      .finally(() => (running = undefined))
  }
  sweepOnce()
  const timer = setInterval(sweepOnce, intervalMs)
  return {
    async stop() {
      clearInterval(timer)
      await running
    },
  }
}
