/**
 * The channels a notification goes out on: a note on the CRM's order (through a callback the
 * pipeline supplies), outbound webhooks signed with Standard Webhooks, and email over SMTP. Each
 * send carries an id that stays the same on every retry (webhook-id, Message-ID, the CRM
 * idempotency key), so a receiver can drop a repeat after a crash between sending and recording.
 * Knows nothing of queues or rows: notification.worker.ts decides what to send and records it.
 */
import { AxiosError } from 'axios'
import nodemailer from 'nodemailer'
import { classifyHttpError, createHttpClient, isSyncFailure, signStandardWebhook } from '../connector-kit/index.ts'
import type { Queryable } from '../db/database.ts'
import type { EmailSettings, WebhookEndpoint } from './notification.schemas.ts'

/** A channel's failure; `permanent` ones are not retried (the notification is marked failed). */
export class ChannelFailure extends Error {
  readonly permanent: boolean
  constructor(message: string, permanent: boolean, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ChannelFailure'
    this.permanent = permanent
  }
}

/** What every channel says, built once per notification. */
export interface NotificationMessage {
  /** Stays the same on every retry: webhook-id, Message-ID and the CRM idempotency key derive from it. */
  id: string
  type: string
  title: string
  body: string
  data: Record<string, unknown>
}

/**
 * Adds a note (a task or feed entry) to the CRM's order. The pipeline supplies it, usually as
 * `connection.connector.crm.addNote(ctx, crmOrderId, note)` with `ctx.idempotencyKey` set to
 * `idempotencyKey`. Throw a SyncFailure to say whether a retry can help.
 *
 * @example
 * const addCrmNote: CrmNoteSender = async ({ sourceConnection, externalId, title, body, idempotencyKey }) => {
 *   const c = connections.get(sourceConnection)
 *   await c.connector.crm!.addNote!({ ...contextOf(c), idempotencyKey, reference: orderId, mayHaveWritten: true }, externalId, { title, body })
 * }
 */
export type CrmNoteSender = (note: { orderId: string; sourceConnection: string; externalId: string; title: string; body: string; idempotencyKey: string }) => Promise<void>

export async function sendCrmNote(send: CrmNoteSender, order: { id: string; sourceConnection: string; externalId: string }, message: NotificationMessage): Promise<void> {
  try {
    await send({ orderId: order.id, sourceConnection: order.sourceConnection, externalId: order.externalId, title: message.title, body: message.body, idempotencyKey: message.id })
  } catch (err) {
    if (err instanceof ChannelFailure) throw err
    const permanent = isSyncFailure(err) && !err.retryable
    throw new ChannelFailure(`CRM note failed: ${err instanceof Error ? err.message : String(err)}`, permanent, { cause: err })
  }
}

/**
 * POSTs the message as a Standard Webhooks delivery: `{ type, timestamp, data }`, signed with the
 * endpoint's secret; `webhook-id` is the message id, the receiver's key to drop repeats.
 */
export async function sendWebhook(endpoint: WebhookEndpoint, message: NotificationMessage, now = new Date()): Promise<void> {
  const body = JSON.stringify({ type: message.type, timestamp: now.toISOString(), data: { ...message.data, title: message.title, message: message.body } })
  const headers = signStandardWebhook(endpoint.secret, message.id, Math.floor(now.getTime() / 1000), body)
  try {
    await createHttpClient({ baseURL: endpoint.url, timeoutMs: endpoint.timeoutMs }).post('', body, { headers: { ...headers, 'content-type': 'application/json' } })
  } catch (err) {
    const failure = classifyHttpError(err, `webhook:${endpoint.id}`)
    const status = err instanceof AxiosError ? err.response?.status : undefined
    throw new ChannelFailure(`webhook ${endpoint.id}: ${failure.message}`, !failure.retryable && status !== undefined, { cause: err })
  }
}

export interface EmailSender {
  send(mail: { to: string[]; subject: string; text: string; messageId: string }): Promise<{ accepted: string[] }>
  close(): void
}

export function createEmailSender(settings: EmailSettings): EmailSender {
  const { smtp } = settings
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure ?? smtp.port === 465,
    requireTLS: smtp.requireTLS,
    ...(smtp.user !== undefined ? { auth: { user: smtp.user, pass: smtp.pass ?? '' } } : {}),
    connectionTimeout: smtp.timeoutMs,
    greetingTimeout: smtp.timeoutMs,
    socketTimeout: smtp.timeoutMs,
  })
  return {
    async send(mail) {
      try {
        const info = await transport.sendMail({ from: settings.from, to: mail.to, subject: mail.subject, text: mail.text, messageId: mail.messageId })
        return { accepted: (info.accepted as (string | { address: string })[]).map((a) => (typeof a === 'string' ? a : a.address)) }
      } catch (err) {
        // SMTP 5xx is a refusal for good (bad address, relay denied); 4xx and network errors may pass later.
        const code = (err as { responseCode?: number }).responseCode
        throw new ChannelFailure(`email: ${(err as Error).message}`, code !== undefined && code >= 500, { cause: err })
      }
    },
    close: () => transport.close(),
  }
}

/** The domain of the From address, for Message-IDs. */
export function mailDomain(from: string): string {
  return /@([^\s>]+)/.exec(from)?.[1] ?? 'orderbridge.invalid'
}

async function lookupAddress(db: Queryable, table: string | undefined, key: string): Promise<string | undefined> {
  if (!table) return undefined
  const [row] = await db.query<{ value: unknown }>('select value from lookup_entries where table_name = $1 and key = $2', [table, key])
  const value = row?.value
  if (typeof value === 'string') return value
  if (value && typeof value === 'object' && typeof (value as { email?: unknown }).email === 'string') return (value as { email: string }).email
  return undefined
}

/**
 * Email addresses for recipients: `owner` and `customer` through the configured address book, then
 * its lookup tables; literal addresses as they are. Unknown owners or customers are reported, not
 * failed: the customer in particular is notified only where an address is configured.
 */
export async function resolveRecipients(
  db: Queryable,
  settings: EmailSettings,
  recipients: readonly string[],
  order: { owner?: string; customerId: string },
): Promise<{ to: string[]; missing: string[] }> {
  const to: string[] = []
  const missing: string[] = []
  for (const r of recipients) {
    if (r === 'owner') {
      const address = order.owner && (settings.owners[order.owner] ?? (await lookupAddress(db, settings.ownersTable, order.owner)))
      if (address) to.push(address)
      else missing.push(order.owner ? `owner ${order.owner}` : 'owner (the order has none)')
    } else if (r === 'customer') {
      const address = settings.customers[order.customerId] ?? (await lookupAddress(db, settings.customersTable, order.customerId))
      if (address) to.push(address)
      else missing.push(`customer ${order.customerId}`)
    } else to.push(r)
  }
  return { to: [...new Set(to)], missing }
}
