/**
 * The HTTP client of the generic REST connector: the only file that knows URLs and answer shapes.
 * It turns answers into remote records and leaves the create-or-update decision to `index.ts`.
 * It does not retry and does not classify errors; the queue and `classify()` do that.
 */
import type { Readable } from 'node:stream'
import { z } from 'zod'
import {
  SyncFailure,
  createHttpClient,
  httpClientPerConnection,
  type ConnectorContext,
  type CustomerCredit,
  type InvoiceQuery,
  type RemoteInvoice,
  type RemoteRecord,
  type RemoteSalesOrder,
  type RemoteSalesOrderPage,
} from '../../src/connector-kit/index.ts'
import { reconciliationEndpointsSchema, type GenericRestReconciliationSettings, type GenericRestSecrets, type GenericRestSettings } from './settings.ts'

export const genericRestConnectorId = 'generic-rest'

export type GenericRestContext = ConnectorContext<GenericRestSettings, GenericRestSecrets>

export interface GenericRestClient {
  /** Resolves when the health endpoint answers 2xx. */
  health(): Promise<void>
  /** POSTs a new sales order with an `Idempotency-Key` header. */
  createSalesOrder(document: Record<string, unknown>, idempotencyKey: string): Promise<RemoteRecord>
  /** PUTs the whole document to an existing sales order. */
  updateSalesOrder(externalId: string, document: Record<string, unknown>): Promise<void>
  /** Cancels a sales order; cancelling one that is already cancelled succeeds. */
  cancelSalesOrder(externalId: string): Promise<void>
  /** The sales orders the remote holds under our reference, in the order it listed them. */
  findSalesOrdersByReference(reference: string): Promise<RemoteRecord[]>
  /** A customer's credit limit, what it owes and whether anything is overdue; amounts as decimal strings. */
  customerCredit(customerId: string): Promise<CustomerCredit>
  /** Reconciliation: one sales order as the ERP holds it; undefined on 404. */
  fetchSalesOrder(externalId: string): Promise<RemoteSalesOrder | undefined>
  /** Reconciliation: the sales orders of many references, in batches of `referenceBatchSize` sent in parallel. */
  findSalesOrdersByReferences(references: readonly string[]): Promise<RemoteSalesOrder[]>
  /** Reconciliation: a page of the sales orders changed since `since`, after the cursor (an order id). */
  listSalesOrders(query: { since?: string; cursor: string | null; limit: number }): Promise<RemoteSalesOrderPage>
  /** Reconciliation: invoices by our order references (batched), or a page of those since a time. */
  listInvoices(query: InvoiceQuery): Promise<{ invoices: RemoteInvoice[]; nextCursor: string | null }>
}

type HttpClient = ReturnType<typeof createHttpClient>

const remoteDocumentSchema = z.record(z.string(), z.unknown())
const findAnswerSchema = z.union([z.array(remoteDocumentSchema), z.object({ items: z.array(remoteDocumentSchema) })])

// Money as a decimal string, or as a whole number (exact in JSON); never a fractional JSON number.
const amountSchema = z.union([z.string().regex(/^-?\d+(\.\d+)?$/), z.number().int().refine(Number.isSafeInteger)]).transform(String)
const creditAnswerSchema = z.object({
  limit: amountSchema,
  outstanding: amountSchema,
  currency: z.string().regex(/^[A-Z]{3}$/),
  overdue: z.boolean(),
})

// Reconciliation settings with their defaults filled in, once per settings object.
const reconciliationSettings = new WeakMap<GenericRestSettings, GenericRestReconciliationSettings>()

function reconciliationOf(settings: GenericRestSettings): GenericRestReconciliationSettings {
  let parsed = reconciliationSettings.get(settings)
  if (!parsed) reconciliationSettings.set(settings, (parsed = reconciliationEndpointsSchema.parse(settings.reconciliation ?? {})))
  return parsed
}

/** A decimal string, or a whole JSON number (exact); anything else is not an amount we can compare. */
function decimalOf(value: unknown): string | undefined {
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  return undefined
}

function textOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return undefined
}

