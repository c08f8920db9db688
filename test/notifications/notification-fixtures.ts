/**
 * What the notification tests share: orders in the database and their transitions, a webhook
 * receiver and an SMTP server on loopback (both real servers), and a CRM note recorder.
 */
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'
import type { Queryable } from '../../src/db/database.ts'
import type { OrderState } from '../../src/orders/order-state.ts'
import { withTotals } from '../../src/orders/order.schemas.ts'
import type { CrmNoteSender } from '../../src/notifications/notification-channels.ts'
import { onOrderTransition, type NotificationPlan } from '../../src/notifications/notification-schedule.ts'
import type { NotificationSettings } from '../../src/notifications/notification.schemas.ts'

export const webhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'

let orderNumber = 0

/** An order row as normalize would leave it, in `state`. */
export async function createOrder(db: Queryable, state: OrderState = 'received', more: { customerId?: string; owner?: string } = {}): Promise<{ id: string; externalId: string }> {
  const id = randomUUID()
  const externalId = `SO-${++orderNumber}-${id.slice(0, 4)}`
  const document = withTotals({
    externalId,
    customer: { externalId: more.customerId ?? 'ACC-7', name: 'Hangzhou Yuntu Trading' },
    currency: 'CNY',
    owner: more.owner ?? 'rep-1',
    lines: [{ sku: 'SKU-100', quantity: '2', unitPrice: '199.00' }],
  })
  await db.query(
    `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total) values ($1, 'demo-crm', $2, $3, 1, $4, 'CNY', $5)`,
    [id, externalId, state, JSON.stringify(document), document.total],
  )
  await db.query(`insert into order_events (order_id, kind, to_state, cause) values ($1, 'received', $2, 'test')`, [id, state])
  return { id, externalId }
}

/** Moves the order and records the transition; with `tell`, notifications hear of it in the same transaction. */
export async function moveOrder(
  db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> },
  settings: Pick<NotificationSettings, 'rules'>,
  orderId: string,
  from: OrderState,
  to: OrderState,
  options: { at?: Date; tell?: boolean } = {},
): Promise<NotificationPlan> {
  return db.transaction(async (tx) => {
    await tx.query('update orders set state = $2, updated_at = now() where id = $1', [orderId, to])
    await tx.query(`insert into order_events (order_id, kind, from_state, to_state, cause) values ($1, 'transition', $2, $3, 'test')`, [orderId, from, to])
    if (options.tell === false) return { schedule: [], cancel: [] }
    return onOrderTransition(tx, settings, { orderId, from, to, at: options.at ?? new Date() })
  })
}

export interface ReceivedWebhook {
  headers: http.IncomingHttpHeaders
  body: Buffer
  at: number
}

export interface WebhookReceiver {
  url: string
  received: ReceivedWebhook[]
  /** Statuses to answer with, in order; 204 once they run out. */
  answers: number[]
  close(): Promise<void>
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      receiver.received.push({ headers: req.headers, body: Buffer.concat(chunks), at: Date.now() })
      res.statusCode = receiver.answers.shift() ?? 204
      res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}/hooks/orderbridge`,
    received: [],
    answers: [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return receiver
}

export interface ReceivedMail {
  from: string
  to: string[]
  raw: string
}

export interface MailServer {
  port: number
  received: ReceivedMail[]
  close(): Promise<void>
}

/** A real SMTP server (smtp-server) on loopback: no TLS, no auth, keeps every message. */
export async function startMailServer(): Promise<MailServer> {
  const received: ReceivedMail[] = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const from = session.envelope.mailFrom
        received.push({ from: from ? from.address : '', to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') })
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.server.address() as AddressInfo
  return { port, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

export interface CrmNotes {
  send: CrmNoteSender
  notes: Parameters<CrmNoteSender>[0][]
  /** Errors to throw, in order, before answering normally. */
  failures: Error[]
}

export function recordCrmNotes(): CrmNotes {
  const crm: CrmNotes = {
    notes: [],
    failures: [],
    async send(note) {
      const failure = crm.failures.shift()
      if (failure) throw failure
      crm.notes.push(note)
    },
  }
  return crm
}

export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface NotificationRow {
  id: number
  rule_id: string
  status: string
  occurrence: string
  attempts: number
  deliveries: Record<string, { status: string; detail?: string; to?: string[] }>
  last_error: string | null
  cancel_reason: string | null
}

export async function notificationsOf(db: Queryable, orderId: string): Promise<NotificationRow[]> {
  return db.query<NotificationRow>('select id, rule_id, status, occurrence, attempts, deliveries, last_error, cancel_reason from notifications where order_id = $1 order by id', [orderId])
}
