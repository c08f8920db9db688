/**
 * The HTTP client of the demo WMS connector: the only file that knows its URLs and answer shapes.
 * It turns the WMS's whole-unit integers into the decimal strings of the inventory capability and
 * its "insufficient stock" answer into a `data` failure naming the short lines. It does not retry
 * and leaves every other error to `classify()`.
 */
import { z } from 'zod'
import {
  SyncFailure,
  createHttpClient,
  httpClientPerConnection,
  type ConnectorContext,
  type MissingStock,
  type RemoteReservation,
  type Reservation,
  type ReservationRequest,
  type StockLevel,
} from '../../src/connector-kit/index.ts'

export const demoWmsConnectorId = 'demo-wms'

export const settingsSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the demo WMS API, e.g. http://127.0.0.1:4104.'),
  timeoutMs: z.number().int().positive().default(10_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
})

export const secretsSchema = z.object({
  apiToken: z.string().min(1).describe('API token, sent as `Authorization: Bearer <token>`.'),
  webhookSecret: z
    .string()
    .startsWith('whsec_')
    .optional()
    .describe('Standard Webhooks secret the WMS signs its shipment and stock events with; needed to receive them.'),
})

export type DemoWmsSettings = z.infer<typeof settingsSchema>
export type DemoWmsSecrets = z.infer<typeof secretsSchema>
export type DemoWmsContext = ConnectorContext<DemoWmsSettings, DemoWmsSecrets>

type HttpClient = ReturnType<typeof createHttpClient>

const wholeUnits = z.number().int().nonnegative()
const stockAnswerSchema = z.array(z.object({ sku: z.string(), onHand: wholeUnits, reserved: wholeUnits, available: z.number().int() }))
const reservationAnswerSchema = z.object({
  id: z.string().min(1),
  reference: z.string(),
  status: z.enum(['active', 'released', 'shipped', 'delivered']),
  lines: z.array(z.object({ lineId: z.string().optional(), sku: z.string(), quantity: wholeUnits, reserved: wholeUnits })),
  createdAt: z.string(),
})
type ReservationAnswer = z.infer<typeof reservationAnswerSchema>
const insufficientStockSchema = z.object({
  error: z.object({
    code: z.literal('insufficient_stock'),
    details: z.array(z.object({ sku: z.string(), requested: wholeUnits, available: z.number().int() })),
  }),
})

/** A reservation as the WMS holds it, with its status (the capability's `Reservation` has none). */
export interface WmsReservation extends Reservation {
  status: ReservationAnswer['status']
  createdAt: string
}

export interface DemoWmsClient {
  health(): Promise<void>
  /** The levels of those SKUs the WMS knows; unknown SKUs are left out. */
  stock(skus: readonly string[]): Promise<StockLevel[]>
  /** POSTs a reservation under `idempotencyKey`; insufficient stock throws a `data` failure with `missing`. */
  createReservation(reference: string, request: ReservationRequest, idempotencyKey: string): Promise<WmsReservation>
  /** PUTs new lines into an active reservation; insufficient stock throws as for create and changes nothing. */
  replaceReservation(id: string, request: ReservationRequest): Promise<WmsReservation>
  /** Every reservation under our reference, oldest first, whatever its status. */
  findReservations(reference: string): Promise<WmsReservation[]>
  /** DELETEs the reservation; the WMS answers the same when it is already released. */
  releaseReservation(id: string): Promise<void>
  /** Reconciliation: every reservation under any of `references` (100 per request, sent in parallel). */
  findReservationsByReferences(references: readonly string[]): Promise<RemoteReservation[]>
  /** Reconciliation: a page of reservations in id order after `cursor` (an id), active ones only when asked. */
  listReservations(query: { activeOnly: boolean; since?: string; cursor: string | null; limit: number }): Promise<{ reservations: RemoteReservation[]; nextCursor: string | null }>
}

/** References per batched lookup: keeps the URL well under the usual 8–16 KB limits. */
const referenceBatchSize = 100

function toRemoteReservation(answer: ReservationAnswer): RemoteReservation {
  const { externalId, status, lines } = toReservation(answer)
  return { externalId, reference: answer.reference, status, lines }
}

const httpClients = httpClientPerConnection((settings: DemoWmsSettings, secrets: DemoWmsSecrets) =>
  createHttpClient({ baseURL: settings.baseUrl, timeoutMs: settings.timeoutMs, headers: { Authorization: `Bearer ${secrets.apiToken}`, Accept: 'application/json' } }),
)
const httpClientFor = (ctx: DemoWmsContext): HttpClient => httpClients(ctx.settings, ctx.secrets)

/** "3" or "3.000" → 3. The WMS counts whole units, so "2.5" is a data error, not something to round. */
function toWholeUnits(quantity: string, lineId: string): number {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(quantity)
  if (!match || (match[2] !== undefined && /[1-9]/.test(match[2]))) {
    throw new SyncFailure('data', `line ${lineId}: the WMS reserves whole units, not ${quantity}`, { connectorId: demoWmsConnectorId })
  }
  const units = Number(match[1])
  if (!Number.isSafeInteger(units)) throw new SyncFailure('data', `line ${lineId}: quantity ${quantity} is too large`, { connectorId: demoWmsConnectorId })
  return units
}

function requestBody(request: ReservationRequest) {
  return {
    allowPartial: request.allowPartial,
    lines: request.lines.map((line) => ({ lineId: line.lineId, sku: line.sku, quantity: toWholeUnits(line.quantity, line.lineId) })),
  }
}

