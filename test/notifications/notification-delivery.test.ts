/**
 * Reminders and notifications end to end on PGlite and PostgreSQL with the real Redis: a delayed
 * job fires once after its delay on every channel (CRM note, a signed webhook to a real HTTP server,
 * email through a real SMTP server), is cancelled when the order moves on, is not duplicated when
 * scheduled twice or run twice, survives a Redis flush through the sweep, retries only the channel
 * that failed (each try on the order's timeline), and gives up on a refusal.
 */
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyStandardWebhook } from '../../src/connector-kit/index.ts'
import { SyncFailure } from '../../src/connector-kit/failure.ts'
import { timelineOf } from '../../src/orders/order.repository.ts'
import { createRedis } from '../../src/queue/queues.ts'
import { cancelInvoiceReminders, enqueueNotificationJobs, onOrderTransition, scheduleInvoiceReminders } from '../../src/notifications/notification-schedule.ts'
import { sweepNotifications } from '../../src/notifications/notification.sweeper.ts'
import { createNotificationQueue, deliverNotification, startNotificationWorker, type NotificationDeps, type NotificationWorker } from '../../src/notifications/notification.worker.ts'
import { notificationSettingsSchema, type NotificationJob, type NotificationSettings } from '../../src/notifications/notification.schemas.ts'
import { engines, openTestDatabase, uniqueName, type TestDatabase } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'
import {
  createOrder,
  moveOrder,
  notificationsOf,
  recordCrmNotes,
  sleep,
  startMailServer,
  startWebhookReceiver,
  waitFor,
  webhookSecret,
  type CrmNotes,
  type MailServer,
  type WebhookReceiver,
} from './notification-fixtures.ts'

const quiet = { info() {}, warn() {}, error() {} }

