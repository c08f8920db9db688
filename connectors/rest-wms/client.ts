/**
 * The HTTP client of the REST WMS connector: the only file that builds URLs and bodies and reads
 * answers, all from the connection's settings (settings.ts). It turns our decimal-string quantities
 * into what the WMS takes and its answers back into decimal strings, and its "not enough stock"
 * answer into a `data` failure naming the short lines. It does not retry and leaves every other error
 * to `classifyRestWmsError`. It never logs bodies or secrets.
 */
import { Buffer } from 'node:buffer'
import { z } from 'zod'
import {
  SyncFailure,
  classifyHttpError,
  createHttpClient,
  httpClientPerConnection,
  parseRetryAfter,
  type ConnectorContext,
  type FailureKind,
  type MissingStock,
  type Reservation,
  type ReservationRequest,
  type StockLevel,
} from '../../src/connector-kit/index.ts'
import { readFieldMap, readPath, theirPathFor, writeFieldMap, writePath, type FieldMap } from './field-paths.ts'
import { addDecimal, atLeastZero, canonicalDecimal, compareDecimal, quantityFromWms, quantityToWms, subtractDecimal } from './quantities.ts'
import type { AnswerMatcher, RestWmsSecrets, RestWmsSettings } from './settings.ts'

export const restWmsConnectorId = 'rest-wms'
const connectorId = restWmsConnectorId

