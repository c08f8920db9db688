/**
 * The HTTP client of the Fxiaoke connector: the only file that knows Fxiaoke's URLs and envelopes.
 * It acquires the corpAccessToken (appId, appSecret, permanentCode → /cgi/corpAccessToken/get/V2),
 * keeps it until `expiresIn` minus a margin, and when a call answers that the token has expired
 * (errorCode 20016) it logs in again once and repeats the call. Token requests are single-flight per
 * app and tenant: the endpoint takes few calls a minute and none concurrently.
 *
 * Calls use the v2 API with the token in the body (`corpAccessToken`, `corpId`, `currentOpenUserId`).
 * Fxiaoke answers errors with HTTP 200 and a non-zero `errorCode`; those become FxiaokeApiError.
 * It does not retry otherwise and does not classify: the queue and `classify()` do that.
 */
import { z } from 'zod'
import { SyncFailure, createHttpClient, type ConnectorContext } from '../../src/connector-kit/index.ts'
import { parseFxiaokeJson, type FxRecord } from './records.ts'
import { fxiaokeConnectorId, type FxiaokeSecrets, type FxiaokeSettings } from './settings.ts'

export type FxiaokeContext = ConnectorContext<FxiaokeSettings, FxiaokeSecrets>

export const tokenPath = '/cgi/corpAccessToken/get/V2'
/** Preset objects (SalesOrderObj…) and custom objects (api_name ending in __c) have separate paths. */
export const dataPath = (objectApiName: string, action: 'query' | 'update' | 'create') =>
  objectApiName.endsWith('__c') ? `/cgi/crm/custom/v2/data/${action}` : `/cgi/crm/v2/data/${action}`

/** corpAccessToken missing or expired (the official demo's CORP_ACCESS_TOKEN_EXPIRED). */
export const tokenExpiredCode = 20016

/** A non-zero errorCode. The message names the operation and carries Fxiaoke's own message and trace id. */
export class FxiaokeApiError extends Error {
  readonly errorCode: number
  readonly operation: string
  readonly traceId: string | undefined
  constructor(operation: string, errorCode: number, errorMessage: string | undefined, traceId: string | undefined) {
    const said = errorMessage ? `: ${errorMessage.slice(0, 200)}` : ''
    super(`Fxiaoke ${operation} answered errorCode ${errorCode}${said}${traceId ? ` (traceId ${traceId})` : ''}`)
    this.name = 'FxiaokeApiError'
    this.errorCode = errorCode
    this.operation = operation
    this.traceId = traceId
  }
}

/** The response envelope: `{errorCode, errorMessage, errorDescription, traceId, data}` (and the token endpoint's fields at the top). */
const envelopeSchema = z.looseObject({
  errorCode: z.number().int(),
  errorMessage: z.string().optional(),
  errorDescription: z.string().optional(),
  traceId: z.string().optional(),
})

const tokenResponseSchema = z.looseObject({
  corpAccessToken: z.string().min(1),
  corpId: z.string().min(1),
  expiresIn: z.number().int().nonnegative(),
})

const queryDataSchema = z.union([
  z.looseObject({ dataList: z.array(z.record(z.string(), z.unknown())) }),
  // The docs also show the list directly under `data`.
  z.array(z.record(z.string(), z.unknown())).transform((dataList) => ({ dataList })),
])

export interface QueryFilter {
  field_name: string
  field_values: string[]
  operator: 'EQ' | 'N' | 'GT' | 'GTE' | 'LT' | 'LTE' | 'IN' | 'NIN'
}

export interface SearchQueryInfo {
  offset: number
  limit: number
  filters: QueryFilter[]
  orders: { fieldName: string; isAsc: boolean }[]
}

interface Token {
  token: string
  corpId: string
  expiresAt: number
}

type HttpClient = ReturnType<typeof createHttpClient>

// Per process: another process gets its own token, and the endpoint answers the same one while it is young.
const tokens = new Map<string, Token>()
const tokenRequests = new Map<string, Promise<Token>>()
const httpClients = new Map<string, HttpClient>()

function httpFor(settings: FxiaokeSettings): HttpClient {
  const key = `${settings.baseUrl}\u0000${settings.timeoutMs}`
  let http = httpClients.get(key)
  if (!http) {
    http = createHttpClient({ baseURL: settings.baseUrl, timeoutMs: settings.timeoutMs, headers: { 'Content-Type': 'application/json', Accept: 'application/json' } })
    httpClients.set(key, http)
  }
  return http
}

/** Forgets every cached token (tests). */
export function forgetTokens(): void {
  tokens.clear()
}

