import { z } from 'zod'

// A path is relative to baseUrl. A value such as `//host/x` or `https://host/x` would make the HTTP
// client ignore baseUrl and send the bearer token to another host, so only `/...` paths are accepted.
const pathSchema = z.string().regex(/^\/(?!\/)/, 'must be a path that starts with a single "/"')

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

export const settingsSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the ERP API, e.g. https://erp.example.com/api/v1.'),
  timeoutMs: z.number().int().positive().default(15_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
  healthPath: pathSchema.default('/health').describe('GET here answers 2xx when the ERP is up; used by the connection check.'),
  salesOrders: salesOrderEndpointsSchema.prefault({}).describe('Where the sales-order endpoints are and how their answers name the id.'),
})

export const secretsSchema = z.object({
  apiToken: z.string().min(1).describe('API token, sent as `Authorization: Bearer <token>`.'),
})

export type GenericRestSettings = z.infer<typeof settingsSchema>
export type GenericRestSecrets = z.infer<typeof secretsSchema>