export type RestWmsContext = ConnectorContext<RestWmsSettings, RestWmsSecrets>
type HttpClient = ReturnType<typeof createHttpClient>
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** A reservation as the WMS holds it, with what its status means (the capability's `Reservation` has none). */
export interface WmsReservation extends Reservation {
  state: 'open' | 'released' | 'closed'
  reference?: string
}

/** A 2xx answer that a configured error override says is a failure; `classify()` turns it into one. */
export class WmsAnswerError extends Error {
  readonly status: number
  readonly data: unknown
  readonly headers: Record<string, unknown>
  constructor(status: number, data: unknown, headers: Record<string, unknown>) {
    super(`the WMS answered HTTP ${status} with a body its configuration treats as an error`)
    this.name = 'WmsAnswerError'
    this.status = status
    this.data = data
    this.headers = headers
  }
}

interface Answer {
  status: number
  data: unknown
  headers: Record<string, unknown>
}

/** The WMS's answer carried by an error (an HTTP error or a 2xx refused by configuration), if any. */
export function answerOf(err: unknown): Answer | undefined {
  if (err instanceof WmsAnswerError) return { status: err.status, data: err.data, headers: err.headers }
  const response = (err as { response?: { status?: unknown; data?: unknown; headers?: unknown } } | null)?.response
  if (typeof response?.status !== 'number') return undefined
  return { status: response.status, data: response.data, headers: (response.headers ?? {}) as Record<string, unknown> }
}

/** Whether an answer is what `matcher` describes (status and field both, where given). */
export function answerMatches(matcher: AnswerMatcher, answer: { status: number; data: unknown }): boolean {
  if (matcher.status !== undefined && !(Array.isArray(matcher.status) ? matcher.status : [matcher.status]).includes(answer.status)) return false
  if (matcher.field !== undefined) {
    const value = readPath(answer.data, matcher.field)
    const wanted = Array.isArray(matcher.equals) ? matcher.equals : [matcher.equals]
    if (!wanted.some((candidate) => candidate === value)) return false
  }
  return true
}

/**
 * The kit's HTTP table, after the connection's `errors` overrides (first match wins). An answer that
 * means "not enough stock" but was not turned into a `data` failure with `missing` by the client
 * (say, from a release) is `data` too.
 */
export function classifyRestWmsError(err: unknown, settings: RestWmsSettings): SyncFailure {
  if (err instanceof SyncFailure) return err
  const answer = answerOf(err)
  if (answer) {
    const details = {
      connectorId,
      httpStatus: answer.status,
      retryAfterMs: parseRetryAfter(typeof answer.headers['retry-after'] === 'string' ? answer.headers['retry-after'] : undefined),
    }
    const override = settings.errors.find((candidate) => answerMatches(candidate, answer))
    if (override) return new SyncFailure(override.kind, override.message ?? `the WMS answered HTTP ${answer.status}`, details, { cause: err })
    if (answer.status >= 400 && settings.insufficientStock.when.some((matcher) => answerMatches(matcher, answer))) {
      return new SyncFailure('data', 'the WMS reports not enough stock', details, { cause: err })
    }
    if (err instanceof WmsAnswerError) return new SyncFailure('data', err.message, details, { cause: err })
  }
  return classifyHttpError(err, connectorId)
}

function configFailure(message: string, httpStatus?: number): SyncFailure {
  return new SyncFailure('config', message, { connectorId, ...(httpStatus !== undefined ? { httpStatus } : {}) })
}

// ── the HTTP client, one per (settings, secrets) ────────────────────────────────────────────────

function authHeaders(settings: RestWmsSettings, secrets: RestWmsSecrets): Record<string, string> {
  const auth = settings.authentication
  const need = (name: 'token' | 'password' | 'apiKey'): string => {
    const value = secrets[name]
    if (value === undefined) throw configFailure(`authentication type ${auth.type} needs the secret "${name}"`)
    return value
  }
  switch (auth.type) {
    case 'bearer':
      return { Authorization: `Bearer ${need('token')}` }
    case 'basic':
      return { Authorization: `Basic ${Buffer.from(`${auth.username}:${need('password')}`, 'utf8').toString('base64')}` }
    case 'apiKey':
      return { [auth.header]: auth.prefix === undefined ? need('apiKey') : `${auth.prefix} ${need('apiKey')}` }
    case 'none':
      return {}
  }
}

const httpClients = httpClientPerConnection((settings: RestWmsSettings, secrets: RestWmsSecrets) =>
  createHttpClient({ baseURL: settings.baseUrl, timeoutMs: settings.timeoutMs, headers: { Accept: 'application/json', ...settings.headers, ...authHeaders(settings, secrets) } }),
)
const httpClientFor = (ctx: RestWmsContext): HttpClient => httpClients(ctx.settings, ctx.secrets)

/**
 * Fills a path template. Each value is URL-encoded; a list (`{skus}`) is joined by `separator`.
 * The template starts with a single "/" (settings.ts), so no value can move the request to another host.
 */
export function expandPath(template: string, params: Readonly<Record<string, string | readonly string[]>>, separator = ','): string {
  return template.replace(/\{([A-Za-z][A-Za-z0-9_]*)\}/g, (placeholder, name: string) => {
    const value = params[name]
    if (value === undefined) throw configFailure(`path template has no value for ${placeholder}`)
    return typeof value === 'string' ? encodeURIComponent(value) : value.map(encodeURIComponent).join(separator)
  })
}

// ── reading answers ─────────────────────────────────────────────────────────────────────────────

const identifier = z.union([z.string().min(1), z.number().finite()]).transform(String)
const quantity = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const parsed = quantityFromWms(value)
  if (parsed === undefined) {
    ctx.addIssue({ code: 'custom', message: 'is not a decimal quantity' })
    return z.NEVER
  }
  return parsed
})
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()])

const reservationShape = z.object({
  externalId: identifier,
  reference: identifier.optional(),
  status: scalar.optional(),
  lines: z.array(z.object({ sku: identifier, reserved: quantity.optional(), requested: quantity.optional(), lineId: identifier.optional() })).optional(),
})
type ReservationShape = z.infer<typeof reservationShape>

const stockShape = z.object({
  levels: z.array(z.object({ sku: identifier, available: quantity, onHand: quantity.optional(), warehouse: identifier.optional() })),
})

