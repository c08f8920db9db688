/**
 * Notifications through the whole running stack (HTTP, workers, Redis, PostgreSQL and the demo
 * simulators), not through a recorder: a shipped order's note reaches the demo CRM through the
 * worker's CRM note sender and the demo CRM connector; an invoice event with a due date schedules
 * its reminders and a payment in full cancels them; and each call a notification makes, sent or
 * refused, is on the order's timeline.
 */
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { verifyStandardWebhook } from '../../src/connector-kit/index.ts'
import type { Database } from '../../src/db/database.ts'
import { notificationJobId } from '../../src/notifications/notification-schedule.ts'
import { createNotificationQueue } from '../../src/notifications/notification.worker.ts'
import { notificationSettingsSchema, type NotificationJob } from '../../src/notifications/notification.schemas.ts'
import { createRedis } from '../../src/queue/queues.ts'
import { linkOf, waitForOrder, type Order } from '../support/order-probes.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'
import { redisUrl } from '../support/test-redis.ts'
import { notificationsOf, startMailServer, startWebhookReceiver, webhookSecret, type MailServer, type WebhookReceiver } from './notification-fixtures.ts'

type TimelineEntry = { kind: string; cause: string; detail: Record<string, unknown> | null }

const day = 86_400_000
/** A date-only due date `days` from today (UTC), as the ERP writes it. */
const dueIn = (days: number) => new Date(Date.now() + days * day).toISOString().slice(0, 10)

