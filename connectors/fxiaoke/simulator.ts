/**
 * A small Fxiaoke Open API on loopback, in the real wire format, for the demo and tests:
 * - POST /cgi/corpAccessToken/get/V2 → {errorCode, corpAccessToken, corpId, expiresIn}; tokens expire.
 * - POST /cgi/crm/v2/data/query (and /cgi/crm/custom/v2/data/query) with `search_query_info`
 *   (filters EQ N GT GTE LT LTE IN NIN LIKE, multi-field `orders`, offset/limit with the API's limits)
 *   → `data.dataList`.
 * - POST /cgi/crm/v2/data/update and …/create (object_data with dataObjectApiName and _id). Updates
 *   of a locked record (lock_status "1"), of a field the object's description (option `fields`)
 *   lacks, or of a number field with text are refused; products (ProductObj) are kept like orders.
 * - Optionally a per-interface call limit (`interfaceLimit`), refusing calls over it.
 * Every answer is HTTP 200 with the envelope {errorCode, errorMessage, errorDescription, traceId, data};
 * a wrong or expired corpAccessToken answers 20016, a missing one 20017.
 * It also pushes orders as a CRM function would (signed, optionally encrypted; see pusher.ts).
 * State lives in memory and dies with the server. It does not log.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import Fastify from 'fastify'
import { z } from 'zod'
import { tokenExpiredCode } from './client.ts'
import { createFxiaokePusher, type FxiaokePusher, type PushResult } from './pusher.ts'
import type { FxRecord } from './records.ts'

/** Codes the simulator answers for faults whose real code is not documented; not Fxiaoke's. */
export const simulatorErrorCodes = { badParameter: 90400, notFound: 90404, locked: 90423, tooFrequent: 90429 } as const
const tokenRequiredCode = 20017
const wrongSecretCode = 10006

export interface FxiaokeSimulatorOptions {
  appId: string
  appSecret: string
  permanentCode: string
  corpId?: string
  /** expiresIn of new tokens (default 7200). */
  tokenTtlSeconds?: number
  port?: number
  host?: string
  /** Where pushOrder() sends orders, signed with `token` (and encrypted with `encodingAesKey` when set). */
  push?: { url: string; token: string; encodingAesKey?: string; appId?: string }
  /**
   * The fields of an object and their types (`{ ProductObj: { product_code: 'text', field_available_stock__c: 'number' } }`).
   * An update of a described object naming another field, or a number field with something not a
   * number, is refused as a bad parameter. Objects not described take any field.
   */
  fields?: Record<string, Record<string, 'text' | 'number'>>
  /** Calls per interface (path) allowed in `perMs`; more are refused as too frequent, doing nothing. */
  interfaceLimit?: { max: number; perMs: number }
}

export interface RecordedUpdate {
  objectApiName: string
  id: string
  fields: FxRecord
  triggerWorkFlow: unknown
}

export interface FxiaokeSimulator {
  url: string
  corpId: string
  /** Saves a product (ProductObj) as a CRM user would, e.g. `{ product_code: 'MAT0001', name: '…' }`; `lock_status: '1'` locks it. */
  putProduct(product: FxRecord): FxRecord
  /** Saves an order with its lines, as a CRM user would; `modifiedAt` fixes last_modified_time (tests). */
  putOrder(order: FxRecord, lines?: readonly FxRecord[], options?: { modifiedAt?: number }): FxRecord
  order(id: string): FxRecord | undefined
  lines(orderId: string): FxRecord[]
  records(objectApiName: string): FxRecord[]
  /** Every data/update call, in order. */
  updates(): RecordedUpdate[]
  /** Pushes the order with its lines to `push.url`, like a CRM function on a workflow. */
  pushOrder(id: string, event?: 'created' | 'updated' | 'cancelled'): Promise<PushResult>
  pusher(): FxiaokePusher
  /** Revokes every token (the server-side expiry): the next call answers 20016. */
  expireTokens(): void
  /** The next `count` data calls (not token requests) answer this errorCode. */
  failNext(count: number, errorCode: number, errorMessage?: string): void
  stats(): { tokenRequests: number; tokensIssued: number; calls: Record<string, number> }
  /** When each data call arrived (epoch ms) and on which path, refused ones included. */
  callLog(): { path: string; at: number }[]
  close(): Promise<void>
}

