/**
 * Salesforce as a CRM: Order outbound messages (SOAP) in, one event per notification, and the
 * order's status written back to configured Order fields over the REST API, with notes as Tasks or
 * Chatter posts. Outbound messages carry only the Order's own fields, never its OrderItems: the
 * `enrichment` step reads them (and the Account) with one SOQL query in the normalize worker (see
 * enrichment.ts, the README and mappings/salesforce.to-canonical.order.yaml).
 */
import {
  SyncFailure,
  defineConnector,
  type CustomWebhookCapability,
  type CrmWritebackCapability,
  type OrderStatusUpdate,
  type ReceivedDelivery,
  type WebhookAnswer,
  type WebhookRejected,
} from '../../src/connector-kit/index.ts'
import { salesforceClient, type FieldValue } from './client.ts'
import { orderLinesQuery, salesforceOrderLines } from './enrichment.ts'
import { classifySalesforceError } from './errors.ts'
import { receiveOutboundMessage } from './inbound.ts'
import { salesforceConnectorId, secretsSchema, settingsSchema, type SalesforceSecrets, type SalesforceSettings, type StatusFields } from './settings.ts'
import { ackEnvelope, faultEnvelope } from './soap.ts'

export { salesforceConnectorId, secretsSchema, settingsSchema, type SalesforceSecrets, type SalesforceSettings } from './settings.ts'
export { classifySalesforceError } from './errors.ts'
export { orderLinesQuery, salesforceOrderLines } from './enrichment.ts'

const soapContentType = 'text/xml; charset=utf-8'

export const salesforceOutboundMessages: CustomWebhookCapability<SalesforceSettings, SalesforceSecrets> = {
  verification: 'custom',
  // Outbound messages are SOAP 1.1: text/xml. application/xml is taken too, for proxies that rewrite it.
  contentTypes: ['text/xml', 'application/xml'],
  receive: ({ raw, settings }) => receiveOutboundMessage(raw, settings),
  acknowledge: (_delivery: ReceivedDelivery): WebhookAnswer => ({ contentType: soapContentType, body: ackEnvelope() }),
  refuse: (rejection: WebhookRejected): WebhookAnswer => ({ contentType: soapContentType, body: faultEnvelope(rejection.message) }),
}

/** Our status in the Order fields the settings name; parts without a field, or without a value, stay out. */
export function toOrderFields(update: OrderStatusUpdate, fields: StatusFields): Record<string, FieldValue> {
  const out: Record<string, FieldValue> = { [fields.state]: update.state }
  const parts: [keyof StatusFields, string | undefined][] = [
    ['paymentState', update.paymentState],
    ['erpOrderNumber', update.erpOrderNumber],
    ['invoiceNumber', update.invoiceNumber],
    ['carrier', update.carrier],
    ['trackingNumber', update.trackingNumber],
    ['currency', update.currency],
    ['comment', update.comment],
  ]
  for (const [part, value] of parts) {
    const field = fields[part]
    if (field !== undefined && value !== undefined) out[field] = value
  }
  if (fields.paidAmount !== undefined && update.paidAmount !== undefined) out[fields.paidAmount] = { decimal: update.paidAmount }
  return out
}

/** A well-formed Order id that no org has: the check's query must find nothing. */
const noSuchOrder = '801000000000000AAA'

const noFields = () => new SyncFailure('config', 'settings.fields names no Order field for the state, so nothing can be written back', { connectorId: salesforceConnectorId })

export const salesforceWriteback: CrmWritebackCapability<SalesforceSettings, SalesforceSecrets> = {
  // A push-only connection (no My Domain URL or no fields) takes no status back.
  enabled: (settings) => settings.myDomainUrl !== undefined && settings.fields !== undefined,
  async updateOrderStatus(ctx, crmOrderId, update) {
    if (!ctx.settings.fields) throw noFields()
    await salesforceClient(ctx).updateOrder(crmOrderId, toOrderFields(update, ctx.settings.fields))
  },
  async addNote(ctx, crmOrderId, note) {
    const client = salesforceClient(ctx)
    const notes = ctx.settings.notes
    if (notes.object === 'FeedItem') {
      // FeedItem takes no custom fields, so a retry after a lost answer can post twice (see README).
      await client.createRecord('FeedItem', { ParentId: crmOrderId, Type: 'TextPost', Body: `${note.title}\n\n${note.body}`.slice(0, 10_000) })
      return
    }
    const task = { WhatId: crmOrderId, Subject: note.title.slice(0, 255), Description: note.body.slice(0, 32_000), Status: notes.taskStatus }
    if (notes.externalIdField !== undefined) await client.upsertRecord('Task', notes.externalIdField, ctx.idempotencyKey, task)
    else await client.createRecord('Task', task)
  },
}

export const salesforce = defineConnector({
  manifest: {
    id: salesforceConnectorId,
    version: '0.1.0',
    displayName: 'Salesforce',
    roles: ['crm'],
    settingsSchema,
    secretsSchema,
    // The org's concurrent long-request limit is shared with every other integration.
    limits: { concurrency: 4 },
  },
  // Logs in, runs the order lines query (so a SKU field or object the integration user cannot read
  // fails here, not on the first order), and checks that every configured Order field can be written.
  // Without a My Domain URL nothing can be reached: every order then waits in needs-attention.
  check: async (ctx) => {
    if (ctx.settings.myDomainUrl === undefined) return
    const client = salesforceClient(ctx)
    await client.query(orderLinesQuery(noSuchOrder, ctx.settings.skuField))
    if (!salesforceWriteback.enabled!(ctx.settings)) return
    const described = await client.describeOrder()
    const updateable = new Set(described.filter((f) => f.updateable).map((f) => f.name))
    const missing = Object.values(ctx.settings.fields ?? {}).filter((name) => !updateable.has(name))
    if (missing.length) throw new SyncFailure('config', `Order has no field the integration user can update named ${missing.join(', ')}`, { connectorId: salesforceConnectorId })
  },
  classify: (err) => classifySalesforceError(err),
  customWebhooks: salesforceOutboundMessages,
  // Outbound messages carry no OrderItems: they are read in the worker, after the event is stored.
  enrichment: salesforceOrderLines,
  crm: salesforceWriteback,
})