describe('notifications through the running stack', () => {
  let stack: TestStack
  let receiver: WebhookReceiver
  let mail: MailServer
  // The stack's own database and notifications queue, to look at what it scheduled.
  let db: Database
  let redis: Redis
  let queue: Queue<NotificationJob>

  beforeAll(async () => {
    ;[receiver, mail] = await Promise.all([startWebhookReceiver(), startMailServer()])
    const notifications = notificationSettingsSchema.parse({
      webhooks: [{ id: 'ops', url: receiver.url, secret: webhookSecret, timeoutMs: 2000 }],
      email: { smtp: { host: '127.0.0.1', port: mail.port, timeoutMs: 2000 }, from: 'orderbridge <orderbridge@example.com>', owners: { 'rep-9': 'rep9@example.com' } },
      rules: [
        { id: 'order-shipped', trigger: { on: 'entered', states: ['shipped'] }, crm: true, webhooks: ['ops'], email: { to: ['owner'] } },
        { id: 'order-delivered', trigger: { on: 'entered', states: ['delivered'] }, webhooks: ['ops'] },
        { id: 'invoice-due-soon', trigger: { on: 'invoice_due', before: '2d' }, crm: true },
        { id: 'invoice-overdue', trigger: { on: 'invoice_overdue', after: 0 }, crm: true },
      ],
    })
    stack = await startTestStack('postgres', { wms: { stock: { 'SKU-100': 1000 } }, configure: (config) => ({ ...config, notifications }) })
    db = await stack.openDatabase()
    redis = createRedis(redisUrl)
    queue = createNotificationQueue(redis, `{${stack.env.ORDERBRIDGE_QUEUE_PREFIX}}`)
  })

  afterAll(async () => {
    await queue?.close()
    redis?.disconnect()
    await db?.close()
    await stack?.close()
    await Promise.all([receiver?.close(), mail?.close()])
  })

  const externalIdOf = (o: Order, operation: string) => linkOf(o, operation)!.externalId!

  /** An order from the demo CRM, reserved in the WMS and created in the ERP. */
  async function placeOrder(n: number, externalId: string): Promise<Order> {
    await stack.crm.send('order.created', { ...sampleOrder(n, externalId), owner: 'rep-9', items: [{ product_code: 'SKU-100', qty: 1, price: '10.00' }] })
    return waitForOrder(stack, externalId, 'pending shipment', (o) => o.state === 'pending_shipment')
  }
  const statusOf = async (orderId: string, ruleId: string) => (await notificationsOf(db, orderId)).find((n) => n.rule_id === ruleId)?.status
  const waitForStatus = (orderId: string, ruleId: string, status: string) =>
    stack.waitFor(async () => (await statusOf(orderId, ruleId)) === status, () => `${ruleId} of ${orderId} to be ${status}`)
  const notificationCalls = async (orderId: string): Promise<TimelineEntry[]> =>
    (await stack.api(`/api/v1/orders/${orderId}/timeline`)).body.timeline.filter(
      (t: TimelineEntry) => t.kind === 'external_call' && String(t.detail?.operation ?? '').startsWith('notification.'),
    )
  const notesOn = (crmOrderId: string) => stack.crmSimulator.notes().filter((n) => n.order_id === crmOrderId)

  it('on shipped, puts a note on the order in the demo CRM, and the timeline lists the note, the webhook and the email', async () => {
    const order = await placeOrder(11, 'NT-SHIP')
    stack.wms.ship(externalIdOf(order, 'inventory.reserve'), { carrier: 'SF Express', trackingNumber: 'SF000111' })
    await waitForOrder(stack, 'NT-SHIP', 'shipped', (o) => o.state === 'shipped')

    // worker.ts crmNoteSender → the demo CRM connector's addNote → POST /orders/NT-SHIP/notes.
    const [note] = await stack.waitFor(async () => notesOn('NT-SHIP').length > 0 && notesOn('NT-SHIP'), 'the note in the demo CRM')
    expect(note).toMatchObject({ order_id: 'NT-SHIP', title: 'Order NT-SHIP is shipped', body: expect.stringMatching(/^Order NT-SHIP for .+ \(10\.00 CNY\) is now shipped\.$/) })
    await waitForStatus(order.id, 'order-shipped', 'sent')
    expect(notesOn('NT-SHIP')).toHaveLength(1)

    const [row] = await notificationsOf(db, order.id)
    const hooks = receiver.received.filter((w) => JSON.parse(w.body.toString('utf8')).data.order.id === order.id)
    expect(hooks).toHaveLength(1)
    expect(verifyStandardWebhook(webhookSecret, hooks[0]!.headers as never, hooks[0]!.body)).toEqual({ ok: true })
    expect(mail.received.filter((m) => m.raw.includes('NT-SHIP')).map((m) => m.to)).toEqual([['rep9@example.com']])

    const call = { rule: 'order-shipped', notificationId: row!.id, outcome: 'sent', durationMs: expect.any(Number) }
    expect(await notificationCalls(order.id)).toEqual([
      expect.objectContaining({ cause: 'notification order-shipped: CRM note on demo-crm sent', detail: { operation: 'notification.crm', connection: 'demo-crm', ...call } }),
      expect.objectContaining({ cause: 'notification order-shipped: webhook ops sent', detail: { operation: 'notification.webhook', endpoint: 'ops', ...call } }),
      expect.objectContaining({ cause: 'notification order-shipped: email sent', detail: { operation: 'notification.email', to: ['rep9@example.com'], ...call } }),
    ])
  })

  it('puts a refused send on the timeline as a failed call', async () => {
    const order = await placeOrder(12, 'NT-REFUSED')
    const reservation = externalIdOf(order, 'inventory.reserve')
    stack.wms.ship(reservation)
    await waitForStatus(order.id, 'order-shipped', 'sent')
    // The endpoint refuses the next delivery for good: the delivered notification's webhook.
    receiver.answers.push(410)
    stack.wms.deliver(reservation)
    await waitForStatus(order.id, 'order-delivered', 'failed')

    const delivered = (await notificationsOf(db, order.id)).find((n) => n.rule_id === 'order-delivered')!
    expect(delivered.last_error).toMatch(/^webhook ops: /)
    const refused = (await notificationCalls(order.id)).filter((t) => t.detail?.rule === 'order-delivered')
    expect(refused).toEqual([
      expect.objectContaining({
        cause: 'notification order-delivered: webhook ops failed',
        detail: expect.objectContaining({ operation: 'notification.webhook', endpoint: 'ops', outcome: 'failed', notificationId: delivered.id, error: delivered.last_error }),
      }),
    ])
  })

  it('schedules the reminders of an invoice due later as delayed jobs, and a payment in full cancels them and removes the jobs', async () => {
    const order = await placeOrder(13, 'NT-PAID')
    const dueDate = dueIn(10)
    const invoice = stack.erp.invoice(externalIdOf(order, 'salesOrders.upsert'), { dueDate })
    const rows = await stack.waitFor(async () => {
      const found = await notificationsOf(db, order.id)
      return found.length === 2 && found
    }, 'both invoice reminders to be scheduled')

    const jobIdOf = (r: (typeof rows)[number]) => notificationJobId(r.rule_id, order.id, r.occurrence)
    const [sendAt] = await db.query<{ due: Date; overdue: Date }>(
      `select (select send_at from notifications where order_id = $1 and rule_id = 'invoice-due-soon') as due,
              (select send_at from notifications where order_id = $1 and rule_id = 'invoice-overdue') as overdue`,
      [order.id],
    )
    // Two days before the due date begins; once the due date has ended.
    expect(sendAt!.due.toISOString()).toBe(new Date(Date.parse(`${dueDate}T00:00:00Z`) - 2 * day).toISOString())
    expect(sendAt!.overdue.toISOString()).toBe(new Date(Date.parse(`${dueDate}T00:00:00Z`) + day).toISOString())
    expect(rows.map((r) => [r.rule_id, r.status, r.occurrence])).toEqual([
      ['invoice-due-soon', 'scheduled', `invoice:${invoice.number}@${dueDate}`],
      ['invoice-overdue', 'scheduled', `invoice:${invoice.number}@${dueDate}`],
    ])
    for (const r of rows) expect(await (await queue.getJob(jobIdOf(r)))?.getState()).toBe('delayed')

    stack.erp.pay(invoice.id, invoice.amount)
    await waitForOrder(stack, 'NT-PAID', 'paid', (o) => o.paymentState === 'paid')
    expect((await notificationsOf(db, order.id)).map((r) => [r.rule_id, r.status, r.cancel_reason])).toEqual([
      ['invoice-due-soon', 'cancelled', 'paid'],
      ['invoice-overdue', 'cancelled', 'paid'],
    ])
    // The jobs go after the payment's transaction commits.
    await stack.waitFor(async () => (await Promise.all(rows.map((r) => queue.getJob(jobIdOf(r))))).every((job) => job === undefined), 'the delayed jobs to be removed')
    expect(notesOn('NT-PAID')).toEqual([])
  })

  it('sends the overdue reminder of an invoice whose due date has passed at once, as a note in the demo CRM', async () => {
    const order = await placeOrder(14, 'NT-OVERDUE')
    const dueDate = dueIn(-1)
    const invoice = stack.erp.invoice(externalIdOf(order, 'salesOrders.upsert'), { dueDate })
    const [note] = await stack.waitFor(async () => notesOn('NT-OVERDUE').length > 0 && notesOn('NT-OVERDUE'), 'the overdue note in the demo CRM')
    expect(note!.title).toBe(`Invoice ${invoice.number} for order NT-OVERDUE is overdue`)
    expect(note!.body).toContain(`was due on ${dueDate} and is not paid`)

    await waitForStatus(order.id, 'invoice-overdue', 'sent')
    // Due yesterday: too late for "due soon", which is not scheduled at all.
    expect((await notificationsOf(db, order.id)).map((r) => [r.rule_id, r.status])).toEqual([['invoice-overdue', 'sent']])
    expect((await notificationCalls(order.id)).map((t) => t.cause)).toEqual(['notification invoice-overdue: CRM note on demo-crm sent'])
  })
})