function toReservation(answer: ReservationAnswer, request?: ReservationRequest): WmsReservation {
  return {
    externalId: answer.id,
    status: answer.status,
    createdAt: answer.createdAt,
    // The WMS echoes our line ids; should it not, the lines come back in the order we sent them.
    lines: answer.lines.map((line, i) => ({
      lineId: line.lineId ?? request?.lines[i]?.lineId ?? String(i + 1),
      sku: line.sku,
      requested: String(line.quantity),
      reserved: String(line.reserved),
    })),
  }
}

/**
 * Which lines fall short. The WMS reports short SKUs in total; a SKU on several lines is filled in
 * line order, so each line says what was left for it.
 */
function missingLines(request: ReservationRequest, short: { sku: string; available: number }[]): MissingStock[] {
  const left = new Map(short.map((entry) => [entry.sku, Math.max(0, entry.available)]))
  const missing: MissingStock[] = []
  for (const line of request.lines) {
    const available = left.get(line.sku)
    if (available === undefined) continue
    const requested = toWholeUnits(line.quantity, line.lineId)
    left.set(line.sku, Math.max(0, available - requested))
    if (requested > available) missing.push({ lineId: line.lineId, sku: line.sku, requested: line.quantity, available: String(available) })
  }
  return missing
}

function insufficientStock(err: unknown, request: ReservationRequest): SyncFailure | undefined {
  const response = (err as { response?: { status?: number; data?: unknown } } | null)?.response
  if (response?.status !== 409) return undefined
  const answer = insufficientStockSchema.safeParse(response.data)
  if (!answer.success) return undefined
  const missing = missingLines(request, answer.data.error.details)
  const shown = missing.slice(0, 3).map((m) => `${m.sku} (line ${m.lineId}) requested ${m.requested}, available ${m.available}`)
  const more = missing.length > shown.length ? `, and ${missing.length - shown.length} more` : ''
  return new SyncFailure('data', `not enough stock: ${shown.join('; ')}${more}`, { connectorId: demoWmsConnectorId, httpStatus: 409, missing }, { cause: err })
}

function parsed<T>(schema: z.ZodType<T>, data: unknown, what: string, httpStatus: number, kind: 'bug' | 'unknown_outcome' = 'bug'): T {
  const result = schema.safeParse(data)
  if (result.success) return result.data
  throw new SyncFailure(kind, `the WMS answered ${what} in an unexpected shape`, { connectorId: demoWmsConnectorId, httpStatus })
}

export function demoWmsClient(ctx: DemoWmsContext): DemoWmsClient {
  const http = httpClientFor(ctx)

  return {
    async health() {
      await http.get('/health')
    },

    async stock(skus) {
      if (skus.length === 0) return []
      const query = new URLSearchParams(skus.map((sku): [string, string] => ['sku', sku]))
      const response = await http.get<unknown>(`/stock?${query.toString()}`)
      return parsed(stockAnswerSchema, response.data, 'a stock query', response.status).map((level) => ({
        sku: level.sku,
        available: String(Math.max(0, level.available)),
        onHand: String(level.onHand),
      }))
    },

    async createReservation(reference, request, idempotencyKey) {
      const response = await http
        .post<unknown>('/reservations', { reference, ...requestBody(request) }, { headers: { 'Idempotency-Key': idempotencyKey } })
        .catch((err: unknown) => {
          throw insufficientStock(err, request) ?? err
        })
      // Made, but we cannot tell its id: a retry must look it up by reference, not reserve again.
      return toReservation(parsed(reservationAnswerSchema, response.data, 'a new reservation', response.status, 'unknown_outcome'), request)
    },

    async replaceReservation(id, request) {
      const response = await http.put<unknown>(`/reservations/${encodeURIComponent(id)}`, requestBody(request)).catch((err: unknown) => {
        throw insufficientStock(err, request) ?? err
      })
      return toReservation(parsed(reservationAnswerSchema, response.data, 'a changed reservation', response.status), request)
    },

    async findReservations(reference) {
      const response = await http.get<unknown>(`/reservations?${new URLSearchParams({ reference }).toString()}`)
      const answers = parsed(z.array(reservationAnswerSchema), response.data, 'a reservation lookup', response.status)
      // Never adopt another order's reservation, whatever the WMS lists.
      return answers.filter((answer) => answer.reference === reference).map((answer) => toReservation(answer))
    },

    async releaseReservation(id) {
      await http.delete(`/reservations/${encodeURIComponent(id)}`)
    },

    async findReservationsByReferences(references) {
      const wanted = [...new Set(references)]
      const batches: string[][] = []
      for (let i = 0; i < wanted.length; i += referenceBatchSize) batches.push(wanted.slice(i, i + referenceBatchSize))
      const answers = await Promise.all(
        batches.map(async (batch) => {
          const response = await http.get<unknown>('/reservations', { params: { references: batch.join(',') } })
          return parsed(z.array(reservationAnswerSchema), response.data, 'a reservation lookup', response.status)
        }),
      )
      const asked = new Set(wanted)
      // Never adopt another order's reservation, whatever the WMS lists.
      return answers.flat().filter((answer) => asked.has(answer.reference)).map(toRemoteReservation)
    },

    async listReservations(query) {
      const params: Record<string, string> = { limit: String(query.limit) }
      if (query.activeOnly) params.status = 'active'
      if (query.since !== undefined) params.since = query.since
      if (query.cursor !== null) params.after = query.cursor
      const response = await http.get<unknown>('/reservations', { params })
      const answers = parsed(z.array(reservationAnswerSchema), response.data, 'a reservation list', response.status)
      return { reservations: answers.map(toRemoteReservation), nextCursor: answers.length >= query.limit ? answers.at(-1)!.id : null }
    },
  }
}