/** The ERP's sales order in the kit's words, by the configured field names. */
export function toRemoteSalesOrder(document: Record<string, unknown>, idField: string, settings: GenericRestReconciliationSettings): RemoteSalesOrder | undefined {
  const externalId = externalIdOf(document, idField)
  if (externalId === undefined) return undefined
  const f = settings.salesOrders.fields
  const remoteStatus = textOf(document[f.status])
  const rawLines = document[f.lines]
  const lines = Array.isArray(rawLines)
    ? rawLines.flatMap((line) => {
        if (line === null || typeof line !== 'object') return []
        const sku = textOf((line as Record<string, unknown>)[f.sku])
        const quantity = decimalOf((line as Record<string, unknown>)[f.quantity])
        return sku !== undefined && quantity !== undefined ? [{ sku, quantity }] : []
      })
    : undefined
  const reference = textOf(document[f.reference])
  const currency = textOf(document[f.currency])
  const total = decimalOf(document[f.total])
  const updatedAt = textOf(document[f.updatedAt])
  return {
    externalId,
    status: remoteStatus !== undefined && f.cancelledStatuses.includes(remoteStatus) ? 'cancelled' : 'open',
    ...(remoteStatus !== undefined ? { remoteStatus } : {}),
    ...(reference !== undefined ? { reference } : {}),
    ...(currency !== undefined ? { currency } : {}),
    ...(total !== undefined ? { total } : {}),
    ...(lines !== undefined ? { lines } : {}),
    ...(updatedAt !== undefined ? { updatedAt } : {}),
  }
}

function toRemoteInvoice(document: Record<string, unknown>, settings: GenericRestReconciliationSettings): RemoteInvoice | undefined {
  const f = settings.invoices
  const externalId = textOf(document[f.idField])
  const number = textOf(document[f.numberField])
  const amount = decimalOf(document[f.amountField])
  const currency = textOf(document[f.currencyField])
  if (externalId === undefined || number === undefined || amount === undefined || currency === undefined) return undefined
  const reference = textOf(document[f.referenceField])
  const salesOrderId = textOf(document[f.salesOrderIdField])
  const status = textOf(document[f.statusField])
  return {
    externalId,
    number,
    currency,
    amount,
    paid: decimalOf(document[f.paidField]) ?? '0',
    ...(reference !== undefined ? { reference } : {}),
    ...(salesOrderId !== undefined ? { salesOrderId } : {}),
    ...(status !== undefined ? { status } : {}),
  }
}

/**
 * The documents of a list answer (a JSON array, or `{ items: [...] }`), checked in place: a page of
 * hundreds of orders is not copied by a schema, so reconciliation allocates little per page.
 */
function documentsOf(data: unknown): Record<string, unknown>[] | undefined {
  const list = Array.isArray(data) ? data : data !== null && typeof data === 'object' && Array.isArray((data as { items?: unknown }).items) ? (data as { items: unknown[] }).items : undefined
  if (!list) return undefined
  return list.every((d) => d !== null && typeof d === 'object' && !Array.isArray(d)) ? (list as Record<string, unknown>[]) : undefined
}

/**
 * GETs a JSON answer, reading the body here instead of letting axios decode it. Once axios has
 * settled a response, the response and the buffers its adapter read the body into outlive the call
 * as far as the young-generation GC can tell (a full GC finds them dead), so whatever
 * `response.data` held was promoted to the old generation, and the body's bytes were kept, until
 * the next mark-compact: a page of documents for every page a reconciliation run read
 * (docs/BENCHMARKS.md, Reconciliation). Read from the stream, the body is ours alone and dies young
 * with the page. A body that is not JSON reads as undefined (axios's lenient parsing left a string).
 */
async function getJson(http: HttpClient, path: string, params: Record<string, string>, timeoutMs: number): Promise<{ data: unknown; status: number }> {
  let response: { data: unknown; status: number }
  try {
    response = await http.get<Readable>(path, { params, responseType: 'stream' })
  } catch (err) {
    // An error answer's body is a stream nobody reads; drained, its keep-alive socket is free again.
    drainBody(err)
    throw err
  }
  const body = response.data as Readable
  response.data = undefined
  const text = await readText(body, timeoutMs, response.status)
  try {
    return { data: JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as unknown, status: response.status }
  } catch {
    return { data: undefined, status: response.status }
  }
}

/**
 * The body as text. axios's timeout no longer watches a body it has handed over as a stream, so one
 * that stops arriving for `timeoutMs` is given up here. A body that stalls or breaks off is an
 * unknown outcome, which a read may retry.
 */