const orderObject = 'SalesOrderObj'
const lineObject = 'SalesOrderProductObj'
const productObject = 'ProductObj'
// Fields every record has, whatever its object's description.
const systemFields = new Set(['_id', 'name', 'owner', 'record_type', 'life_status', 'lock_status', 'is_deleted', 'create_time', 'last_modified_time', 'created_by', 'last_modified_by', 'version', 'object_describe_api_name'])

const filterSchema = z.object({ field_name: z.string().min(1), field_values: z.array(z.union([z.string(), z.number(), z.boolean()])), operator: z.string() })
const querySchema = z.object({
  data: z.object({
    dataObjectApiName: z.string().min(1),
    search_query_info: z.object({
      offset: z.number().int().min(0).default(0),
      limit: z.number().int().min(1).default(20),
      filters: z.array(filterSchema).default([]),
      orders: z.array(z.object({ fieldName: z.string().min(1), isAsc: z.boolean() })).default([]),
    }),
  }),
})
const writeSchema = z.object({
  triggerWorkFlow: z.boolean().optional(),
  data: z.object({ object_data: z.looseObject({ dataObjectApiName: z.string().min(1), _id: z.string().optional() }) }),
})

type Scalar = string | number

function scalar(value: unknown): Scalar | undefined {
  return typeof value === 'number' || typeof value === 'string' ? value : typeof value === 'boolean' ? String(value) : undefined
}

function compare(a: Scalar, b: Scalar): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b
  const [x, y] = [String(a), String(b)]
  return x < y ? -1 : x > y ? 1 : 0
}

/** A filter value read as the field's type: numbers compare as numbers. */
function operand(fieldValue: Scalar, given: string | number | boolean): Scalar {
  return typeof fieldValue === 'number' ? Number(given) : String(given)
}

function matches(record: FxRecord, filter: z.infer<typeof filterSchema>): boolean | 'unknown' {
  const value = scalar(Array.isArray(record[filter.field_name]) ? (record[filter.field_name] as unknown[])[0] : record[filter.field_name])
  const values = filter.field_values
  if (value === undefined) return filter.operator === 'N' || filter.operator === 'NIN'
  const first = values[0]
  switch (filter.operator) {
    case 'EQ':
      return first !== undefined && compare(value, operand(value, first)) === 0
    case 'N':
      return first === undefined || compare(value, operand(value, first)) !== 0
    case 'GT':
      return first !== undefined && compare(value, operand(value, first)) > 0
    case 'GTE':
      return first !== undefined && compare(value, operand(value, first)) >= 0
    case 'LT':
      return first !== undefined && compare(value, operand(value, first)) < 0
    case 'LTE':
      return first !== undefined && compare(value, operand(value, first)) <= 0
    case 'IN':
      return values.some((v) => compare(value, operand(value, v)) === 0)
    case 'NIN':
      return !values.some((v) => compare(value, operand(value, v)) === 0)
    case 'LIKE':
      return first !== undefined && String(value).includes(String(first))
    default:
      return 'unknown'
  }
}

