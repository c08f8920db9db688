import { z } from 'zod'

// A path is relative to baseUrl. A value such as `//host/x` or `https://host/x` would make the HTTP
// client ignore baseUrl and send the bearer token to another host, so only `/...` paths are accepted.
const pathSchema = z.string().regex(/^\/(?!\/)/, 'must be a path that starts with a single "/"')

/** Field names in the ERP's sales-order answers that reconciliation reads; the defaults are the demo ERP's. */
export const salesOrderFieldsSchema = z.object({
  reference: z.string().min(1).default('reference').describe('Our reference (the order id).'),
  status: z.string().min(1).default('status').describe('The order status; one of `cancelledStatuses` means cancelled.'),
  cancelledStatuses: z.array(z.string()).default(['cancelled']).describe('Status values that mean the order is cancelled.'),
  currency: z.string().min(1).default('currency'),
  total: z.string().min(1).default('total').describe('The order total, a decimal string (or a whole number).'),
  lines: z.string().min(1).default('lines'),
  sku: z.string().min(1).default('itemCode').describe('In each line: the item code (SKU).'),
  quantity: z.string().min(1).default('qty').describe('In each line: the quantity.'),
  updatedAt: z.string().min(1).default('updatedAt'),
})

/** Where the ERP lists invoices, and the field names of its answers; the defaults are the demo ERP's. */
export const invoiceEndpointsSchema = z.object({
  listPath: pathSchema
    .default('/invoices')
    .describe('Reconciliation: GET here with `references=a,b,c` for the invoices of several orders (by our reference), or `since=&after=&limit=` for a page. Answers a JSON array or { items: [...] }.'),
  idField: z.string().min(1).default('id'),
  numberField: z.string().min(1).default('number'),
  referenceField: z.string().min(1).default('reference'),
  salesOrderIdField: z.string().min(1).default('salesOrderId'),
  currencyField: z.string().min(1).default('currency'),
  amountField: z.string().min(1).default('amount'),
  paidField: z.string().min(1).default('paid'),
  statusField: z.string().min(1).default('status'),
})

/** What reconciliation reads; every field has a default, so the section may be left out. */
export const reconciliationEndpointsSchema = z.object({
  salesOrders: z
    .object({
      listPath: pathSchema
        .default('/sales-orders')
        .describe('GET here with `references=a,b,c` for the sales orders of several references at once, or with `since=&after=&limit=` for a page of the orders changed since (by id, after `after`). Answers a JSON array or { items: [...] }.'),
      referenceBatchSize: z.number().int().min(1).max(500).default(100).describe('At most this many references per batched lookup (keeps the URL short).'),
      fields: salesOrderFieldsSchema.prefault({}).describe('Where a sales order in the answers keeps what is compared.'),
    })
    .prefault({}),
  invoices: invoiceEndpointsSchema.prefault({}),
})
export type GenericRestReconciliationSettings = z.infer<typeof reconciliationEndpointsSchema>

export const salesOrderEndpointsSchema = z.object({
  createPath: pathSchema.default('/sales-orders').describe('POST here to create a sales order; the answer carries its id.'),
  updatePath: pathSchema
    .refine((path) => path.includes('{id}'), 'must contain the {id} placeholder')
    .default('/sales-orders/{id}')
    .describe('PUT here to update a sales order; {id} is replaced by its URL-encoded external id.'),
  findByReferencePath: pathSchema
    .refine((path) => path.includes('{reference}'), 'must contain the {reference} placeholder')
    .default('/sales-orders?reference={reference}')
    .describe('GET here to find sales orders by our reference; {reference} is replaced URL-encoded. Answers a JSON array or { items: [...] }.'),
  cancelPath: pathSchema
    .refine((path) => path.includes('{id}'), 'must contain the {id} placeholder')
    .default('/sales-orders/{id}/cancel')
    .describe('POST here to cancel a sales order; {id} is replaced by its URL-encoded external id. Cancelling twice must succeed.'),
  idField: z.string().min(1).default('id').describe('The field of a sales order in the answers that holds its external id.'),
})

export const creditEndpointsSchema = z.object({
  customerCreditPath: pathSchema
    .refine((path) => path.includes('{customerId}'), 'must contain the {customerId} placeholder')
    .default('/customers/{customerId}/credit')
    .describe('GET here for a customer\'s credit; {customerId} is replaced URL-encoded. Answers { limit, outstanding, currency, overdue }.'),
})

export const settingsSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the ERP API, e.g. https://erp.example.com/api/v1.'),
  timeoutMs: z.number().int().positive().default(15_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
  healthPath: pathSchema.default('/health').describe('GET here answers 2xx when the ERP is up; used by the connection check.'),
  salesOrders: salesOrderEndpointsSchema.prefault({}).describe('Where the sales-order endpoints are and how their answers name the id.'),
  credit: creditEndpointsSchema.prefault({}).describe('Where customer credit is read.'),
  reconciliation: reconciliationEndpointsSchema
    .optional()
    .describe('Reconciliation: where sales orders and invoices are read in batches, and their field names (defaults: the demo ERP\'s).'),
})

export const secretsSchema = z.object({
  apiToken: z.string().min(1).describe('API token, sent as `Authorization: Bearer <token>`.'),
  webhookSecret: z
    .string()
    .startsWith('whsec_')
    .optional()
    .describe('Standard Webhooks secret the ERP signs its invoice and payment events with; needed to receive them.'),
})

export type GenericRestSettings = z.infer<typeof settingsSchema>
export type GenericRestSecrets = z.infer<typeof secretsSchema>
