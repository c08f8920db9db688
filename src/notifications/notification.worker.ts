/**
 * Sends notifications when their delayed jobs fire. The row decides, not the job: a notification
 * is sent only while its row is `scheduled`, after re-checking in the database that the order is
 * still where the reminder expects it (else the row is cancelled), under a lease so two workers
 * never send it at once, and it is marked `sent` in the same step. Channels already delivered are
 * recorded per channel, so a retry sends only what failed, and each call to a channel, sent or
 * failed, goes on the order's timeline. Sends nothing while a transaction is open.
 */
import { randomUUID } from 'node:crypto'
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../connector-kit/index.ts'
import type { Database, Queryable } from '../db/database.ts'
import { recordHistory, type OrderEventInput } from '../orders/order.repository.ts'
import type { CanonicalOrder } from '../orders/order.schemas.ts'
import {
  ChannelFailure,
  createEmailSender,
  mailDomain,
  resolveRecipients,
  sendCrmNote,
  sendWebhook,
  type CrmNoteSender,
  type EmailSender,
  type NotificationMessage,
} from './notification-channels.ts'
import {
  formatDuration,
  notificationJobSchema,
  notificationQueueName,
  type NotificationJob,
  type NotificationRule,
  type NotificationSettings,
  type TemplateField,
  type TriggerKind,
} from './notification.schemas.ts'
import { channelCallEntry, type ChannelCall, type ChannelTarget } from './notification-timeline.ts'

export interface NotificationDeps {
  db: Database
  settings: NotificationSettings
  log: Logger
  /** Notes on the CRM's order; without it a rule's `crm` channel is skipped (and the row says so). */
  addCrmNote?: CrmNoteSender
  /** Defaults to SMTP from `settings.email` (a connection per message); without `settings.email`, a rule's `email` channel is skipped. */
  email?: EmailSender
}

/** How long a worker may take to send one notification before another may try. */
export const defaultLeaseMs = 5 * 60_000

export interface NotificationQueueOptions {
  /** Tries in all, the first included (default 10). */
  attempts?: number
  /** The first backoff delay; it doubles with each try (default 10 s). */
  backoffMs?: number
}