const shortageShape = z.object({ sku: identifier, available: quantity, lineId: identifier.optional() })

/** Reads `document` through a field map and validates it; the message names the WMS's field path. */
function readShape<T>(
  schema: z.ZodType<T>,
  map: FieldMap,
  document: unknown,
  at: string,
  what: string,
  kind: FailureKind,
  httpStatus: number,
  defaults: Record<string, unknown> = {},
): T {
  const read = readFieldMap(map, document)
  for (const [field, value] of Object.entries(defaults)) if (read[field] === undefined) read[field] = value
  const result = schema.safeParse(read)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  const theirs = theirPathFor(map, issue.path as (string | number)[], at)
  const where = theirs ?? issue.path.join('.')
  throw new SyncFailure(kind, `${what}: the WMS answer's ${where === '' ? 'body' : where} is missing or unusable (${issue.message}); check the connection's field paths`, { connectorId, httpStatus })
}

function reservationState(settings: RestWmsSettings, status: ReservationShape['status']): WmsReservation['state'] {
  const values = settings.reservation.statusValues
  if (status === undefined) return 'open'
  if (values.released.some((value) => value === status)) return 'released'
  if (values.closed.some((value) => value === status)) return 'closed'
  return 'open'
}

function reservationFieldMap(settings: RestWmsSettings): FieldMap {
  const { statusValues: _, ...fields } = settings.reservation
  return fields
}

/**
 * Our request's lines with what the WMS holds for each. Lines are matched by our line id when the
 * WMS echoes it, else by position when the SKUs line up, else by SKU in order.
 */
function linesFor(settings: RestWmsSettings, request: ReservationRequest, answered: ReservationShape['lines']): Reservation['lines'] {
  const readsReserved = settings.reservation['lines[].reserved'] !== undefined
  const pool = (answered ?? []).map((line) => ({ ...line, used: false }))
  const byLineId = pool.some((line) => line.lineId !== undefined)
  return request.lines.map((line, i) => {
    const requested = canonicalDecimal(line.quantity) ?? line.quantity
    if (!readsReserved || answered === undefined) return { lineId: line.lineId, sku: line.sku, requested, reserved: requested }
    const atPosition = pool[i]
    const match = byLineId
      ? pool.find((candidate) => !candidate.used && candidate.lineId === line.lineId)
      : atPosition && !atPosition.used && atPosition.sku === line.sku
        ? atPosition
        : pool.find((candidate) => !candidate.used && candidate.sku === line.sku)
    if (match) match.used = true
    return { lineId: line.lineId, sku: line.sku, requested, reserved: match?.reserved ?? '0' }
  })
}

function toReservation(settings: RestWmsSettings, shape: ReservationShape, request: ReservationRequest | undefined): WmsReservation {
  const lines = request
    ? linesFor(settings, request, shape.lines)
    : (shape.lines ?? []).map((line, i) => ({
        lineId: line.lineId ?? String(i + 1),
        sku: line.sku,
        requested: line.requested ?? line.reserved ?? '0',
        reserved: line.reserved ?? line.requested ?? '0',
      }))
  return {
    externalId: shape.externalId,
    lines,
    state: reservationState(settings, shape.status),
    ...(shape.reference !== undefined ? { reference: shape.reference } : {}),
  }
}

// ── insufficient stock ──────────────────────────────────────────────────────────────────────────

/**
 * Which lines fall short, given what is available per SKU. A SKU on several lines is filled in line
 * order, so each line says what was left for it. SKUs not in `available` are fine (`unlisted: 'fine'`,
 * a shortage list) or have nothing (`'none'`, stock levels).
 */