async function readText(body: Readable, timeoutMs: number, httpStatus: number): Promise<string> {
  const details = { connectorId: genericRestConnectorId, httpStatus }
  const parts: Buffer[] = []
  const idle = setTimeout(() => body.destroy(new SyncFailure('unknown_outcome', `the answer stopped arriving (nothing for ${timeoutMs} ms)`, details)), timeoutMs)
  try {
    for await (const part of body) {
      parts.push(part as Buffer)
      idle.refresh()
    }
    return Buffer.concat(parts).toString('utf8')
  } catch (err) {
    if (err instanceof SyncFailure) throw err
    const code = err !== null && typeof err === 'object' && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : 'stream error'
    throw new SyncFailure('unknown_outcome', `the answer broke off (${code})`, details, { cause: err })
  } finally {
    clearTimeout(idle)
  }
}

function drainBody(err: unknown): void {
  const body = err !== null && typeof err === 'object' ? (err as { response?: { data?: unknown } }).response?.data : undefined
  if (body !== null && typeof body === 'object' && typeof (body as { resume?: unknown }).resume === 'function') (body as { resume(): void }).resume()
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

const httpClients = httpClientPerConnection((settings: GenericRestSettings, secrets: GenericRestSecrets) =>
  createHttpClient({ baseURL: settings.baseUrl, timeoutMs: settings.timeoutMs, headers: { Authorization: `Bearer ${secrets.apiToken}`, Accept: 'application/json' } }),
)
const httpClientFor = (ctx: GenericRestContext): HttpClient => httpClients(ctx.settings, ctx.secrets)

/** Replaces each `{name}` in a path template with its URL-encoded value. */
export function expandPath(template: string, params: Record<string, string>): string {
  return template.replace(/\{([A-Za-z][A-Za-z0-9_]*)\}/g, (placeholder, name: string) => {
    const value = params[name]
    if (value === undefined) throw new SyncFailure('config', `path template has an unknown placeholder ${placeholder}`, { connectorId: genericRestConnectorId })
    return encodeURIComponent(value)
  })
}

function externalIdOf(document: Record<string, unknown>, idField: string): string | undefined {
  const id = document[idField]
  if (typeof id === 'string' && id.length > 0) return id
  if (typeof id === 'number' && Number.isFinite(id)) return String(id)
  return undefined
}

export function genericRestClient(ctx: GenericRestContext): GenericRestClient {
  const http = httpClientFor(ctx)
  const endpoints = ctx.settings.salesOrders
  const connectorId = genericRestConnectorId

  return {
    async health() {
      await http.get(ctx.settings.healthPath)
    },

    async createSalesOrder(document, idempotencyKey) {
      const response = await http.post<unknown>(endpoints.createPath, document, { headers: { 'Idempotency-Key': idempotencyKey } })
      const body = remoteDocumentSchema.safeParse(response.data)
      const externalId = body.success ? externalIdOf(body.data, endpoints.idField) : undefined
      if (externalId === undefined) {
        // The order was created but we cannot tell its id: a retry must look it up, not create again.
        throw new SyncFailure('unknown_outcome', `the ERP created the sales order but its answer has no "${endpoints.idField}" field`, {
          connectorId,
          httpStatus: response.status,
        })
      }
      return { externalId }
    },

    async updateSalesOrder(externalId, document) {
      await http.put(expandPath(endpoints.updatePath, { id: externalId }), document)
    },

    async cancelSalesOrder(externalId) {
      await http.post(expandPath(endpoints.cancelPath, { id: externalId }), {})
    },

    async findSalesOrdersByReference(reference) {
      const response = await http.get<unknown>(expandPath(endpoints.findByReferencePath, { reference }))
      const answer = findAnswerSchema.safeParse(response.data)
      if (!answer.success) {
        throw new SyncFailure('config', 'the find-by-reference endpoint did not answer a JSON array or { items: [...] }', {
          connectorId,
          httpStatus: response.status,
        })
      }
      const documents = Array.isArray(answer.data) ? answer.data : answer.data.items
      const records: RemoteRecord[] = []
      for (const document of documents) {
        // A remote that ignores the query parameter would list every order; never take another order's id.
        if ('reference' in document && document.reference !== reference) continue
        const externalId = externalIdOf(document, endpoints.idField)
        if (externalId === undefined) {
          throw new SyncFailure('config', `a sales order found by reference has no "${endpoints.idField}" field`, { connectorId, httpStatus: response.status })
        }
        records.push({ externalId })
      }
      return records
    },

    async customerCredit(customerId) {
      const response = await http.get<unknown>(expandPath(ctx.settings.credit.customerCreditPath, { customerId }))
      const answer = creditAnswerSchema.safeParse(response.data)
      if (!answer.success) {
        throw new SyncFailure('config', 'the credit endpoint did not answer { limit, outstanding, currency, overdue } with decimal amounts', {
          connectorId,
          httpStatus: response.status,
        })
      }
      return answer.data
    },

    async fetchSalesOrder(externalId) {
      const response = await http.get<unknown>(expandPath(endpoints.updatePath, { id: externalId }), { validateStatus: (status) => (status >= 200 && status < 300) || status === 404 })
      if (response.status === 404) return undefined
      const body = remoteDocumentSchema.safeParse(response.data)
      const order = body.success ? toRemoteSalesOrder(body.data, endpoints.idField, reconciliationOf(ctx.settings)) : undefined
      if (!order) throw new SyncFailure('config', `the sales order answer has no "${endpoints.idField}" field`, { connectorId, httpStatus: response.status })
      return order
    },

    async findSalesOrdersByReferences(references) {
      const settings = reconciliationOf(ctx.settings)
      const wanted = new Set(references)
      const pages = await Promise.all(
        chunks([...wanted], settings.salesOrders.referenceBatchSize).map((batch) => listDocuments(settings.salesOrders.listPath, { references: batch.join(',') }, 'sales orders')),
      )
      const orders: RemoteSalesOrder[] = []
      for (const { documents, status } of pages) {
        for (const document of documents) {
          const order = toRemoteSalesOrder(document, endpoints.idField, settings)
          if (!order) throw new SyncFailure('config', `a sales order in the answer has no "${endpoints.idField}" field`, { connectorId, httpStatus: status })
          // A remote that ignores the filter would list every order; keep only the ones asked for.
          if (order.reference !== undefined && wanted.has(order.reference)) orders.push(order)
        }
      }
      return orders
    },

    async listSalesOrders(query) {
      const settings = reconciliationOf(ctx.settings)
      const params: Record<string, string> = { limit: String(query.limit) }
      if (query.since !== undefined) params.since = query.since
      if (query.cursor !== null) params.after = query.cursor
      const { documents, status } = await listDocuments(settings.salesOrders.listPath, params, 'sales orders')
      const orders = documents.map((document) => {
        const order = toRemoteSalesOrder(document, endpoints.idField, settings)
        if (!order) throw new SyncFailure('config', `a sales order in the answer has no "${endpoints.idField}" field`, { connectorId, httpStatus: status })
        return order
      })
      return { orders, nextCursor: orders.length >= query.limit ? orders.at(-1)!.externalId : null }
    },

    async listInvoices(query) {
      const settings = reconciliationOf(ctx.settings)
      const parse = (documents: Record<string, unknown>[], status: number) =>
        documents.map((document) => {
          const invoice = toRemoteInvoice(document, settings)
          if (!invoice) throw new SyncFailure('config', 'an invoice in the answer lacks its id, number, amount or currency', { connectorId, httpStatus: status })
          return invoice
        })
      if ('orderRefs' in query) {
        const wanted = new Set(query.orderRefs)
        const pages = await Promise.all(
          chunks([...wanted], settings.salesOrders.referenceBatchSize).map((batch) => listDocuments(settings.invoices.listPath, { references: batch.join(',') }, 'invoices')),
        )
        const invoices = pages.flatMap(({ documents, status }) => parse(documents, status)).filter((invoice) => invoice.reference === undefined || wanted.has(invoice.reference))
        return { invoices, nextCursor: null }
      }
      const params: Record<string, string> = { since: query.since, limit: String(query.limit), ...(query.cursor !== null ? { after: query.cursor } : {}) }
      const { documents, status } = await listDocuments(settings.invoices.listPath, params, 'invoices')
      const invoices = parse(documents, status)
      return { invoices, nextCursor: invoices.length >= query.limit ? invoices.at(-1)!.externalId : null }
    },
  }

  async function listDocuments(path: string, params: Record<string, string>, what: string): Promise<{ documents: Record<string, unknown>[]; status: number }> {
    const { data, status } = await getJson(http, path, params, ctx.settings.timeoutMs)
    const documents = documentsOf(data)
    if (!documents) throw new SyncFailure('config', `the ${what} list did not answer a JSON array or { items: [...] }`, { connectorId, httpStatus: status })
    return { documents, status }
  }
}
