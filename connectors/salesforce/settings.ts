/**
 * The Salesforce connection's settings and secrets: which org may send outbound messages, how a
 * notification becomes an event, and, for writeback, where to log in and which Order fields take
 * our status. Validated once at start (errors name the path, e.g. `settings.fields.state`).
 */
import { z } from 'zod'

export const salesforceConnectorId = 'salesforce'

/** Salesforce record ids: 15 case-sensitive characters, or 18 with the case-safe suffix. */
export const salesforceIdPattern = /^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$/

const apiName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'an API name such as ERP_Order_Number__c')

/** A field of OrderItem, directly or through up to four parent relationships (SOQL's limit is five levels). */
const orderItemFieldPath = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*){0,4}$/, 'an OrderItem field path such as Product2.ProductCode, Product2.StockKeepingUnit or SKU__c')

/** Which Order field takes each part of our status; a part without a field is not written. */
export const statusFieldsSchema = z.object({
  state: apiName.describe('Text or picklist field for the order state (received, approved, shipped, ...), e.g. Orderbridge_State__c'),
  paymentState: apiName.optional().describe('Field for the payment state (not_invoiced, invoiced, partially_paid, paid)'),
  erpOrderNumber: apiName.optional().describe('Field for the ERP sales order number'),
  invoiceNumber: apiName.optional().describe('Field for the invoice number'),
  carrier: apiName.optional().describe('Field for the carrier'),
  trackingNumber: apiName.optional().describe('Field for the tracking number'),
  paidAmount: apiName.optional().describe('Currency or number field for the amount paid (sent as an exact JSON number)'),
  currency: apiName.optional().describe('Field for the currency of the amount paid'),
  comment: apiName.optional().describe('Text area field for a rejection comment'),
})
export type StatusFields = z.infer<typeof statusFieldsSchema>

export const settingsSchema = z.object({
  organizationId: z
    .string()
    .regex(/^00D[a-zA-Z0-9]{12}([a-zA-Z0-9]{3})?$/, 'an organization id (15 or 18 characters, starting 00D)')
    .describe('The org allowed to send outbound messages (Setup → Company Information → Salesforce.com Organization ID)'),
  sObjectType: apiName.default('Order').describe('The sObject the outbound message carries; notifications of any other type are refused'),
  eventType: z
    .enum(['auto', 'order.created', 'order.updated'])
    .default('auto')
    .describe('auto: order.created when CreatedDate equals LastModifiedDate (both selected in the message), otherwise order.updated'),
  cancelledStatuses: z.array(z.string().min(1)).default([]).describe('Order Status values that mean cancelled (e.g. ["Cancelled"]); such notifications become order.cancelled'),
  myDomainUrl: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe('The org\'s My Domain URL, e.g. https://acme.my.salesforce.com; the OAuth token endpoint is under it. Without it no order lines can be read (every order waits in needs-attention) and nothing is written back'),
  apiVersion: z.string().regex(/^\d{2,3}\.0$/, 'a REST API version such as 62.0').default('62.0').describe('REST API version used to read order lines and for writeback'),
  skuField: orderItemFieldPath
    .default('Product2.ProductCode')
    .describe(
      'The OrderItem field that holds the SKU, read with the order lines (default Product2.ProductCode). It is attached at its own path (Product2.StockKeepingUnit → {"Product2": {"StockKeepingUnit": …}}): point the inbound mapping\'s lines[].sku at the same path',
    ),
  tokenTtlMs: z
    .number()
    .int()
    .positive()
    .default(15 * 60_000)
    .describe('How long an access token is reused (Salesforce does not say when it expires); an INVALID_SESSION_ID answer logs in again earlier'),
  timeoutMs: z.number().int().positive().default(10_000).describe('How long one request may take before it is abandoned, in milliseconds'),
  fields: statusFieldsSchema.optional().describe('Order fields that take our status; required for writeback'),
  notes: z
    .object({
      object: z.enum(['Task', 'FeedItem']).default('Task').describe('Task (an activity on the order) or FeedItem (a Chatter post on the order)'),
      taskStatus: z.string().min(1).default('Not Started').describe('Status of the Tasks created'),
      externalIdField: apiName
        .optional()
        .describe('A Task text field marked External ID (e.g. Orderbridge_Key__c): notes are upserted by our idempotency key, so a retry never adds a second one'),
    })
    .default({ object: 'Task', taskStatus: 'Not Started' }),
})

export const secretsSchema = z.object({
  clientId: z.string().min(1).optional().describe('Consumer key of the external client app (client credentials flow); needed to read order lines and for writeback'),
  clientSecret: z.string().min(1).optional().describe('Consumer secret of the external client app; needed to read order lines and for writeback'),
})

export type SalesforceSettings = z.infer<typeof settingsSchema>
export type SalesforceSecrets = z.infer<typeof secretsSchema>