export function missingLines(request: ReservationRequest, available: ReadonlyMap<string, string>, unlisted: 'fine' | 'none'): MissingStock[] {
  const left = new Map(available)
  const missing: MissingStock[] = []
  for (const line of request.lines) {
    const has = left.get(line.sku) ?? (unlisted === 'none' ? '0' : undefined)
    if (has === undefined) continue
    const requested = canonicalDecimal(line.quantity) ?? line.quantity
    if (compareDecimal(requested, has) > 0) {
      missing.push({ lineId: line.lineId, sku: line.sku, requested, available: has })
      left.set(line.sku, '0')
    } else {
      left.set(line.sku, subtractDecimal(has, requested))
    }
  }
  return missing
}

function describeMissing(missing: readonly MissingStock[]): string {
  const shown = missing.slice(0, 3).map((m) => `${m.sku} (line ${m.lineId}) requested ${m.requested}, available ${m.available}`)
  const more = missing.length > shown.length ? `, and ${missing.length - shown.length} more` : ''
  return `not enough stock: ${shown.join('; ')}${more}`
}

// ── the client ──────────────────────────────────────────────────────────────────────────────────

export interface RestWmsClient {
  /** Resolves when the configured health endpoint answers 2xx; without one, when the credentials are configured. */
  health(): Promise<void>
  /** The levels of those SKUs the WMS knows (per warehouse when it answers so), asked in batches of `stock.maxBatchSize`. */
  stock(skus: readonly string[]): Promise<StockLevel[]>
  /** Creates a reservation under `idempotencyKey`; not enough stock throws a `data` failure with `missing`. */
  create(reference: string, request: ReservationRequest, idempotencyKey: string): Promise<WmsReservation>
  /** Replaces the lines of a reservation; not enough stock throws as for create. */
  update(externalId: string, reference: string, request: ReservationRequest, idempotencyKey: string): Promise<WmsReservation>
  /** The reservations under our reference, oldest first, whatever their state; never another order's. */
  find(reference: string): Promise<WmsReservation[]>
  /** Releases a reservation; an answer configured as "already released" counts as released. */
  release(externalId: string, reference: string): Promise<void>
}

