/**
 * The HTTP client of the demo CRM connector's writeback: the only file that knows the CRM's URLs and
 * its snake_case format. It does not retry and does not classify errors; the queue and `classify()`
 * do that. Every write carries our idempotency key, so a retried note is added once.
 */
import { z } from 'zod'
import {
  SyncFailure,
  createHttpClient,
  httpClientPerConnection,
  webhookVerificationSchema,
  type ConnectorContext,
  type OrderStatusUpdate,
  type StockLevel,
} from '../../src/connector-kit/index.ts'

export const demoCrmConnectorId = 'demo-crm'

export const settingsSchema = z.object({
  baseUrl: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe('Base URL of the demo CRM API, e.g. http://127.0.0.1:4101; needed to write status, notes and stock back.'),
  timeoutMs: z.number().int().positive().default(10_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
  webhookVerification: webhookVerificationSchema
    .optional()
    .describe('How deliveries are signed: Standard Webhooks (the default, secret webhookSecret) or HubSpot\'s v3 signature ({ scheme: hubspot-v3, publicUrl }, secret hubspotClientSecret).'),
})

export const secretsSchema = z
  .object({
    webhookSecret: z.string().startsWith('whsec_').optional().describe('Standard Webhooks secret the CRM signs deliveries with (`whsec_…`); needed unless webhookVerification chooses hubspot-v3.'),
    hubspotClientSecret: z.string().min(1).optional().describe('The app\'s client secret the CRM signs HubSpot v3 signatures with; needed when webhookVerification is hubspot-v3.'),
    apiToken: z.string().min(1).optional().describe('API token for writeback, sent as `Authorization: Bearer <token>`.'),
  })
  .refine((secrets) => secrets.webhookSecret !== undefined || secrets.hubspotClientSecret !== undefined, { message: 'give webhookSecret (Standard Webhooks) or hubspotClientSecret (HubSpot v3), so deliveries can be verified', path: ['webhookSecret'] })

export type DemoCrmSettings = z.infer<typeof settingsSchema>
export type DemoCrmSecrets = z.infer<typeof secretsSchema>
export type DemoCrmContext = ConnectorContext<DemoCrmSettings, DemoCrmSecrets>

type HttpClient = ReturnType<typeof createHttpClient>

/** The CRM's status document (its own field names). */
export interface CrmStatusBody {
  status: string
  payment_status?: string
  erp_order_no?: string
  invoice_no?: string
  carrier?: string
  tracking_no?: string
  paid_amount?: string
  currency?: string
  comment?: string
}

export interface DemoCrmClient {
  health(): Promise<void>
  /** Resolves when the CRM accepts our token: reads the status of an order it does not know (404 is fine). */
  authenticate(): Promise<void>
  putStatus(crmOrderId: string, status: CrmStatusBody, idempotencyKey: string): Promise<void>
  addNote(crmOrderId: string, note: { title: string; body: string }, idempotencyKey: string): Promise<void>
  putStock(levels: readonly StockLevel[], idempotencyKey: string): Promise<void>
  /** Reconciliation: the status each order shows now (100 ids per request, in parallel); orders without one are left out. */
  getStatuses(crmOrderIds: readonly string[]): Promise<{ orderId: string; status: CrmStatusBody }[]>
}

const statusAnswerSchema = z.array(
  z.looseObject({
    order_id: z.string(),
    status: z.string(),
    payment_status: z.string().optional(),
    erp_order_no: z.string().optional(),
    invoice_no: z.string().optional(),
    carrier: z.string().optional(),
    tracking_no: z.string().optional(),
    paid_amount: z.string().optional(),
    currency: z.string().optional(),
    comment: z.string().optional(),
  }),
)

/** The CRM's status document back in our words (the inverse of `toCrmStatus`). */
export function fromCrmStatus(body: CrmStatusBody): OrderStatusUpdate {
  const fields: [keyof OrderStatusUpdate, string | undefined][] = [
    ['paymentState', body.payment_status],
    ['erpOrderNumber', body.erp_order_no],
    ['invoiceNumber', body.invoice_no],
    ['carrier', body.carrier],
    ['trackingNumber', body.tracking_no],
    ['paidAmount', body.paid_amount],
    ['currency', body.currency],
    ['comment', body.comment],
  ]
  return { state: body.status, ...Object.fromEntries(fields.filter(([, value]) => value !== undefined)) }
}

const httpClients = httpClientPerConnection((settings: DemoCrmSettings, secrets: DemoCrmSecrets) => {
  if (settings.baseUrl === undefined) {
    throw new SyncFailure('config', 'the connection has no baseUrl, so nothing can be written back to the CRM', { connectorId: demoCrmConnectorId })
  }
  return createHttpClient({
    baseURL: settings.baseUrl,
    timeoutMs: settings.timeoutMs,
    headers: { Accept: 'application/json', ...(secrets.apiToken !== undefined ? { Authorization: `Bearer ${secrets.apiToken}` } : {}) },
  })
})
const httpClientFor = (ctx: DemoCrmContext): HttpClient => httpClients(ctx.settings, ctx.secrets)

/** Our status update in the CRM's words; fields we do not know stay out. */
export function toCrmStatus(update: OrderStatusUpdate): CrmStatusBody {
  const fields: [keyof CrmStatusBody, string | undefined][] = [
    ['payment_status', update.paymentState],
    ['erp_order_no', update.erpOrderNumber],
    ['invoice_no', update.invoiceNumber],
    ['carrier', update.carrier],
    ['tracking_no', update.trackingNumber],
    ['paid_amount', update.paidAmount],
    ['currency', update.currency],
    ['comment', update.comment],
  ]
  return { status: update.state, ...Object.fromEntries(fields.filter(([, value]) => value !== undefined)) }
}

function orderPath(crmOrderId: string, rest: string): string {
  return `/orders/${encodeURIComponent(crmOrderId)}/${rest}`
}

export function demoCrmClient(ctx: DemoCrmContext): DemoCrmClient {
  return {
    async health() {
      await httpClientFor(ctx).get('/health')
    },
    async authenticate() {
      await httpClientFor(ctx).get(orderPath('orderbridge-connection-check', 'status'), { validateStatus: (status) => status === 404 || (status >= 200 && status < 300) })
    },
    async putStatus(crmOrderId, status, idempotencyKey) {
      await httpClientFor(ctx).put(orderPath(crmOrderId, 'status'), status, { headers: { 'Idempotency-Key': idempotencyKey } })
    },
    async addNote(crmOrderId, note, idempotencyKey) {
      await httpClientFor(ctx).post(orderPath(crmOrderId, 'notes'), note, { headers: { 'Idempotency-Key': idempotencyKey } })
    },
    async putStock(levels, idempotencyKey) {
      const body = {
        levels: levels.map((level) => ({
          product_code: level.sku,
          available: level.available,
          ...(level.onHand !== undefined ? { on_hand: level.onHand } : {}),
          ...(level.warehouse !== undefined ? { warehouse: level.warehouse } : {}),
        })),
      }
      await httpClientFor(ctx).put('/stock', body, { headers: { 'Idempotency-Key': idempotencyKey } })
    },
    async getStatuses(crmOrderIds) {
      const ids = [...new Set(crmOrderIds)]
      const batches: string[][] = []
      for (let i = 0; i < ids.length; i += 100) batches.push(ids.slice(i, i + 100))
      const answers = await Promise.all(
        batches.map(async (batch) => {
          const response = await httpClientFor(ctx).get<unknown>('/statuses', { params: { order_ids: batch.join(',') } })
          const answer = statusAnswerSchema.safeParse(response.data)
          if (!answer.success) throw new SyncFailure('bug', 'the CRM answered a status list in an unexpected shape', { connectorId: demoCrmConnectorId, httpStatus: response.status })
          return answer.data
        }),
      )
      return answers.flat().map(({ order_id, ...status }) => ({ orderId: order_id, status }))
    },
  }
}