/** The notifications queue. Its own, so slow SMTP or a dead webhook endpoint never holds up sync. */
export function createNotificationQueue(redis: Redis, prefix: string, options: NotificationQueueOptions = {}): Queue<NotificationJob> {
  return new Queue<NotificationJob>(notificationQueueName, {
    connection: redis,
    prefix,
    defaultJobOptions: {
      attempts: options.attempts ?? 10,
      backoff: { type: 'exponential', delay: options.backoffMs ?? 10_000, jitter: 0.5 },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  })
}

interface ClaimRow {
  id: number
  rule_id: string
  order_id: string
  occurrence: string
  trigger: TriggerKind
  states: string[] | null
  entered_at: Date | null
  invoice_ref: string | null
  due_date: string | null
  status: string
  deliveries: Record<string, Delivery>
  lease_owner: string | null
  early_ms: number
  leased_ms: number
  order_state: string
  source_connection: string
  external_id: string
  document: CanonicalOrder
  currency: string
  total: string
}

/** What was delivered on one channel. */
export interface Delivery {
  status: 'sent' | 'skipped'
  at: string
  detail?: string
  to?: string[]
}

export type DeliveryOutcome =
  | { result: 'sent'; deliveries: Record<string, Delivery> }
  /** The row was not scheduled (already sent, cancelled, failed) or does not exist: nothing to do. */
  | { result: 'not_scheduled'; status: string }
  /** The re-check found the order moved on (or the rule gone): the row is now cancelled. */
  | { result: 'cancelled'; reason: string }
  /** Another worker holds the lease, or the job fired before `send_at`: try again in `retryInMs`. */
  | { result: 'busy' | 'early'; retryInMs: number }
  /** A channel refused for good, or the last try failed: the row is now failed. */
  | { result: 'failed'; error: string }

const endStates = new Set(['cancelled', 'rejected', 'completed'])

/** Why the notification must not be sent any more, or undefined when it still should be. */
async function staleReason(db: Queryable, row: ClaimRow, rule: NotificationRule | undefined): Promise<string | undefined> {
  if (!rule || rule.trigger.on !== row.trigger) return `rule ${row.rule_id} is no longer configured for this trigger`
  if (row.trigger === 'waiting') {
    const states = row.states ?? []
    if (!states.includes(row.order_state)) return `the order is ${row.order_state} now`
    // Belt and braces: a stay that ended and began again without onOrderTransition being told.
    // entered_at is the caller's clock and order_events.at the database's, so the previous
    // transition can carry a time a little after entered_at: a second's tolerance tells them apart.
    const [left] = await db.query<{ left: boolean }>(
      `select exists (select 1 from order_events where order_id = $1 and to_state is not null and at > $2::timestamptz + interval '1 second'
                        and not ($3::jsonb @> jsonb_build_array(to_state))) as left`,
      [row.order_id, row.entered_at, JSON.stringify(states)],
    )
    if (left?.left) return 'the order left the state since the reminder was scheduled'
  }
  if ((row.trigger === 'invoice_due' || row.trigger === 'invoice_overdue') && endStates.has(row.order_state)) return `the order is ${row.order_state}`
  return undefined
}

const label = (state: string) => state.replaceAll('_', ' ')

const defaultTemplates: Record<TriggerKind, { title: string; message: string }> = {
  entered: { title: 'Order {externalId} is {state}', message: 'Order {externalId} for {customer} ({total} {currency}) is now {state}.' },
  waiting: { title: 'Order {externalId} has been {state} for {waited}', message: 'Order {externalId} for {customer} ({total} {currency}) has been {state} for {waited} and needs attention.' },
  invoice_due: { title: 'Invoice {invoice} for order {externalId} is due on {dueDate}', message: 'Invoice {invoice} for order {externalId} ({customer}, {total} {currency}) is due on {dueDate}.' },
  invoice_overdue: { title: 'Invoice {invoice} for order {externalId} is overdue', message: 'Invoice {invoice} for order {externalId} ({customer}, {total} {currency}) was due on {dueDate} and is not paid.' },
}

/** The message every channel of one notification carries. Pure. */
export function renderNotification(rule: NotificationRule, row: ClaimRow, now: Date): NotificationMessage {
  const order = row.document
  const state = row.trigger === 'entered' ? (row.states?.[0] ?? row.order_state) : row.order_state
  const waitedMs = row.entered_at ? now.getTime() - row.entered_at.getTime() : 0
  const fields: Record<TemplateField, string> = {
    orderId: row.order_id,
    externalId: row.external_id,
    state: label(state),
    total: row.total,
    currency: row.currency,
    customer: order.customer?.name ?? order.customer?.externalId ?? 'unknown customer',
    owner: order.owner ?? 'no owner',
    waited: formatDuration(waitedMs),
    invoice: row.invoice_ref ?? '',
    dueDate: row.due_date ?? '',
    rule: rule.id,
  }
  const fill = (template: string) => template.replace(/\{(\w+)\}/g, (whole, name: string) => fields[name as TemplateField] ?? whole)
  const templates = defaultTemplates[row.trigger]
  return {
    id: `ntf_${row.id}`,
    type: `notification.${row.trigger}`,
    title: fill(rule.title ?? templates.title),
    body: fill(rule.message ?? templates.message),
    data: {
      notificationId: row.id,
      rule: rule.id,
      trigger: row.trigger,
      order: {
        id: row.order_id,
        source: row.source_connection,
        externalId: row.external_id,
        state: row.order_state,
        total: row.total,
        currency: row.currency,
        customerId: order.customer?.externalId,
        owner: order.owner,
      },
      ...(row.trigger === 'entered' || row.trigger === 'waiting' ? { states: row.states, enteredAt: row.entered_at?.toISOString() } : {}),
      ...(row.trigger === 'waiting' ? { waitedMs } : {}),
      ...(row.invoice_ref ? { invoice: { ref: row.invoice_ref, dueDate: row.due_date } } : {}),
    },
  }
}

type Claim = { claimed: true; row: ClaimRow; owner: string } | { claimed: false; outcome: DeliveryOutcome }

async function claim(deps: NotificationDeps, notificationId: number, leaseMs: number): Promise<Claim> {
  const owner = randomUUID()
  return deps.db.transaction(async (tx) => {
    const [row] = await tx.query<ClaimRow>(
      `select n.id, n.rule_id, n.order_id, n.occurrence, n.trigger, n.states, n.entered_at, n.invoice_ref, to_char(n.due_date, 'YYYY-MM-DD') as due_date,
              n.status, n.deliveries, n.lease_owner,
              greatest(0, extract(epoch from (n.send_at - now())) * 1000)::float8 as early_ms,
              greatest(0, extract(epoch from (coalesce(n.lease_until, now()) - now())) * 1000)::float8 as leased_ms,
              o.state as order_state, o.source_connection, o.external_id, o.document, o.currency, o.total::text as total
       from notifications n join orders o on o.id = n.order_id where n.id = $1 for update of n`,
      [notificationId],
    )
    if (!row) return { claimed: false, outcome: { result: 'not_scheduled', status: 'missing' } }
    if (row.status !== 'scheduled') return { claimed: false, outcome: { result: 'not_scheduled', status: row.status } }
    if (row.leased_ms > 0) return { claimed: false, outcome: { result: 'busy', retryInMs: Math.ceil(row.leased_ms) + 50 } }
    if (row.early_ms > 0) return { claimed: false, outcome: { result: 'early', retryInMs: Math.ceil(row.early_ms) } }
    const rule = deps.settings.rules.find((r) => r.id === row.rule_id)
    const stale = await staleReason(tx, row, rule)
    if (stale) {
      await tx.query(`update notifications set status = 'cancelled', cancel_reason = $2, updated_at = now() where id = $1`, [notificationId, stale])
      return { claimed: false, outcome: { result: 'cancelled', reason: stale } }
    }
    await tx.query(
      `update notifications set lease_owner = $2, lease_until = now() + make_interval(secs => $3), attempts = attempts + 1, updated_at = now() where id = $1`,
      [notificationId, owner, leaseMs / 1000],
    )
    return { claimed: true, row, owner }
  })
}

/**
 * Sends one notification if its row is still scheduled and the order still where it should be.
 * Safe to call any number of times, from any number of workers: at most one sends, and a sent
 * notification is never sent again. Throws a retryable ChannelFailure when a channel failed and
 * `lastTry` is false (the caller retries later; channels already delivered are not repeated).
 */
export async function deliverNotification(deps: NotificationDeps, notificationId: number, options: { lastTry?: boolean; leaseMs?: number } = {}): Promise<DeliveryOutcome> {
  const got = await claim(deps, notificationId, options.leaseMs ?? defaultLeaseMs)
  if (!got.claimed) return got.outcome
  const { row, owner } = got
  const rule = deps.settings.rules.find((r) => r.id === row.rule_id)!
  const message = renderNotification(rule, row, new Date())
  const deliveries = { ...row.deliveries }
  const call = (target: ChannelTarget, outcome: ChannelCall['outcome'], startedAt: number, more: Pick<ChannelCall, 'to' | 'error'> = {}) =>
    channelCallEntry({ orderId: row.order_id, notificationId, ruleId: row.rule_id, target, outcome, durationMs: Date.now() - startedAt, ...more })
  // The delivery and its timeline entry commit together: a retry neither repeats the channel nor loses the entry.
  const record = async (key: string, delivery: Delivery, entry: OrderEventInput | undefined) => {
    await deps.db.transaction(async (tx) => {
      await tx.query(`update notifications set deliveries = deliveries || $2::jsonb, updated_at = now() where id = $1`, [notificationId, JSON.stringify({ [key]: delivery })])
      if (entry) await recordHistory(tx, [entry], [])
    })
    deliveries[key] = delivery
  }
  const at = () => new Date().toISOString()
  const failures: ChannelFailure[] = []
  const failedCalls: OrderEventInput[] = []

  const channels: { key: string; target: ChannelTarget; send: () => Promise<Delivery> }[] = []
  if (rule.crm) {
    channels.push({
      key: 'crm',
      target: { channel: 'crm', connection: row.source_connection },
      send: async () => {
        if (!deps.addCrmNote) return { status: 'skipped', at: at(), detail: 'no CRM writeback is configured' }
        await sendCrmNote(deps.addCrmNote, { id: row.order_id, sourceConnection: row.source_connection, externalId: row.external_id }, message)
        return { status: 'sent', at: at() }
      },
    })
  }
  for (const id of rule.webhooks) {
    channels.push({
      key: `webhook:${id}`,
      target: { channel: 'webhook', endpoint: id },
      send: async () => {
        const endpoint = deps.settings.webhooks.find((w) => w.id === id)
        if (!endpoint) return { status: 'skipped', at: at(), detail: `webhook endpoint ${id} is no longer configured` }
        await sendWebhook(endpoint, message)
        return { status: 'sent', at: at() }
      },
    })
  }
  if (rule.email) {
    const recipients = rule.email.to
    channels.push({
      key: 'email',
      target: { channel: 'email' },
      send: async () => {
        const settings = deps.settings.email
        if (!settings) return { status: 'skipped', at: at(), detail: 'SMTP is not configured' }
        const { to, missing } = await resolveRecipients(deps.db, settings, recipients, { owner: row.document.owner, customerId: row.document.customer?.externalId ?? '' })
        const detail = missing.length ? `no address for ${missing.join(', ')}` : undefined
        if (!to.length) return { status: 'skipped', at: at(), ...(detail ? { detail } : {}) }
        const sender = deps.email ?? createEmailSender(settings)
        try {
          await sender.send({ to, subject: message.title, text: message.body, messageId: `<${message.id}.${row.rule_id}@${mailDomain(settings.from)}>` })
        } finally {
          if (!deps.email) sender.close()
        }
        return { status: 'sent', at: at(), to, ...(detail ? { detail } : {}) }
      },
    })
  }

  for (const { key, target, send } of channels) {
    if (deliveries[key]) continue
    const startedAt = Date.now()
    let delivery: Delivery | undefined
    try {
      delivery = await send()
      await record(key, delivery, delivery.status === 'sent' ? call(target, 'sent', startedAt, delivery.to ? { to: delivery.to } : {}) : undefined)
    } catch (err) {
      const failure = err instanceof ChannelFailure ? err : new ChannelFailure(`${key}: ${(err as Error).message}`, false, { cause: err })
      failures.push(failure)
      // When only the recording failed, the call went out: the retry's entry will tell it.
      if (!delivery) failedCalls.push(call(target, 'failed', startedAt, { error: failure.message }))
      deps.log.warn({ notificationId, ruleId: row.rule_id, orderId: row.order_id, channel: key, permanent: failure.permanent, err: failure.cause ?? failure }, 'notification channel failed')
    }
  }

  if (failures.length) {
    const error = failures.map((f) => f.message).join('; ')
    const give = options.lastTry || failures.some((f) => f.permanent)
    await deps.db.transaction(async (tx) => {
      await tx.query(
        `update notifications set status = case when $3 then 'failed' else status end, last_error = $2, lease_owner = null, lease_until = null, updated_at = now()
         where id = $1 and lease_owner = $4`,
        [notificationId, error, give, owner],
      )
      await recordHistory(tx, failedCalls, [])
    })
    if (give) return { result: 'failed', error }
    throw failures[0]
  }
  await deps.db.query(
    `update notifications set status = 'sent', sent_at = now(), last_error = null, lease_owner = null, lease_until = null, updated_at = now() where id = $1 and lease_owner = $2`,
    [notificationId, owner],
  )
  deps.log.info({ notificationId, ruleId: row.rule_id, orderId: row.order_id, channels: Object.keys(deliveries) }, 'notification sent')
  return { result: 'sent', deliveries }
}

export interface NotificationWorkerOptions {
  redis: Redis
  prefix: string
  concurrency?: number
  leaseMs?: number
}

export interface NotificationWorker {
  worker: Worker<NotificationJob>
  /** Stops taking jobs; `force` leaves active ones to stalled-job recovery. */
  close(force?: boolean): Promise<void>
}

/**
 * Runs the notifications queue. Retryable channel failures back off (the queue's attempts); a
 * permanent one, or the last try, marks the notification failed. A job that finds the lease taken or
 * fired early waits without using an attempt.
 */
export function startNotificationWorker(deps: NotificationDeps, options: NotificationWorkerOptions): NotificationWorker {
  const email = deps.email ?? (deps.settings.email ? createEmailSender(deps.settings.email) : undefined)
  const run = { ...deps, ...(email ? { email } : {}) }
  const worker = new Worker<NotificationJob>(
    notificationQueueName,
    async (job: Job<NotificationJob>, token?: string) => {
      const { notificationId } = notificationJobSchema.parse(job.data)
      const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      const outcome = await deliverNotification(run, notificationId, { lastTry, leaseMs: options.leaseMs })
      if ((outcome.result === 'busy' || outcome.result === 'early') && token) {
        await job.moveToDelayed(Date.now() + outcome.retryInMs, token)
        throw new DelayedError()
      }
      if (outcome.result === 'failed') throw new UnrecoverableError(outcome.error)
      return outcome
    },
    { connection: options.redis.duplicate(), prefix: options.prefix, concurrency: options.concurrency ?? 8 },
  )
  worker.on('error', (err) => deps.log.error({ err }, 'notification worker error'))
  return {
    worker,
    async close(force) {
      await worker.close(force)
      if (!deps.email) email?.close()
    },
  }
}
