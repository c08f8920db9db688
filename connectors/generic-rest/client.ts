/**
 * The HTTP client of the generic REST connector: the only file that knows URLs and answer shapes.
 * It turns answers into remote records and leaves the create-or-update decision to `index.ts`.
 * It does not retry and does not classify errors; the queue and `classify()` do that.
 */
import { z } from 'zod'
import {
  SyncFailure,
  createHttpClient,
  type ConnectorContext,
  type RemoteRecord,
} from '../../src/connector-kit/index.ts'
import type { GenericRestSecrets, GenericRestSettings } from './settings.ts'

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
}

type HttpClient = ReturnType<typeof createHttpClient>

const remoteDocumentSchema = z.record(z.string(), z.unknown())
const findAnswerSchema = z.union([z.array(remoteDocumentSchema), z.object({ items: z.array(remoteDocumentSchema) })])

// One axios instance per (settings, secrets) pair. Keyed weakly on the settings object, so nothing
// (least of all the token) outlives the connection's configuration.
const httpClients = new WeakMap<GenericRestSettings, { secrets: GenericRestSecrets; http: HttpClient }>()

function httpClientFor(ctx: GenericRestContext): HttpClient {
  const cached = httpClients.get(ctx.settings)
  if (cached && cached.secrets === ctx.secrets) return cached.http
  const http = createHttpClient({
    baseURL: ctx.settings.baseUrl,
    timeoutMs: ctx.settings.timeoutMs,
    headers: { Authorization: `Bearer ${ctx.secrets.apiToken}`, Accept: 'application/json' },
  })
  httpClients.set(ctx.settings, { secrets: ctx.secrets, http })
  return http
}

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
  }
}
