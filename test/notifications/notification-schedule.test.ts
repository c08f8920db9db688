/**
 * Scheduling in the caller's transaction, on PGlite and PostgreSQL (no queue): which transitions
 * schedule and cancel what, stays across several states, invoice due dates, idempotency, job ids;
 * and the configuration's rules with their errors by field path.
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { validateConfig } from '../../src/config.ts'
import { dueMoments, notificationJobId, onOrderTransition, scheduleInvoiceReminders } from '../../src/notifications/notification-schedule.ts'
import { formatDuration, notificationSettingsSchema, parseDuration, resolveNotificationSettings } from '../../src/notifications/notification.schemas.ts'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'
import { createOrder, moveOrder, notificationsOf, webhookSecret } from './notification-fixtures.ts'

const settings = notificationSettingsSchema.parse({
  webhooks: [{ id: 'ops', url: 'http://127.0.0.1:9/hooks', secret: webhookSecret }],
  rules: [
    { id: 'approval-waiting', trigger: { on: 'waiting', states: ['pending_approval'], after: '4h' }, crm: true },
    { id: 'unshipped', trigger: { on: 'waiting', states: ['approved', 'reserved', 'pending_shipment'], after: '48h' }, webhooks: ['ops'] },
    { id: 'order-shipped', trigger: { on: 'entered', states: ['shipped'] }, crm: true },
    { id: 'invoice-due', trigger: { on: 'invoice_due', before: '3d' }, crm: true },
    { id: 'invoice-overdue', trigger: { on: 'invoice_overdue' }, crm: true },
  ],
})

describe.each(engines)('scheduling notifications (%s)', (engine) => {
  let test: TestDatabase
  beforeAll(async () => {
    test = await openTestDatabase(engine)
  })
  afterAll(() => test?.drop())

  const rows = async (orderId: string) => (await notificationsOf(test.db, orderId)).map((n) => [n.rule_id, n.status])

  it('schedules a new order waiting for approval, sending after the rule delay', async () => {
    const order = await createOrder(test.db)
    const at = new Date('2026-11-26T08:00:00.000Z')
    const plan = await test.db.transaction((tx) => onOrderTransition(tx, settings, { orderId: order.id, to: 'pending_approval', at }))
    expect(plan.cancel).toEqual([])
    expect(plan.schedule).toEqual([
      { id: expect.any(Number), ruleId: 'approval-waiting', orderId: order.id, sendAt: new Date('2026-11-26T12:00:00.000Z'), jobId: expect.stringMatching(/^notify-approval-waiting-[0-9a-f-]{36}-[0-9a-f]{16}$/) },
    ])
    expect(plan.schedule[0]!.jobId).not.toContain(':')
    expect(plan.schedule[0]!.jobId).toBe(notificationJobId('approval-waiting', order.id, `waiting@${at.toISOString()}`))
  })

  it('keeps one reminder for a stay across several states, and cancels it when the order leaves them', async () => {
    const order = await createOrder(test.db)
    const t = (minutes: number) => new Date(Date.UTC(2026, 10, 26, 8, minutes))
    const approved = await moveOrder(test.db, settings, order.id, 'received', 'approved', { at: t(0) })
    expect(approved.schedule.map((s) => [s.ruleId, s.sendAt.toISOString()])).toEqual([['unshipped', '2026-11-28T08:00:00.000Z']])
    for (const [from, to, minute] of [['approved', 'reserved', 5], ['reserved', 'pending_shipment', 10]] as const) {
      expect(await moveOrder(test.db, settings, order.id, from, to, { at: t(minute) })).toEqual({ schedule: [], cancel: [] })
    }
    expect(await rows(order.id)).toEqual([['unshipped', 'scheduled']])
    const shipped = await moveOrder(test.db, settings, order.id, 'pending_shipment', 'shipped', { at: t(20) })
    expect(shipped.cancel.map((c) => c.ruleId)).toEqual(['unshipped'])
    expect(shipped.schedule.map((s) => [s.ruleId, s.sendAt.toISOString()])).toEqual([['order-shipped', t(20).toISOString()]])
    expect(await rows(order.id)).toEqual([
      ['unshipped', 'cancelled'],
      ['order-shipped', 'scheduled'],
    ])
  })

  it('starts a new stay when the order comes back, replacing a stay whose end was never reported', async () => {
    const order = await createOrder(test.db)
    await moveOrder(test.db, settings, order.id, 'received', 'approved', { at: new Date('2026-11-26T08:00:00Z') })
    const again = await moveOrder(test.db, settings, order.id, 'on_hold', 'approved', { at: new Date('2026-11-26T09:00:00Z') })
    expect(again.cancel.map((c) => c.ruleId)).toEqual(['unshipped'])
    expect(again.schedule.map((s) => s.sendAt.toISOString())).toEqual(['2026-11-28T09:00:00.000Z'])
    expect(await rows(order.id)).toEqual([
      ['unshipped', 'cancelled'],
      ['unshipped', 'scheduled'],
    ])
  })

  it('schedules invoice reminders before and after the due date, and moves them with the due date', async () => {
    const order = await createOrder(test.db, 'shipped')
    const now = new Date('2026-12-01T10:00:00Z')
    const first = await test.db.transaction((tx) => scheduleInvoiceReminders(tx, settings, { orderId: order.id, dueDate: '2026-12-10', invoiceRef: 'INV-9' }, now))
    expect(first.schedule.map((s) => [s.ruleId, s.sendAt.toISOString()])).toEqual([
      ['invoice-due', '2026-12-07T00:00:00.000Z'],
      ['invoice-overdue', '2026-12-11T00:00:00.000Z'],
    ])
    expect(await test.db.transaction((tx) => scheduleInvoiceReminders(tx, settings, { orderId: order.id, dueDate: '2026-12-10', invoiceRef: 'INV-9' }, now))).toEqual(first)

    const moved = await test.db.transaction((tx) => scheduleInvoiceReminders(tx, settings, { orderId: order.id, dueDate: '2026-12-20', invoiceRef: 'INV-9' }, now))
    expect(moved.cancel.map((c) => c.ruleId).sort()).toEqual(['invoice-due', 'invoice-overdue'])
    expect(moved.schedule).toHaveLength(2)

    // Due already: no due-soon reminder, the overdue one at once.
    const late = await test.db.transaction((tx) => scheduleInvoiceReminders(tx, settings, { orderId: order.id, dueDate: '2026-11-30', invoiceRef: 'INV-10' }, now))
    expect(late.schedule.map((s) => [s.ruleId, s.sendAt.toISOString()])).toEqual([['invoice-overdue', '2026-12-01T00:00:00.000Z']])

    // A final state ends every invoice reminder of the order.
    const cancelled = await moveOrder(test.db, settings, order.id, 'shipped', 'completed')
    expect(cancelled.cancel).toHaveLength(3)
    expect((await notificationsOf(test.db, order.id)).every((n) => n.status === 'cancelled')).toBe(true)
  })
})

describe('durations and due dates', () => {
  it.each([
    ['200ms', 200],
    ['45s', 45_000],
    ['30m', 1_800_000],
    ['4h', 14_400_000],
    ['1h30m', 5_400_000],
    ['2d', 172_800_000],
    ['4 h', undefined],
    ['4', undefined],
    ['-1h', undefined],
  ])('%s → %s ms', (text, ms) => expect(parseDuration(text)).toBe(ms))

  it('formats what an order waited', () => {
    expect([formatDuration(200), formatDuration(90_000), formatDuration(172_800_000 + 3_600_000 * 4 + 60_000)]).toEqual(['200ms', '1m 30s', '2d 4h'])
  })

  it('reads a date-only due date as payable until the end of that day (UTC)', () => {
    expect(dueMoments('2026-12-10')).toEqual({ due: new Date('2026-12-10T00:00:00Z'), overdue: new Date('2026-12-11T00:00:00Z') })
    expect(dueMoments('2026-12-10T15:30:00+08:00')).toEqual({ due: new Date('2026-12-10T07:30:00Z'), overdue: new Date('2026-12-10T07:30:00Z') })
    expect(() => dueMoments('someday')).toThrow(RangeError)
  })
})

describe('notification rules in the configuration file', () => {
  const base = { connections: [{ id: 'erp', connector: 'generic-rest' }], pipeline: { erp: 'erp' } }
  const problems = (notifications: unknown) => {
    try {
      validateConfig({ ...base, notifications }, 'orderbridge.yaml')
    } catch (err) {
      return (err as { issues: { path: string; message: string }[] }).issues
    }
    throw new Error('expected the configuration to be refused')
  }

  it('names each problem by its path under notifications', () => {
    expect(
      problems({
        webhooks: [{ id: 'ops', url: 'ftp://example.com', secret: 'plain' }],
        email: { smtp: { host: 'smtp.example.com', port: 'x' }, from: 'a@b.c', owners: { 'rep-1': 'not an address' } },
        rules: [
          { id: 'a', trigger: { on: 'waiting', states: ['pending_approval'], after: '4 hours' }, crm: true },
          { id: 'b', trigger: { on: 'entered', states: ['teleported'] }, email: { to: ['boss'] } },
          { id: 'c', trigger: { on: 'sometimes' }, crm: true },
          { id: 'd', trigger: { on: 'entered', states: ['shipped'] }, title: 'Order {number}', crm: true },
        ],
      }),
    ).toEqual(
      expect.arrayContaining([
        { path: 'notifications.webhooks[0].url', message: expect.any(String) },
        { path: 'notifications.webhooks[0].secret', message: 'a Standard Webhooks secret: whsec_ followed by base64' },
        { path: 'notifications.email.smtp.port', message: expect.any(String) },
        { path: 'notifications.email.owners.rep-1', message: 'must be an email address' },
        { path: 'notifications.rules[0].trigger.after', message: expect.stringContaining('must be a duration such as "200ms"') },
        { path: 'notifications.rules[1].trigger.states[0]', message: expect.any(String) },
        { path: 'notifications.rules[1].email.to[0]', message: 'must be owner, customer or an email address' },
        { path: 'notifications.rules[2].trigger.on', message: expect.any(String) },
        { path: 'notifications.rules[3].title', message: expect.stringContaining('unknown placeholder {number}') },
      ]),
    )
  })

  it('checks that rules name configured webhooks and at least one channel', () => {
    expect(
      problems({
        webhooks: [{ id: 'ops', url: 'https://hooks.example.com/ob', secret: webhookSecret }],
        rules: [
          { id: 'a', trigger: { on: 'entered', states: ['shipped'] }, webhooks: ['ops', 'finance'] },
          { id: 'a', trigger: { on: 'invoice_overdue' } },
        ],
      }),
    ).toEqual([
      { path: 'notifications.rules[0].webhooks[1]', message: 'no webhook endpoint with id "finance"' },
      { path: 'notifications.rules[1].id', message: 'duplicate rule id "a"' },
      { path: 'notifications.rules[1]', message: 'name at least one channel: crm, webhooks or email' },
    ])
  })

  it('defaults to telling the sales owner and the customer when an order ships', () => {
    expect(validateConfig({ ...base, notifications: {} }, 'x').notifications).toEqual(resolveNotificationSettings(undefined))
    expect(resolveNotificationSettings(undefined).rules).toEqual([
      expect.objectContaining({ id: 'order-shipped', trigger: { on: 'entered', states: ['shipped'] }, crm: true, email: { to: ['owner', 'customer'] } }),
    ])
    // A parsed configuration parses again to itself (tests and the demo pass parsed configurations).
    const parsed = validateConfig({ ...base, notifications: { rules: [{ id: 'w', trigger: { on: 'waiting', states: ['approved'], after: '48h' }, crm: true }] } }, 'x')
    expect(validateConfig(parsed, 'again')).toEqual(parsed)
    expect(parsed.notifications!.rules[0]!.trigger).toEqual({ on: 'waiting', states: ['approved'], after: 172_800_000 })
  })

  it('the commented example in docker/orderbridge.yaml is valid once uncommented', () => {
    const text = readFileSync(new URL('../../docker/orderbridge.yaml', import.meta.url), 'utf8')
    const start = text.indexOf('# approval:')
    expect(start).toBeGreaterThan(0)
    const example = parseYaml(
      text
        .slice(start)
        .split('\n')
        .filter((line) => line.startsWith('#'))
        .map((line) => line.replace(/^# ?/, ''))
        .join('\n'),
    ) as Record<string, unknown>
    const config = validateConfig({ ...base, ...example }, 'docker/orderbridge.yaml (example)')
    expect(config.approval?.rules.length).toBeGreaterThan(0)
    expect(config.notifications?.rules.length).toBeGreaterThan(0)
  })
})