describe.each(engines)('notifications (%s)', (engine) => {
  let test: TestDatabase
  let receiver: WebhookReceiver
  let mail: MailServer
  let crm: CrmNotes
  let settings: NotificationSettings
  let redis: Redis
  let queue: Queue<NotificationJob>
  let worker: NotificationWorker
  let deps: NotificationDeps
  const prefix = uniqueName('test')

  beforeAll(async () => {
    ;[test, receiver, mail] = await Promise.all([openTestDatabase(engine), startWebhookReceiver(), startMailServer()])
    crm = recordCrmNotes()
    settings = notificationSettingsSchema.parse({
      webhooks: [{ id: 'ops', url: receiver.url, secret: webhookSecret, timeoutMs: 2000 }],
      email: {
        smtp: { host: '127.0.0.1', port: mail.port, timeoutMs: 2000 },
        from: 'orderbridge <orderbridge@example.com>',
        owners: { 'rep-1': 'rep1@example.com' },
        customers: { 'ACC-7': 'buyer@yuntu.example' },
      },
      rules: [
        { id: 'approval-waiting', trigger: { on: 'waiting', states: ['pending_approval'], after: '200ms' }, crm: true, webhooks: ['ops'], email: { to: ['owner', 'approvals@example.com'] } },
        { id: 'unshipped', trigger: { on: 'waiting', states: ['approved', 'reserved', 'pending_shipment'], after: '300ms' }, webhooks: ['ops'], title: 'Order {externalId} not shipped after {waited}' },
        { id: 'order-shipped', trigger: { on: 'entered', states: ['shipped'] }, crm: true, email: { to: ['owner', 'customer'] } },
        { id: 'invoice-due', trigger: { on: 'invoice_due', before: '200ms' }, webhooks: ['ops'] },
        { id: 'invoice-overdue', trigger: { on: 'invoice_overdue', after: '100ms' }, crm: true },
      ],
    })
    redis = createRedis(redisUrl)
    queue = createNotificationQueue(redis, `{${prefix}}`, { attempts: 3, backoffMs: 100 })
    deps = { db: test.db, settings, log: quiet, addCrmNote: crm.send }
    worker = startNotificationWorker(deps, { redis, prefix: `{${prefix}}`, concurrency: 4 })
  })

  afterAll(async () => {
    await worker?.close(true)
    await queue?.close()
    redis?.disconnect()
    await deleteQueueKeys(prefix)
    await Promise.all([test?.drop(), receiver?.close(), mail?.close()])
  })

  const webhooksFor = (orderId: string) =>
    receiver.received.filter((w) => (JSON.parse(w.body.toString('utf8')) as { data: { order: { id: string } } }).data.order.id === orderId)
  const notesFor = (orderId: string) => crm.notes.filter((n) => n.orderId === orderId)
  const mailsFor = (externalId: string) => mail.received.filter((m) => m.raw.includes(externalId))
  const statusOf = async (orderId: string, ruleId: string) => (await notificationsOf(test.db, orderId)).find((n) => n.rule_id === ruleId)?.status

  it('sends a reminder once, after its delay, as a CRM note, a signed webhook and an email', async () => {
    const order = await createOrder(test.db)
    const at = new Date()
    const plan = await moveOrder(test.db, settings, order.id, 'received', 'pending_approval', { at })
    expect(plan.schedule).toHaveLength(1)
    expect(await enqueueNotificationJobs(queue, plan)).toEqual({ enqueued: 1, removed: 0, failed: 0 })

    await waitFor(async () => (await statusOf(order.id, 'approval-waiting')) === 'sent', 'the reminder to be sent')

    const [row] = await notificationsOf(test.db, order.id)
    expect(row).toMatchObject({ status: 'sent', attempts: 1, deliveries: { crm: { status: 'sent' }, 'webhook:ops': { status: 'sent' }, email: { status: 'sent', to: ['rep1@example.com', 'approvals@example.com'] } } })

    expect(notesFor(order.id)).toEqual([
      {
        orderId: order.id,
        sourceConnection: 'demo-crm',
        externalId: order.externalId,
        title: expect.stringMatching(new RegExp(`^Order ${order.externalId} has been pending approval for \\d+ms$`)),
        body: expect.stringContaining(`Order ${order.externalId} for Hangzhou Yuntu Trading (398.00 CNY) has been pending approval for`),
        idempotencyKey: `ntf_${row!.id}`,
      },
    ])

    const [hook] = webhooksFor(order.id)
    expect(webhooksFor(order.id)).toHaveLength(1)
    expect(hook!.at - at.getTime()).toBeGreaterThanOrEqual(200)
    expect(verifyStandardWebhook(webhookSecret, hook!.headers as never, hook!.body)).toEqual({ ok: true })
    expect(verifyStandardWebhook('whsec_d3Jvbmcgc2VjcmV0', hook!.headers as never, hook!.body).ok).toBe(false)
    expect(hook!.headers['webhook-id']).toBe(`ntf_${row!.id}`)
    expect(JSON.parse(hook!.body.toString('utf8'))).toMatchObject({
      type: 'notification.waiting',
      timestamp: expect.any(String),
      data: {
        notificationId: row!.id,
        rule: 'approval-waiting',
        trigger: 'waiting',
        order: { id: order.id, externalId: order.externalId, state: 'pending_approval', total: '398.00', currency: 'CNY', customerId: 'ACC-7', owner: 'rep-1' },
        states: ['pending_approval'],
        enteredAt: at.toISOString(),
        title: expect.stringContaining(order.externalId),
      },
    })

    const mails = mailsFor(order.externalId)
    expect(mails).toHaveLength(1)
    expect(mails[0]).toMatchObject({ from: 'orderbridge@example.com', to: ['rep1@example.com', 'approvals@example.com'] })
    expect(mails[0]!.raw).toContain(`Message-ID: <ntf_${row!.id}.approval-waiting@example.com>`)
    expect(mails[0]!.raw).toMatch(new RegExp(`Subject: Order ${order.externalId} has been pending approval`))

    await sleep(400)
    expect([webhooksFor(order.id).length, notesFor(order.id).length, mailsFor(order.externalId).length]).toEqual([1, 1, 1])
  })

  it('sends nothing when the order moves on first, and removes the delayed job', async () => {
    const order = await createOrder(test.db)
    // Entry times a second ahead leave the test time to move on before anything is due, however slow the machine.
    const ahead = () => new Date(Date.now() + 1000)
    const scheduled = await moveOrder(test.db, settings, order.id, 'received', 'pending_approval', { at: ahead() })
    await enqueueNotificationJobs(queue, scheduled)
    const jobId = scheduled.schedule[0]!.jobId
    expect(await (await queue.getJob(jobId))?.getState()).toBe('delayed')

    const moved = await moveOrder(test.db, settings, order.id, 'pending_approval', 'approved', { at: ahead() })
    expect(moved.cancel).toEqual([{ id: scheduled.schedule[0]!.id, ruleId: 'approval-waiting', orderId: order.id, jobId }])
    expect(moved.schedule.map((s) => s.ruleId)).toEqual(['unshipped'])
    expect(await enqueueNotificationJobs(queue, moved)).toEqual({ enqueued: 1, removed: 1, failed: 0 })
    expect(await queue.getJob(jobId)).toBeUndefined()
    // Then it leaves `approved` too, before the 300 ms reminder.
    await enqueueNotificationJobs(queue, await moveOrder(test.db, settings, order.id, 'approved', 'cancelled'))

    await sleep(1600)
    expect((await notificationsOf(test.db, order.id)).map((n) => [n.rule_id, n.status, n.cancel_reason])).toEqual([
      ['approval-waiting', 'cancelled', 'the order moved to approved'],
      ['unshipped', 'cancelled', 'the order moved to cancelled'],
    ])
    expect([webhooksFor(order.id).length, notesFor(order.id).length]).toEqual([0, 0])
  })

  it('re-checks the order when the job fires, and cancels when it moved without notifications being told', async () => {
    const moved = await createOrder(test.db)
    const plan = await moveOrder(test.db, settings, moved.id, 'received', 'pending_approval')
    await moveOrder(test.db, settings, moved.id, 'pending_approval', 'approved', { tell: false })
    await enqueueNotificationJobs(queue, plan)

    // Entered `approved` two seconds ago, left it and came back: the same state now, but not the same stay.
    const back = await createOrder(test.db)
    const entered = await moveOrder(test.db, settings, back.id, 'received', 'approved', { at: new Date(Date.now() - 2000) })
    await test.db.query(`update order_events set at = at - interval '2 seconds' where order_id = $1`, [back.id])
    await moveOrder(test.db, settings, back.id, 'approved', 'on_hold', { tell: false })
    await moveOrder(test.db, settings, back.id, 'on_hold', 'approved', { tell: false })
    await enqueueNotificationJobs(queue, entered)

    await waitFor(async () => (await statusOf(moved.id, 'approval-waiting')) === 'cancelled', 'the first reminder to be cancelled')
    await waitFor(async () => (await statusOf(back.id, 'unshipped')) === 'cancelled', 'the second reminder to be cancelled')
    expect((await notificationsOf(test.db, moved.id))[0]!.cancel_reason).toBe('the order is approved now')
    expect((await notificationsOf(test.db, back.id))[0]!.cancel_reason).toBe('the order left the state since the reminder was scheduled')
    expect([webhooksFor(moved.id).length, webhooksFor(back.id).length]).toEqual([0, 0])
  })

  it('keeps one notification when the same transition is scheduled and enqueued twice', async () => {
    const order = await createOrder(test.db)
    const at = new Date()
    const first = await moveOrder(test.db, settings, order.id, 'received', 'approved', { at })
    const again = await test.db.transaction((tx) => onOrderTransition(tx, settings, { orderId: order.id, from: 'received', to: 'approved', at }))
    expect(again.schedule).toEqual(first.schedule)
    expect(again.cancel).toEqual([])
    expect(await enqueueNotificationJobs(queue, first)).toMatchObject({ enqueued: 1 })
    expect(await enqueueNotificationJobs(queue, again)).toMatchObject({ enqueued: 0 })

    await waitFor(async () => (await statusOf(order.id, 'unshipped')) === 'sent', 'the reminder to be sent')
    await sleep(300)
    expect(await notificationsOf(test.db, order.id)).toHaveLength(1)
    expect(webhooksFor(order.id)).toHaveLength(1)
    const title = (JSON.parse(webhooksFor(order.id)[0]!.body.toString('utf8')) as { data: { title: string } }).data.title
    expect(title).toMatch(new RegExp(`^Order ${order.externalId} not shipped after \\d+ms$`))
    // Scheduling it again after it was sent sends nothing more.
    const late = await test.db.transaction((tx) => onOrderTransition(tx, settings, { orderId: order.id, from: 'received', to: 'approved', at }))
    expect(late.schedule).toEqual([])
  })

  it('sends once when the worker runs the same notification twice, even at the same time', async () => {
    const order = await createOrder(test.db)
    const plan = await moveOrder(test.db, settings, order.id, 'received', 'pending_approval', { at: new Date() })
    const { id } = plan.schedule[0]!
    await sleep(250)
    // No job: the two runs below stand in for a job delivered twice.
    const runs = await Promise.all([deliverNotification(deps, id), deliverNotification(deps, id)])
    const results = runs.map((r) => r.result)
    expect(results.filter((r) => r === 'sent')).toHaveLength(1)
    // The other found the first one's lease (still sending) or the row already sent.
    expect(results.find((r) => r !== 'sent')).toMatch(/^(busy|not_scheduled)$/)
    expect(await deliverNotification(deps, id)).toEqual({ result: 'not_scheduled', status: 'sent' })
    expect([webhooksFor(order.id).length, notesFor(order.id).length, mailsFor(order.externalId).length]).toEqual([1, 1, 1])
  })

  it('re-creates delayed jobs after a Redis flush, from the notifications table', async () => {
    const order = await createOrder(test.db)
    const plan = await moveOrder(test.db, settings, order.id, 'received', 'pending_approval', { at: new Date(Date.now() + 1300) })
    await enqueueNotificationJobs(queue, plan)
    expect(await queue.getJob(plan.schedule[0]!.jobId)).toBeDefined()

    await deleteQueueKeys(prefix) // what FLUSHALL does to this deployment's queues
    expect(await queue.getJob(plan.schedule[0]!.jobId)).toBeUndefined()

    expect(await sweepNotifications(test.db, queue, { horizonMs: 60_000 })).toMatchObject({ enqueued: 1 })
    expect(await sweepNotifications(test.db, queue, { horizonMs: 60_000 })).toMatchObject({ enqueued: 0 })
    expect(await (await queue.getJob(plan.schedule[0]!.jobId))?.getState()).toBe('delayed')

    await waitFor(async () => (await statusOf(order.id, 'approval-waiting')) === 'sent', 'the reminder to be sent after the flush')
    expect([webhooksFor(order.id).length, notesFor(order.id).length]).toEqual([1, 1])
  })

  it('on shipped, tells the sales owner in the CRM and by email, and the customer where an address is configured', async () => {
    const known = await createOrder(test.db, 'pending_shipment')
    const unknown = await createOrder(test.db, 'pending_shipment', { customerId: 'ACC-NOBODY' })
    await enqueueNotificationJobs(queue, await moveOrder(test.db, settings, known.id, 'pending_shipment', 'shipped'))
    await enqueueNotificationJobs(queue, await moveOrder(test.db, settings, unknown.id, 'pending_shipment', 'shipped'))
    await waitFor(async () => (await statusOf(known.id, 'order-shipped')) === 'sent' && (await statusOf(unknown.id, 'order-shipped')) === 'sent', 'both to be sent')

    expect(mailsFor(known.externalId).map((m) => m.to)).toEqual([['rep1@example.com', 'buyer@yuntu.example']])
    expect(mailsFor(unknown.externalId).map((m) => m.to)).toEqual([['rep1@example.com']])
    expect(mailsFor(known.externalId)[0]!.raw).toContain(`Subject: Order ${known.externalId} is shipped`)
    expect((await notificationsOf(test.db, unknown.id))[0]!.deliveries.email).toMatchObject({ status: 'sent', to: ['rep1@example.com'], detail: 'no address for customer ACC-NOBODY' })
    expect(notesFor(known.id).map((n) => n.title)).toEqual([`Order ${known.externalId} is shipped`])
  })

  it('retries only the channel that failed', async () => {
    const order = await createOrder(test.db)
    receiver.answers.push(503)
    await enqueueNotificationJobs(queue, await moveOrder(test.db, settings, order.id, 'received', 'pending_approval', { at: new Date() }))
    await waitFor(async () => (await statusOf(order.id, 'approval-waiting')) === 'sent', 'the reminder to be sent on the second try')
    const [row] = await notificationsOf(test.db, order.id)
    expect(row).toMatchObject({ attempts: 2, last_error: null })
    // The webhook went twice (503, then accepted) with the same id; the note and the email once.
    expect(webhooksFor(order.id).map((w) => w.headers['webhook-id'])).toEqual([`ntf_${row!.id}`, `ntf_${row!.id}`])
    expect([notesFor(order.id).length, mailsFor(order.externalId).length]).toEqual([1, 1])
    // Each call is on the order's timeline, the failed try too (recorded as its attempt ends, with the row's last_error).
    const calls = (await timelineOf(test.db, order.id)).filter((t) => t.kind === 'external_call').map((t) => t.cause)
    expect(calls).toEqual([
      'notification approval-waiting: CRM note on demo-crm sent',
      'notification approval-waiting: email sent',
      'notification approval-waiting: webhook ops failed',
      'notification approval-waiting: webhook ops sent',
    ])
  })

  it('marks a notification failed when a channel refuses for good', async () => {
    const order = await createOrder(test.db)
    crm.failures.push(new SyncFailure('data', 'the CRM has no such order', { connectorId: 'demo-crm', httpStatus: 404 }))
    await enqueueNotificationJobs(queue, await moveOrder(test.db, settings, order.id, 'received', 'pending_approval', { at: new Date() }))
    await waitFor(async () => (await statusOf(order.id, 'approval-waiting')) === 'failed', 'the reminder to fail')
    const [row] = await notificationsOf(test.db, order.id)
    expect(row).toMatchObject({ attempts: 1, last_error: 'CRM note failed: the CRM has no such order', deliveries: { 'webhook:ops': { status: 'sent' }, email: { status: 'sent' } } })
    expect(row!.deliveries.crm).toBeUndefined()
  })

  it('reminds of an invoice before it is due and after, and stops when it is paid', async () => {
    const order = await createOrder(test.db, 'shipped')
    const dueDate = new Date(Date.now() + 400).toISOString()
    const plan = await test.db.transaction((tx) => scheduleInvoiceReminders(tx, settings, { orderId: order.id, dueDate, invoiceRef: 'INV-1' }))
    expect(plan.schedule.map((s) => [s.ruleId, s.sendAt.getTime() - new Date(dueDate).getTime()])).toEqual([
      ['invoice-due', -200],
      ['invoice-overdue', 100],
    ])
    await enqueueNotificationJobs(queue, plan)
    await waitFor(async () => (await statusOf(order.id, 'invoice-overdue')) === 'sent', 'the overdue reminder')
    expect(await statusOf(order.id, 'invoice-due')).toBe('sent')
    const [hook] = webhooksFor(order.id)
    expect(JSON.parse(hook!.body.toString('utf8')).data).toMatchObject({ trigger: 'invoice_due', invoice: { ref: 'INV-1', dueDate: dueDate.slice(0, 10) } })
    expect(notesFor(order.id).map((n) => n.title)).toEqual([`Invoice INV-1 for order ${order.externalId} is overdue`])

    const paid = await createOrder(test.db, 'shipped')
    const paidPlan = await test.db.transaction((tx) => scheduleInvoiceReminders(tx, settings, { orderId: paid.id, dueDate: new Date(Date.now() + 1500).toISOString(), invoiceRef: 'INV-2' }))
    await enqueueNotificationJobs(queue, paidPlan)
    const cancelled = await test.db.transaction((tx) => cancelInvoiceReminders(tx, { orderId: paid.id }))
    expect(cancelled.cancel).toHaveLength(2)
    expect(await enqueueNotificationJobs(queue, cancelled)).toMatchObject({ removed: 2 })
    await sleep(1900)
    expect((await notificationsOf(test.db, paid.id)).map((n) => [n.status, n.cancel_reason])).toEqual([
      ['cancelled', 'the invoice was paid'],
      ['cancelled', 'the invoice was paid'],
    ])
    expect(webhooksFor(paid.id)).toHaveLength(0)
  })
})