export function restWmsClient(ctx: RestWmsContext): RestWmsClient {
  const settings = ctx.settings
  const http = httpClientFor(ctx)

  /** One request. A 2xx that an override with a field matches is thrown as a `WmsAnswerError`. */
  async function send(method: Method, url: string, body?: unknown, headers?: Record<string, string>): Promise<Answer> {
    // A POST, PUT or PATCH always carries JSON (`{}` when there is nothing to say); a GET or DELETE carries what it is given.
    const data = body ?? (method === 'GET' || method === 'DELETE' ? undefined : {})
    const response = await http.request<unknown>({ method, url, ...(data !== undefined ? { data } : {}), ...(headers ? { headers } : {}) })
    const answer = { status: response.status, data: response.data, headers: response.headers as Record<string, unknown> }
    if (settings.errors.some((override) => override.field !== undefined && answerMatches(override, answer))) {
      throw new WmsAnswerError(answer.status, answer.data, answer.headers)
    }
    return answer
  }

  function reservationBody(
    config: { fields: FieldMap; constants: Record<string, unknown> },
    reference: string,
    request: ReservationRequest,
    idempotencyKey: string,
  ): Record<string, unknown> {
    const lines = request.lines.map((line) => {
      const converted = quantityToWms(line.quantity, settings.quantities)
      if ('problem' in converted) throw new SyncFailure('data', `line ${line.lineId}: ${converted.problem}`, { connectorId })
      return { lineId: line.lineId, sku: line.sku, quantity: converted.value }
    })
    const body: Record<string, unknown> = {}
    for (const [path, value] of Object.entries(config.constants)) writePath(body, path, structuredClone(value))
    writeFieldMap(config.fields, { reference, idempotencyKey, lines }, body)
    const partial = settings.reserve.partial
    if (partial !== 'unsupported') {
      const value = request.allowPartial ? partial.allowed : partial.notAllowed
      if (value !== undefined) writePath(body, partial.field, value)
    }
    return body
  }

  /** `knownId`: an update's answer need not repeat the reservation's id. */
  function readReservation(
    data: unknown,
    at: string,
    request: ReservationRequest | undefined,
    what: string,
    kind: FailureKind,
    httpStatus: number,
    knownId?: string,
  ): WmsReservation {
    const document = at === '' ? data : readPath(data, at)
    const defaults = knownId === undefined ? {} : { externalId: knownId }
    const shape = readShape(reservationShape, reservationFieldMap(settings), document, at, what, kind, httpStatus, defaults)
    return toReservation(settings, shape, request)
  }

  async function stockBatch(skus: readonly string[]): Promise<StockLevel[]> {
    const config = settings.stock
    const url = expandPath(config.path, { skus }, config.skuSeparator)
    let body: Record<string, unknown> | undefined
    if (config.body) {
      body = {}
      for (const [path, value] of Object.entries(config.body.constants)) writePath(body, path, structuredClone(value))
      writeFieldMap(config.body.fields, { skus: [...skus] }, body)
    }
    const answer = await send(config.method, url, body)
    const { levels } = readShape(stockShape, config.answer, answer.data, '', 'a stock query', 'config', answer.status)
    // A WMS that ignores the filter lists everything: answer only what was asked.
    const asked = new Set(skus)
    return levels
      .filter((level) => asked.has(level.sku))
      .map((level) => ({
        sku: level.sku,
        available: atLeastZero(level.available),
        ...(level.onHand !== undefined ? { onHand: level.onHand } : {}),
        ...(level.warehouse !== undefined ? { warehouse: level.warehouse } : {}),
      }))
  }

  async function stock(skus: readonly string[]): Promise<StockLevel[]> {
    const unique = [...new Set(skus)]
    const levels: StockLevel[] = []
    // One batch after another: a WMS with a rate limit sees one request at a time from a stock query.
    for (let i = 0; i < unique.length; i += settings.stock.maxBatchSize) {
      levels.push(...(await stockBatch(unique.slice(i, i + settings.stock.maxBatchSize))))
    }
    return levels
  }

  /** Available per SKU, summed over warehouses, from the stock endpoint; undefined when it cannot be asked. */
  async function availableFromStock(request: ReservationRequest): Promise<Map<string, string> | undefined> {
    try {
      const levels = await stock(request.lines.map((line) => line.sku))
      const total = new Map<string, string>()
      for (const level of levels) total.set(level.sku, addDecimal(total.get(level.sku) ?? '0', level.available))
      return total
    } catch (err) {
      ctx.log.warn({ connectionId: ctx.connectionId, connectorId, kind: classifyRestWmsError(err, settings).kind }, 'could not read stock levels to explain a shortage')
      return undefined
    }
  }

  /** The `data` failure (with `missing`) for an answer that means "not enough stock"; undefined for any other answer. */
  async function insufficientStock(answer: Answer | undefined, request: ReservationRequest, cause: unknown): Promise<SyncFailure | undefined> {
    const config = settings.insufficientStock
    if (!answer || !config.when.some((matcher) => answerMatches(matcher, answer))) return undefined
    const { when: _, ...fields } = config
    let missing: MissingStock[] = []
    if (fields['shortages[].sku'] !== undefined) {
      const listed = readFieldMap(fields, answer.data).shortages
      const shortages = (Array.isArray(listed) ? listed : []).flatMap((entry) => {
        const parsed = shortageShape.safeParse(entry)
        return parsed.success ? [parsed.data] : []
      })
      if (shortages.length > 0 && shortages.every((shortage) => shortage.lineId !== undefined)) {
        missing = request.lines.flatMap((line) => {
          const shortage = shortages.find((candidate) => candidate.lineId === line.lineId)
          if (!shortage) return []
          const requested = canonicalDecimal(line.quantity) ?? line.quantity
          const available = atLeastZero(shortage.available)
          return compareDecimal(requested, available) > 0 ? [{ lineId: line.lineId, sku: line.sku, requested, available }] : []
        })
      } else {
        const available = new Map<string, string>()
        for (const shortage of shortages) available.set(shortage.sku, atLeastZero(shortage.available))
        missing = missingLines(request, available, 'fine')
      }
    }
    if (missing.length === 0) {
      // The WMS said no without saying how much there is: its stock levels tell.
      const available = await availableFromStock(request)
      if (available) missing = missingLines(request, available, 'none')
    }
    if (missing.length === 0) {
      return new SyncFailure('conflict', 'the WMS reported not enough stock, but its stock levels cover every line; trying again', { connectorId, httpStatus: answer.status }, { cause })
    }
    return new SyncFailure('data', describeMissing(missing), { connectorId, httpStatus: answer.status, missing }, { cause })
  }

  /** Sends a create or an update; "not enough stock" (an error or a 2xx) becomes the `data` failure. */
  async function reserving(request: ReservationRequest, method: Method, url: string, body: unknown, headers: Record<string, string>): Promise<Answer> {
    const answer = await send(method, url, body, headers).catch(async (err: unknown) => {
      throw (await insufficientStock(answerOf(err), request, err)) ?? err
    })
    const refused = await insufficientStock(answer, request, undefined)
    if (refused) throw refused
    return answer
  }

  return {
    async health() {
      if (settings.health) await send(settings.health.method, expandPath(settings.health.path, {}))
    },

    stock,

    async create(reference, request, idempotencyKey) {
      const config = settings.reserve
      const headers = config.idempotencyHeader === 'none' ? {} : { [config.idempotencyHeader]: idempotencyKey }
      const body = reservationBody(config.body, reference, request, idempotencyKey)
      const answer = await reserving(request, config.method, expandPath(config.path, { reference }), body, headers)
      // Made, but we cannot tell its id: a retry must look it up or replay the key, not reserve again.
      return readReservation(answer.data, config.answerAt, request, 'a new reservation', 'unknown_outcome', answer.status)
    },

    async update(externalId, reference, request, idempotencyKey) {
      const config = settings.update
      if (config === 'none') {
        throw new SyncFailure('data', 'this WMS cannot change a reservation (update: none): release it and reserve again', { connectorId })
      }
      const headers = config.idempotencyHeader === 'none' ? {} : { [config.idempotencyHeader]: `${idempotencyKey}.update` }
      const body = reservationBody(config.body, reference, request, idempotencyKey)
      const answer = await reserving(request, config.method, expandPath(config.path, { externalId, reference }), body, headers)
      if (config.answerAt === 'none') return toReservation(settings, { externalId }, request)
      return readReservation(answer.data, config.answerAt, request, 'a changed reservation', 'config', answer.status, externalId)
    },

    async find(reference) {
      const config = settings.find
      if (config === 'none') return []
      const answer = await send(config.method, expandPath(config.path, { reference }))
      const list = config.listAt === '' ? answer.data : readPath(answer.data, config.listAt)
      if (!Array.isArray(list)) {
        throw configFailure(`a reservation lookup: the WMS answer's ${config.listAt || 'body'} is not a list; check find.listAt`, answer.status)
      }
      const found = list.map((item) => readReservation(item, '', undefined, 'a reservation lookup', 'config', answer.status))
      // Never adopt another order's reservation, whatever the WMS lists.
      const ours = found.filter((reservation) => reservation.reference === reference)
      return config.order === 'newest-first' ? ours.reverse() : ours
    },

    async release(externalId, reference) {
      const config = settings.release
      const body = Object.keys(config.constants).length > 0 ? structuredClone(config.constants) : undefined
      try {
        await send(config.method, expandPath(config.path, { externalId, reference }), body)
      } catch (err) {
        const answer = answerOf(err)
        if (answer && config.alreadyReleased.some((matcher) => answerMatches(matcher, answer))) return
        throw err
      }
    },
  }
}
