/**
 * Notification and reminder rules as admins write them (config file `notifications:`): what
 * triggers a message (entering a state, waiting in states too long, an invoice falling due or
 * overdue), which channels carry it (a note on the CRM order, signed webhooks, email), and the
 * queue job that sends one. Schemas and pure helpers only.
 */
import { z } from 'zod'
import { orderStates } from '../orders/order-state.ts'

export const notificationQueueName = 'notifications'

/** One job per notification row; the row, not the job, says what to send. */
export const notificationJobSchema = z.object({ notificationId: z.number().int().positive(), correlationId: z.string() })
export type NotificationJob = z.infer<typeof notificationJobSchema>

const durationUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const durationPattern = /^(\d+(?:ms|s|m|h|d))+$/

/** `"4h"`, `"1h30m"`, `"200ms"`, `"2d"` → milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!durationPattern.test(text)) return undefined
  let ms = 0
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * durationUnits[unit as keyof typeof durationUnits]
  return Number.isSafeInteger(ms) ? ms : undefined
}

/** Milliseconds as people read them: `2d 4h`, `48h` is `2d`, `90m` is `1h 30m`, `200ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`
  const parts: string[] = []
  let rest = Math.round(ms / 1000)
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size)
    rest -= n * size
    if (n) parts.push(`${n}${unit}`)
  }
  return parts.slice(0, 2).join(' ')
}

/** A duration: `"4h"`, `"1h30m"`, `"200ms"`, `"2d"`, or a number of milliseconds. Becomes milliseconds. */
export const durationSchema = z.union([z.int().nonnegative(), z.string()], { error: 'must be a duration such as "4h" or a number of milliseconds' }).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const ms = parseDuration(v)
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as "200ms", "45s", "30m", "4h", "1h30m" or "2d"' })
    return z.NEVER
  }
  return ms
})

const stateListSchema = z.array(z.enum(orderStates)).min(1)

export const notificationTriggerSchema = z.discriminatedUnion('on', [
  z.strictObject({
    on: z.literal('entered').describe('When the order enters one of `states`'),
    states: stateListSchema,
  }),
  z.strictObject({
    on: z.literal('waiting').describe('When the order has stayed in `states` (moving among them counts as staying) for `after`'),
    states: stateListSchema,
    after: durationSchema,
  }),
  z.strictObject({
    on: z.literal('invoice_due').describe('`before` ahead of an invoice due date (not sent once the due date has passed)'),
    before: durationSchema,
  }),
  z.strictObject({
    on: z.literal('invoice_overdue').describe('`after` past an invoice due date (a date-only due date ends at midnight UTC)'),
    after: durationSchema.default(0),
  }),
])
export type NotificationTrigger = z.infer<typeof notificationTriggerSchema>
export type TriggerKind = NotificationTrigger['on']

/** Placeholders a title or message may use, e.g. `Order {externalId} waits for approval`. */
export const templateFields = ['orderId', 'externalId', 'state', 'total', 'currency', 'customer', 'owner', 'waited', 'invoice', 'dueDate', 'rule'] as const
export type TemplateField = (typeof templateFields)[number]

const templateSchema = z
  .string()
  .min(1)
  .max(2000)
  .superRefine((text, ctx) => {
    for (const [, name] of text.matchAll(/\{(\w+)\}/g)) {
      if (!(templateFields as readonly string[]).includes(name!)) ctx.addIssue({ code: 'custom', message: `unknown placeholder {${name}}; use ${templateFields.map((f) => `{${f}}`).join(', ')}` })
    }
  })

const emailPattern = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/

/** `owner` (the order's sales owner), `customer` (where an address is configured) or an email address. */
export const recipientSchema = z
  .string()
  .refine((r) => r === 'owner' || r === 'customer' || emailPattern.test(r), 'must be owner, customer or an email address')

