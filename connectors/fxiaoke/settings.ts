/**
 * The Fxiaoke connection's settings and secrets. A connection may be push-only (a callback token,
 * nothing else), poll-only, or both, and writes status back when `writeback` names the fields.
 */
import { z } from 'zod'
import { failureKinds } from '../../src/connector-kit/index.ts'

export const fxiaokeConnectorId = 'fxiaoke'

/** A field or object api_name, e.g. `SalesOrderObj`, `field_erp_no__c`. */
const apiName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'must be an api_name such as field_erp_no__c')

export const writebackFieldsSchema = z
  .object({
    state: apiName.optional().describe('Field that takes the order state (values through `writeback.values.state`).'),
    paymentState: apiName.optional().describe('Field that takes the payment state (values through `writeback.values.paymentState`).'),
    erpOrderNumber: apiName.optional().describe('Field that takes the ERP sales order number.'),
    invoiceNumber: apiName.optional().describe('Field that takes the invoice number.'),
    carrier: apiName.optional().describe('Field that takes the carrier of the shipment.'),
    trackingNumber: apiName.optional().describe('Field that takes the tracking number of the shipment.'),
    paidAmount: apiName.optional().describe('Field that takes the amount paid so far (a decimal string).'),
    comment: apiName.optional().describe('Field that takes the last comment (e.g. why an order was refused).'),
  })
  .describe('Which SalesOrderObj field (api_name) takes each part of a status update; parts without a field are not written.')
export type WritebackFields = z.infer<typeof writebackFieldsSchema>

export const settingsSchema = z.object({
  baseUrl: z
    .url({ protocol: /^https?$/ })
    .default('https://open.fxiaoke.com')
    .describe('Open API gateway of the tenant\'s cloud, e.g. https://open.fxiaoke.com (not www.fxiaoke.com).'),
  timeoutMs: z.number().int().positive().default(15_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
  currentOpenUserId: z.string().min(1).optional().describe('The operator (FSUID_…) API calls run as; their data permissions apply. Needed to poll and to write back.'),
  corpId: z.string().min(1).optional().describe('The company account (FSCID_…); by default the one the token endpoint answers with.'),
  objects: z
    .object({
      order: apiName.default('SalesOrderObj').describe('The order object.'),
      line: apiName.default('SalesOrderProductObj').describe('The order line object (its records are the details of an order).'),
      lineOrderField: apiName.default('order_id').describe('The line field that holds its order\'s _id.'),
    })
    .prefault({}),
  poll: z
    .object({
      intervalMs: z.number().int().min(1_000).describe('How often changed orders are read, in milliseconds.'),
      pageSize: z.number().int().min(1).max(100).default(100).describe('Records per query (the API takes at most 100).'),
      since: z.iso.datetime({ offset: true }).optional().describe('The first poll reads orders changed from this instant on; by default from the first poll on.'),
      settleMs: z.number().int().min(0).default(5_000).describe('Changes younger than this are left for the next poll, so a record committed late with an earlier timestamp is not passed over.'),
    })
    .optional()
    .describe('Poll SalesOrderObj for changes (Fxiaoke has no documented change webhook). Absent: no polling.'),
  writeback: z
    .object({
      fields: writebackFieldsSchema,
      values: z
        .object({
          state: z.record(z.string(), z.string()).optional().describe('Canonical state → option value of the state field, e.g. { shipped: "option_shipped" }; unmapped states are written as they are.'),
          paymentState: z.record(z.string(), z.string()).optional().describe('Canonical payment state → option value.'),
        })
        .prefault({}),
      triggerWorkFlow: z.boolean().default(false).describe('Whether our updates trigger the CRM\'s workflows. Off by default, so a workflow that pushes orders to us is not fired by our own writeback.'),
      triggerApprovalFlow: z.boolean().default(false).describe('Whether our updates trigger approval flows.'),
    })
    .optional()
    .describe('Status written back to SalesOrderObj through /cgi/crm/v2/data/update. Absent: nothing is written back.'),
  notes: z
    .object({
      objectApiName: apiName.describe('Object whose records are notes, e.g. a custom object object_order_note__c with a lookup to SalesOrderObj.'),
      orderField: apiName.describe('Its lookup field that takes the order\'s _id.'),
      titleField: apiName.default('name').describe('Field that takes the note\'s title.'),
      bodyField: apiName.describe('Field that takes the note\'s text.'),
      keyField: apiName.optional().describe('Field that takes our idempotency key, so a retried note is looked up before it is created again.'),
    })
    .optional()
    .describe('Notes (reminders) as records of a configured object. Absent: notes are refused as a configuration failure.'),
  stock: z
    .object({
      objectApiName: apiName.default('ProductObj').describe('The product object whose records take the stock figures.'),
      skuField: apiName.default('product_code').describe('The product field that holds the SKU (产品编码 product_code by default): products are found by it.'),
      availableField: apiName.default('field_available_stock__c').describe('The (custom, number) field that takes the available quantity.'),
      onHandField: apiName.optional().describe('A field that takes the quantity on hand, when the inventory reports it.'),
      triggerWorkFlow: z.boolean().default(false).describe('Whether our stock updates trigger the CRM\'s workflows.'),
      triggerApprovalFlow: z.boolean().default(false).describe('Whether our stock updates trigger approval flows.'),
      callsPerWindow: z.number().int().min(1).default(90).describe('At most this many calls per interface (query, update) in `windowMs`, across the process: the Open API allows about 100 per 20 s per interface.'),
      windowMs: z.number().int().min(1).default(20_000).describe('The window of `callsPerWindow`, in milliseconds.'),
    })
    .optional()
    .describe('Available quantity per SKU written to product records through /cgi/crm/v2/data/update. Absent: stock levels are not pushed.'),
  callback: z
    .object({
      toleranceMs: z.number().int().positive().default(300_000).describe('How far a push\'s timeStamp may be from now, in milliseconds.'),
    })
    .prefault({}),
  tokenMarginSeconds: z.number().int().min(0).default(300).describe('A corpAccessToken is renewed this long before it expires.'),
  errorCodes: z
    .record(z.string().regex(/^-?\d+$/), z.enum(failureKinds))
    .default({})
    .describe('Extra or corrected errorCode → failure kind entries, over the built-in table (README).'),
})

export const secretsSchema = z
  .object({
    appId: z.string().min(1).optional().describe('The self-built app\'s appId (FSAID_…).'),
    appSecret: z.string().min(1).optional().describe('The app\'s appSecret.'),
    permanentCode: z.string().min(1).optional().describe('The tenant\'s permanent authorization code for the app.'),
    callbackToken: z.string().min(1).optional().describe('The token pushes are signed with (sig = SHA-1 of the sorted [token, timeStamp, nonce, content]).'),
    encodingAesKey: z
      .string()
      .regex(/^[A-Za-z0-9+/]{43}$/, 'must be the 43-character EncodingAESKey')
      .optional()
      .describe('When set, a push\'s content is AES-encrypted with it (the open platform\'s scheme); when unset, content is plain JSON.'),
  })
  .superRefine((secrets, ctx) => {
    const api = [secrets.appId, secrets.appSecret, secrets.permanentCode]
    if (api.some((v) => v !== undefined) && api.some((v) => v === undefined)) {
      for (const key of ['appId', 'appSecret', 'permanentCode'] as const) {
        if (secrets[key] === undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'appId, appSecret and permanentCode go together' })
      }
    }
  })

export type FxiaokeSettings = z.infer<typeof settingsSchema>
export type FxiaokeSecrets = z.infer<typeof secretsSchema>