export interface FxiaokeClient {
  /** Acquires (or reuses) the token: proves appId, appSecret and permanentCode. */
  login(): Promise<void>
  query(objectApiName: string, info: SearchQueryInfo): Promise<FxRecord[]>
  update(objectApiName: string, id: string, fields: FxRecord, options: { triggerWorkFlow: boolean; triggerApprovalFlow: boolean }): Promise<void>
  create(objectApiName: string, fields: FxRecord): Promise<string | undefined>
}

export function fxiaokeClient(ctx: FxiaokeContext): FxiaokeClient {
  const { settings, secrets } = ctx
  const http = httpFor(settings)
  const { appId, appSecret, permanentCode } = secrets
  if (appId === undefined || appSecret === undefined || permanentCode === undefined) {
    throw new SyncFailure('config', 'the connection has no appId, appSecret and permanentCode, so the Fxiaoke API cannot be called', { connectorId: fxiaokeConnectorId })
  }
  // The secret is part of the key: a changed or wrong secret must not reuse another's token.
  const tokenKey = `${settings.baseUrl}\u0000${appId}\u0000${permanentCode}\u0000${appSecret}`

  async function post(path: string, operation: string, body: unknown): Promise<z.infer<typeof envelopeSchema>> {
    const response = await http.post<string>(path, body, { responseType: 'text', transformResponse: [(data: unknown) => data] })
    const parsed = envelopeSchema.safeParse(parseFxiaokeJson(response.data))
    if (!parsed.success) throw new FxiaokeApiError(operation, -1, 'the answer is not the API envelope', undefined)
    return parsed.data
  }

  async function fetchToken(): Promise<Token> {
    const answer = await post(tokenPath, 'login', { appId, appSecret, permanentCode })
    if (answer.errorCode !== 0) throw new FxiaokeApiError('login', answer.errorCode, answer.errorMessage, answer.traceId)
    const token = tokenResponseSchema.parse(answer)
    const lifetimeMs = Math.max(0, token.expiresIn - settings.tokenMarginSeconds) * 1000
    return { token: token.corpAccessToken, corpId: token.corpId, expiresAt: Date.now() + lifetimeMs }
  }

  /** The cached token unless it is about to expire or is the one just refused. */
  async function token(refused?: string): Promise<Token> {
    const cached = tokens.get(tokenKey)
    if (cached && cached.token !== refused && Date.now() < cached.expiresAt) return cached
    if (cached) tokens.delete(tokenKey)
    let request = tokenRequests.get(tokenKey)
    if (!request) {
      request = fetchToken().finally(() => tokenRequests.delete(tokenKey))
      tokenRequests.set(tokenKey, request)
    }
    const fresh = await request
    tokens.set(tokenKey, fresh)
    return fresh
  }

  async function call(path: string, operation: string, body: Record<string, unknown>): Promise<unknown> {
    if (settings.currentOpenUserId === undefined) {
      throw new SyncFailure('config', 'the connection has no currentOpenUserId (the operator API calls run as)', { connectorId: fxiaokeConnectorId })
    }
    const send = async (t: Token) =>
      post(path, operation, { corpAccessToken: t.token, corpId: settings.corpId ?? t.corpId, currentOpenUserId: settings.currentOpenUserId, ...body })
    const first = await token()
    let answer = await send(first)
    // Expired before its time (revoked, or another login replaced it): log in again, once.
    if (answer.errorCode === tokenExpiredCode) answer = await send(await token(first.token))
    if (answer.errorCode !== 0) throw new FxiaokeApiError(operation, answer.errorCode, answer.errorMessage, answer.traceId)
    return answer
  }

  return {
    async login() {
      await token()
    },
    async query(objectApiName, info) {
      const answer = (await call(dataPath(objectApiName, 'query'), `query ${objectApiName}`, { data: { dataObjectApiName: objectApiName, search_query_info: info } })) as { data?: unknown }
      const data = queryDataSchema.safeParse(answer.data ?? { dataList: [] })
      if (!data.success) throw new FxiaokeApiError(`query ${objectApiName}`, -1, 'the answer has no data.dataList', undefined)
      return data.data.dataList
    },
    async update(objectApiName, id, fields, options) {
      await call(dataPath(objectApiName, 'update'), `update ${objectApiName}`, {
        triggerWorkFlow: options.triggerWorkFlow,
        triggerApprovalFlow: options.triggerApprovalFlow,
        data: { object_data: { ...fields, dataObjectApiName: objectApiName, _id: id } },
      })
    },
    async create(objectApiName, fields) {
      const answer = (await call(dataPath(objectApiName, 'create'), `create ${objectApiName}`, {
        triggerWorkFlow: false,
        triggerApprovalFlow: false,
        data: { object_data: { ...fields, dataObjectApiName: objectApiName } },
      })) as { dataId?: unknown }
      return typeof answer.dataId === 'string' ? answer.dataId : undefined
    },
  }
}