export const notificationRuleSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'lower-case letters, digits, _ and -').max(60),
  description: z.string().max(500).optional(),
  trigger: notificationTriggerSchema,
  crm: z.boolean().default(false).describe("A note (task or feed entry) on the CRM's order"),
  webhooks: z.array(z.string().min(1)).default([]).describe('Ids of `notifications.webhooks` endpoints'),
  email: z.strictObject({ to: z.array(recipientSchema).min(1) }).optional().describe('Sent only when `notifications.email` (SMTP) is configured'),
  title: templateSchema.optional(),
  message: templateSchema.optional(),
})
export type NotificationRule = z.infer<typeof notificationRuleSchema>

export const webhookEndpointSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'lower-case letters, digits, _ and -'),
  url: z.url({ protocol: /^https?$/ }),
  secret: z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, 'a Standard Webhooks secret: whsec_ followed by base64'),
  timeoutMs: z.int().positive().max(120_000).default(10_000),
})
export type WebhookEndpoint = z.infer<typeof webhookEndpointSchema>

export const emailSettingsSchema = z.strictObject({
  smtp: z.strictObject({
    host: z.string().min(1),
    port: z.int().min(1).max(65535).default(587),
    /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
    secure: z.boolean().optional(),
    /** Refuse to send unless the server upgrades to TLS. */
    requireTLS: z.boolean().default(false),
    user: z.string().optional(),
    pass: z.string().optional(),
    timeoutMs: z.int().positive().max(300_000).default(30_000),
  }),
  from: z.string().min(3).describe('The From header, e.g. "orderbridge <orderbridge@example.com>"'),
  /** Addresses by the order's owner id and customer id; `ownersTable`/`customersTable` name lookup tables that an admin edits instead. */
  owners: z.record(z.string(), z.string().regex(emailPattern, 'must be an email address')).default({}),
  customers: z.record(z.string(), z.string().regex(emailPattern, 'must be an email address')).default({}),
  ownersTable: z.string().optional().describe('Lookup table: owner id → email address'),
  customersTable: z.string().optional().describe('Lookup table: customer id → email address'),
})
export type EmailSettings = z.infer<typeof emailSettingsSchema>

/** The default: on `shipped`, a note on the CRM order for the sales owner, and an email to the owner and (where configured) the customer. */
export const defaultNotificationRules: NotificationRule[] = [
  {
    id: 'order-shipped',
    description: 'Tell the sales owner and, where an address is configured, the customer that the order has shipped',
    trigger: { on: 'entered', states: ['shipped'] },
    crm: true,
    webhooks: [],
    email: { to: ['owner', 'customer'] },
  },
]

export const notificationSettingsSchema = z
  .strictObject({
    webhooks: z.array(webhookEndpointSchema).default([]),
    email: emailSettingsSchema.optional(),
    rules: z.array(notificationRuleSchema).default(defaultNotificationRules),
  })
  .superRefine((settings, ctx) => {
    const endpointIds = new Set<string>()
    settings.webhooks.forEach((w, i) => {
      if (endpointIds.has(w.id)) ctx.addIssue({ code: 'custom', path: ['webhooks', i, 'id'], message: `duplicate webhook id "${w.id}"` })
      endpointIds.add(w.id)
    })
    const ruleIds = new Set<string>()
    settings.rules.forEach((rule, i) => {
      if (ruleIds.has(rule.id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id "${rule.id}"` })
      ruleIds.add(rule.id)
      rule.webhooks.forEach((id, j) => {
        if (!endpointIds.has(id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'webhooks', j], message: `no webhook endpoint with id "${id}"` })
      })
      if (!rule.crm && !rule.webhooks.length && !rule.email) ctx.addIssue({ code: 'custom', path: ['rules', i], message: 'name at least one channel: crm, webhooks or email' })
    })
  })
export type NotificationSettings = z.infer<typeof notificationSettingsSchema>
export type NotificationSettingsInput = z.input<typeof notificationSettingsSchema>

/**
 * The settings to run with: the configuration file's `notifications:` section, or without one the
 * defaults (the `order-shipped` rule; no webhooks; email only once SMTP is configured).
 */
export function resolveNotificationSettings(configured: NotificationSettings | undefined): NotificationSettings {
  return configured ?? notificationSettingsSchema.parse({})
}