function sameSecret(a: string, b: unknown): boolean {
  if (typeof b !== 'string') return false
  const [x, y] = [Buffer.from(a), Buffer.from(b)]
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Starts the simulator.
 *
 * @example
 * const fx = await startFxiaokeSimulator({ appId: 'FSAID_1', appSecret: 's', permanentCode: 'p', push: { url, token } })
 * const order = fx.putOrder({ account_id: 'acc-1', order_amount: '226.00' }, [{ product_id: 'p-1', quantity: '2', sales_price: '113.00' }])
 * await fx.pushOrder(String(order._id))
 */
export async function startFxiaokeSimulator(options: FxiaokeSimulatorOptions): Promise<FxiaokeSimulator> {
  const corpId = options.corpId ?? 'FSCID_SIMULATOR0000000000000000'
  const ttl = options.tokenTtlSeconds ?? 7200
  const objects = new Map<string, Map<string, FxRecord>>()
  const tokens = new Map<string, number>()
  const updates: RecordedUpdate[] = []
  const calls: Record<string, number> = {}
  const callLog: { path: string; at: number }[] = []
  let tokenRequests = 0
  let tokensIssued = 0
  let sequence = 0
  let traces = 0
  let faults: { remaining: number; errorCode: number; errorMessage: string } | undefined
  let pusher: FxiaokePusher | undefined

  const table = (apiName: string) => {
    let t = objects.get(apiName)
    if (!t) objects.set(apiName, (t = new Map()))
    return t
  }
  // Ids increase, like Fxiaoke's ObjectId-style ids: 24 hex digits.
  const newId = () => `6650a1b2${(++sequence).toString(16).padStart(16, '0')}`
  const envelope = (errorCode: number, errorMessage: string, extra: Record<string, unknown> = {}) => ({
    errorCode,
    errorMessage,
    errorDescription: errorCode === 0 ? 'success' : errorMessage,
    traceId: `E-O.sim.${++traces}`,
    ...extra,
  })

  // Clients keep connections alive; closing must not wait for them.
  const app = Fastify({ logger: false, forceCloseConnections: true })

  app.post('/cgi/corpAccessToken/get/V2', async (request) => {
    tokenRequests += 1
    const body = (request.body ?? {}) as Record<string, unknown>
    if (!sameSecret(options.appId, body.appId) || !sameSecret(options.appSecret, body.appSecret) || !sameSecret(options.permanentCode, body.permanentCode)) {
      return envelope(wrongSecretCode, 'appId, appSecret or permanentCode is wrong')
    }
    // Like the real endpoint, a young token is answered again rather than replaced.
    const now = Date.now()
    const current = [...tokens.entries()].find(([, expiresAt]) => expiresAt - now > (ttl * 1000) / 12)
    if (current) return envelope(0, 'success', { corpAccessToken: current[0], corpId, expiresIn: Math.floor((current[1] - now) / 1000) })
    const token = randomBytes(16).toString('hex').toUpperCase()
    tokens.set(token, now + ttl * 1000)
    tokensIssued += 1
    return envelope(0, 'success', { corpAccessToken: token, corpId, expiresIn: ttl })
  })

  /** The checks every data call passes first; an envelope when it fails. */
  function refused(path: string, body: Record<string, unknown>): object | undefined {
    calls[path] = (calls[path] ?? 0) + 1
    const at = Date.now()
    callLog.push({ path, at })
    if (typeof body.corpAccessToken !== 'string' || !body.corpAccessToken) return envelope(tokenRequiredCode, 'corpAccessToken为必填项')
    const expiresAt = tokens.get(body.corpAccessToken)
    if (expiresAt === undefined || expiresAt <= Date.now()) return envelope(tokenExpiredCode, 'corpAccessToken不存在或者已经过期')
    if (body.corpId !== corpId) return envelope(simulatorErrorCodes.badParameter, 'corpId does not match the token')
    if (typeof body.currentOpenUserId !== 'string' || !body.currentOpenUserId) return envelope(simulatorErrorCodes.badParameter, 'currentOpenUserId is required')
    if (faults && faults.remaining > 0) {
      faults.remaining -= 1
      return envelope(faults.errorCode, faults.errorMessage)
    }
    const limit = options.interfaceLimit
    if (limit && callLog.filter((c) => c.path === path && at - c.at < limit.perMs).length > limit.max) {
      return envelope(simulatorErrorCodes.tooFrequent, '接口调用过于频繁，请稍后再试')
    }
    return undefined
  }

  /** Why an update of `apiName` with these fields is refused, if it is (the object's described fields and types). */
  function invalidFields(apiName: string, fields: FxRecord): string | undefined {
    const described = options.fields?.[apiName]
    if (!described) return undefined
    for (const [field, value] of Object.entries(fields)) {
      if (systemFields.has(field)) continue
      const type = described[field]
      if (type === undefined) return `字段${field}不存在`
      if (type === 'number' && value !== null && value !== '' && !(typeof value === 'number' || (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)))) {
        return `字段${field}的值不是有效的数字`
      }
    }
    return undefined
  }

  function query(path: string) {
    return async (request: { body: unknown }) => {
      const body = (request.body ?? {}) as Record<string, unknown>
      const refusal = refused(path, body)
      if (refusal) return refusal
      const parsed = querySchema.safeParse(body)
      if (!parsed.success) return envelope(simulatorErrorCodes.badParameter, `invalid query: ${parsed.error.issues[0]?.message ?? ''}`)
      const { dataObjectApiName, search_query_info: info } = parsed.data.data
      if (info.limit > 100) return envelope(simulatorErrorCodes.badParameter, 'limit must be at most 100')
      if (info.offset % info.limit !== 0 || info.offset > 10_000) return envelope(simulatorErrorCodes.badParameter, 'offset must be a multiple of limit and at most 10000')
      let rows = [...table(dataObjectApiName).values()]
      for (const filter of info.filters) {
        const kept: FxRecord[] = []
        for (const row of rows) {
          const ok = matches(row, filter)
          if (ok === 'unknown') return envelope(simulatorErrorCodes.badParameter, `unknown operator ${filter.operator}`)
          if (ok) kept.push(row)
        }
        rows = kept
      }
      if (info.orders.length) {
        rows.sort((a, b) => {
          for (const order of info.orders) {
            const [x, y] = [scalar(a[order.fieldName]) ?? '', scalar(b[order.fieldName]) ?? '']
            const c = compare(x, y)
            if (c !== 0) return order.isAsc ? c : -c
          }
          return 0
        })
      }
      const dataList = rows.slice(info.offset, info.offset + info.limit).map((row) => structuredClone(row))
      return envelope(0, 'OK', { data: { dataList, total: rows.length, offset: info.offset, limit: info.limit } })
    }
  }

  function update(path: string) {
    return async (request: { body: unknown }) => {
      const body = (request.body ?? {}) as Record<string, unknown>
      const refusal = refused(path, body)
      if (refusal) return refusal
      const parsed = writeSchema.safeParse(body)
      if (!parsed.success) return envelope(simulatorErrorCodes.badParameter, 'invalid update')
      const { dataObjectApiName, _id, ...fields } = parsed.data.data.object_data
      const record = _id === undefined ? undefined : table(dataObjectApiName).get(_id)
      if (!record || _id === undefined) return envelope(simulatorErrorCodes.notFound, '数据不存在')
      if (record.lock_status === '1') return envelope(simulatorErrorCodes.locked, '数据已锁定，不能编辑')
      const invalid = invalidFields(dataObjectApiName, fields)
      if (invalid) return envelope(simulatorErrorCodes.badParameter, invalid)
      updates.push({ objectApiName: dataObjectApiName, id: _id, fields: structuredClone(fields), triggerWorkFlow: parsed.data.triggerWorkFlow })
      Object.assign(record, fields, { last_modified_time: Date.now(), version: Number(record.version ?? 1) + 1, last_modified_by: ['-10000'] })
      // The update page's response: the envelope with the record's dataId.
      return envelope(0, 'OK', { dataId: _id })
    }
  }

  function create(path: string) {
    return async (request: { body: unknown }) => {
      const body = (request.body ?? {}) as Record<string, unknown>
      const refusal = refused(path, body)
      if (refusal) return refusal
      const parsed = writeSchema.safeParse(body)
      if (!parsed.success) return envelope(simulatorErrorCodes.badParameter, 'invalid create')
      const { dataObjectApiName, ...fields } = parsed.data.data.object_data
      const now = Date.now()
      const id = newId()
      table(dataObjectApiName).set(id, { ...fields, _id: id, object_describe_api_name: dataObjectApiName, create_time: now, last_modified_time: now, version: 1 })
      return envelope(0, 'OK', { dataId: id })
    }
  }

  for (const prefix of ['/cgi/crm/v2/data', '/cgi/crm/custom/v2/data']) {
    app.post(`${prefix}/query`, query(`${prefix}/query`))
    app.post(`${prefix}/update`, update(`${prefix}/update`))
    app.post(`${prefix}/create`, create(`${prefix}/create`))
  }

  const address = await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })

  function lines(orderId: string): FxRecord[] {
    return [...table(lineObject).values()].filter((line) => line.order_id === orderId).map((line) => structuredClone(line))
  }

  return {
    url: address,
    corpId,
    putProduct(product) {
      const now = Date.now()
      const id = typeof product._id === 'string' ? product._id : newId()
      const previous = table(productObject).get(id)
      const record: FxRecord = {
        object_describe_api_name: productObject,
        life_status: 'normal',
        lock_status: '0',
        ...product,
        _id: id,
        create_time: previous?.create_time ?? now,
        last_modified_time: now,
        version: Number(previous?.version ?? 0) + 1,
      }
      table(productObject).set(id, record)
      return structuredClone(record)
    },
    putOrder(order, orderLines = [], putOptions = {}) {
      const now = putOptions.modifiedAt ?? Date.now()
      const id = typeof order._id === 'string' ? order._id : newId()
      const previous = table(orderObject).get(id)
      const record: FxRecord = {
        object_describe_api_name: orderObject,
        life_status: 'normal',
        ...order,
        _id: id,
        create_time: previous?.create_time ?? order.create_time ?? now,
        last_modified_time: now,
        version: Number(previous?.version ?? 0) + 1,
      }
      table(orderObject).set(id, record)
      const lineTable = table(lineObject)
      for (const [lineId, line] of lineTable) if (line.order_id === id) lineTable.delete(lineId)
      for (const line of orderLines) {
        const lineId = typeof line._id === 'string' ? line._id : newId()
        lineTable.set(lineId, { object_describe_api_name: lineObject, ...line, _id: lineId, order_id: id, create_time: now, last_modified_time: now })
      }
      return structuredClone(record)
    },
    order: (id) => structuredClone(table(orderObject).get(id)),
    lines,
    records: (apiName) => [...table(apiName).values()].map((r) => structuredClone(r)),
    updates: () => structuredClone(updates),
    async pushOrder(id, event) {
      const order = table(orderObject).get(id)
      if (!order) throw new Error(`no order ${id}`)
      if (!options.push) throw new Error('the simulator was started without `push`')
      pusher ??= createFxiaokePusher(options.push)
      return pusher.push({ ...(event ? { event } : {}), object_data: order, details: { [lineObject]: lines(id) } })
    },
    pusher() {
      if (!options.push) throw new Error('the simulator was started without `push`')
      pusher ??= createFxiaokePusher(options.push)
      return pusher
    },
    expireTokens: () => tokens.clear(),
    failNext(count, errorCode, errorMessage = 'simulated failure') {
      faults = { remaining: count, errorCode, errorMessage }
    },
    stats: () => ({ tokenRequests, tokensIssued, calls: { ...calls } }),
    callLog: () => callLog.map((c) => ({ ...c })),
    close: () => app.close(),
  }
}
