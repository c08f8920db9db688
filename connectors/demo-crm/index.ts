/**
 * The demo CRM as a source: Standard Webhooks deliveries of `{type, data}` where data is the CRM's
 * own order document. Validation here is structural (types, required fields); the mapping decides
 * what the fields mean.
 */
import { z } from 'zod'
import { defineConnector, inboundEventTypes, SyncFailure } from '../../src/connector-kit/index.ts'

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
      }),
    )
    .min(1),
  owner: z.string().optional(),
  created_at: z.string().optional(),
})
export type DemoCrmOrder = z.infer<typeof demoCrmOrderSchema>

export const demoCrmWebhookSchema = z.object({
  type: z.enum(inboundEventTypes),
  data: demoCrmOrderSchema,
})

export const settingsSchema = z.object({})
export const secretsSchema = z.object({
  webhookSecret: z.string().startsWith('whsec_').describe('Standard Webhooks secret the CRM signs deliveries with'),
})

export const demoCrm = defineConnector({
  manifest: {
    id: 'demo-crm',
    version: '0.1.0',
    displayName: 'Demo CRM',
    roles: ['crm'],
    settingsSchema,
    secretsSchema,
  },
  // The demo CRM only pushes; there is nothing to call.
  check: async () => {},
  classify: (err) => new SyncFailure('bug', 'the demo CRM makes no outbound calls', { connectorId: 'demo-crm' }, { cause: err }),
  webhooks: {
    verification: 'standard-webhooks',
    bodySchema: demoCrmWebhookSchema,
    toEvent: (body) => ({ type: body.type, externalId: body.data.order_id, sourceVersion: body.data.version, document: body.data }),
  },
})
