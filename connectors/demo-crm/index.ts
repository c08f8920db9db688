/**
 * The demo CRM: a source of signed webhook deliveries of `{type, data}` (Standard Webhooks, or
 * HubSpot's v3 signature when the connection's `webhookVerification` says so), where data is the CRM's
 * own order document (or, for `order.approval`, its approval decision), and a target for status,
 * notes and stock levels written back over its REST API. Validation here is structural (types,
 * required fields); the mapping decides what an order's fields mean.
 */
import { z } from 'zod'
import {
  SyncFailure,
  classifyHttpError,
  defineConnector,
  inboundEventTypes,
  type CrmWritebackCapability,
  type InboundEvent,
  type InboundEventType,
} from '../../src/connector-kit/index.ts'
import { demoCrmStatusReads } from './reconciliation.ts'
import { demoCrmClient, demoCrmConnectorId, secretsSchema, settingsSchema, toCrmStatus, type DemoCrmSecrets, type DemoCrmSettings } from './client.ts'

export { demoCrmConnectorId, secretsSchema, settingsSchema, type DemoCrmSecrets, type DemoCrmSettings } from './client.ts'

const decimal = z.string().regex(/^-?\d+(\.\d+)?$/, 'must be a decimal string such as "199.00"')

export const demoCrmOrderSchema = z.object({
  order_id: z.string().min(1),
  version: z.number().int().positive(),
  account: z.object({ id: z.string().min(1), name: z.string().optional() }),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY'),
  items: z
    .array(
      z.object({
        product_code: z.string().min(1),
        qty: z.union([z.number().int().positive(), decimal]),
        // Money never travels as a float.
        price: decimal,
        /** Percent off the list price; `price` is already the discounted price. */
        discount: decimal.optional(),
      }),
    )
    .min(1),
  owner: z.string().optional(),
  created_at: z.string().optional(),
  ship_to: z.object({ name: z.string(), street: z.string(), city: z.string(), postal_code: z.string(), country: z.string() }).partial().optional(),
  /** The day the customer wants the goods, YYYY-MM-DD. */
  deliver_by: z.string().optional(),
})
export type DemoCrmOrder = z.infer<typeof demoCrmOrderSchema>

/** An approval decided in the CRM (for connections that leave approval to the CRM). */
export const demoCrmApprovalSchema = z.object({
  order_id: z.string().min(1),
  decision: z.enum(['approved', 'rejected']),
  level: z.string().min(1).optional(),
  comment: z.string().optional(),
  approver: z.string().min(1).optional(),
  decided_at: z.string().optional(),
})
export type DemoCrmApproval = z.infer<typeof demoCrmApprovalSchema>

export const demoCrmEventTypes = [...inboundEventTypes, 'order.approval'] as const

export type DemoCrmWebhook = { type: InboundEventType; data: DemoCrmOrder } | { type: 'order.approval'; data: DemoCrmApproval }

const eventTypeSchema = z.enum(demoCrmEventTypes)

/**
 * `{type, data}` where data's schema depends on the type. Written as one object rather than a
 * discriminated union so that a delivery with an unknown type still gets every field of its order
 * checked: the 422 names all that is wrong at once.
 */
export const demoCrmWebhookSchema = z.object({ type: z.unknown(), data: z.unknown() }).transform((body, ctx): DemoCrmWebhook => {
  const type = eventTypeSchema.safeParse(body.type)
  const data = (type.success && type.data === 'order.approval' ? demoCrmApprovalSchema : demoCrmOrderSchema).safeParse(body.data)
  for (const [prefix, result] of [['type', type], ['data', data]] as const) {
    for (const issue of result.error?.issues ?? []) ctx.addIssue({ code: 'custom', message: issue.message, path: [prefix, ...issue.path] })
  }
  if (!type.success || !data.success) return z.NEVER
  return { type: type.data, data: data.data } as DemoCrmWebhook
})

export function demoCrmEventToInbound(body: DemoCrmWebhook): InboundEvent {
  if (body.type !== 'order.approval') return { type: body.type, externalId: body.data.order_id, sourceVersion: body.data.version, document: body.data }
  const approval = body.data
  return {
    type: 'order.approval',
    externalId: approval.order_id,
    // A decision is a fact of its own, not a version of the order.
    sourceVersion: 0,
    document: {
      decision: approval.decision === 'approved' ? 'approve' : 'reject',
      ...(approval.level !== undefined ? { level: approval.level } : {}),
      ...(approval.comment !== undefined ? { comment: approval.comment } : {}),
      ...(approval.approver !== undefined ? { by: approval.approver } : {}),
    },
  }
}

export const demoCrmWriteback: CrmWritebackCapability<DemoCrmSettings, DemoCrmSecrets> = {
  updateOrderStatus: (ctx, crmOrderId, update) => demoCrmClient(ctx).putStatus(crmOrderId, toCrmStatus(update), ctx.idempotencyKey),
  addNote: (ctx, crmOrderId, note) => demoCrmClient(ctx).addNote(crmOrderId, note, ctx.idempotencyKey),
  pushStockLevels: (ctx, levels) => demoCrmClient(ctx).putStock(levels, ctx.idempotencyKey),
  ...demoCrmStatusReads,
}

export const demoCrm = defineConnector({
  manifest: {
    id: demoCrmConnectorId,
    version: '0.2.0',
    displayName: 'Demo CRM',
    roles: ['crm'],
    settingsSchema,
    secretsSchema,
  },
  // A push-only connection (no baseUrl) has nothing to call; /health is open, so the token is proved apart.
  check: async (ctx) => {
    // The secret the chosen signature scheme needs; without it every delivery would be refused.
    const hubspot = ctx.settings.webhookVerification?.scheme === 'hubspot-v3'
    if (hubspot ? !ctx.secrets.hubspotClientSecret : !ctx.secrets.webhookSecret) {
      throw new SyncFailure('config', hubspot ? 'webhookVerification is hubspot-v3 but the secret hubspotClientSecret is not set' : 'the secret webhookSecret is not set (or choose webhookVerification hubspot-v3 with hubspotClientSecret)', { connectorId: demoCrmConnectorId })
    }
    if (ctx.settings.baseUrl === undefined) return
    const client = demoCrmClient(ctx)
    await client.health()
    await client.authenticate()
  },
  classify: (err) => classifyHttpError(err, demoCrmConnectorId),
  webhooks: {
    // The default; a connection's `webhookVerification` setting may choose HubSpot's v3 signature instead.
    verification: 'standard-webhooks',
    bodySchema: demoCrmWebhookSchema,
    toEvent: demoCrmEventToInbound,
  },
  // A push-only connection (no baseUrl) takes no status back.
  crm: { ...demoCrmWriteback, enabled: (settings) => settings.baseUrl !== undefined },
})
