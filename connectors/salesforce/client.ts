/**
 * The Salesforce REST client for reading order lines (SOQL) and for writeback: the only file that
 * knows Salesforce's URLs. It logs in
 * with the OAuth 2.0 client credentials flow, keeps the access token for `tokenTtlMs` (Salesforce's
 * token answer has no expiry) in the kit's session cache, which shares one login between concurrent
 * calls, and logs in again once when a call answers 401 INVALID_SESSION_ID. It does not retry
 * otherwise and does not classify errors: the queue and `classify()` do that.
 */
import type { AxiosError, AxiosInstance } from 'axios'
import { z } from 'zod'
import { SessionCache, SyncFailure, createHttpClient, sessionKey, withSession, type ConnectorContext, type SessionGrant } from '../../src/connector-kit/index.ts'
import { salesforceConnectorId, salesforceIdPattern, type SalesforceSecrets, type SalesforceSettings } from './settings.ts'

export type SalesforceContext = ConnectorContext<SalesforceSettings, SalesforceSecrets>

/** The token endpoint's answer (client credentials flow). `expires_in` is not sent by Salesforce, but honoured if it is. */
const tokenAnswerSchema = z.object({
  access_token: z.string().min(1),
  instance_url: z.url(),
  token_type: z.string().optional(),
  issued_at: z.string().optional(),
  expires_in: z.coerce.number().int().positive().optional(),
})

/** What a create or an upsert answers. */
const saveResultSchema = z.object({ id: z.string(), success: z.boolean(), created: z.boolean().optional() })

const describeSchema = z.object({ fields: z.array(z.object({ name: z.string(), updateable: z.boolean() })) })

/** One page of a query's records (`GET …/query?q=` or `GET <nextRecordsUrl>`), numbers as their source text. */
const queryResultSchema = z.object({
  totalSize: z.coerce.number().int().nonnegative(),
  done: z.boolean(),
  nextRecordsUrl: z.string().optional(),
  records: z.array(z.record(z.string(), z.unknown())),
})
export type QueryResult = z.infer<typeof queryResultSchema>

/**
 * Where a `nextRecordsUrl` may point: the query resource of this API, on the instance we logged in
 * to. Anything else (another host, another path) is refused, since the bearer token goes with it.
 */
const nextRecordsUrlPattern = /^\/services\/data\/v\d{2,3}\.0\/query\/[A-Za-z0-9]+-\d+$/

/**
 * JSON.parse that keeps every number as the text Salesforce wrote (`2.0`, `350.00`): quantities and
 * currency fields must never pass through a binary float (Node 24's reviver `context.source`).
 */
export function parseSalesforceJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => (typeof value === 'number' && context?.source !== undefined ? context.source : value))
}

/** For axios: the body as exact JSON (success and error answers alike), or the text when it is no JSON. */
const exactJson = {
  responseType: 'text' as const,
  transformResponse: [
    (data: unknown) => {
      if (typeof data !== 'string' || data === '') return data
      try {
        return parseSalesforceJson(data)
      } catch {
        return data
      }
    },
  ],
}

interface Session {
  accessToken: string
  instanceUrl: string
}

// In process memory only (see the kit's session cache): another process logs in for itself, and a
// lost token costs one login.
const sessions = new SessionCache<Session>()
const httpClients = new Map<string, AxiosInstance>()

/** A field value for a write; `decimal` is sent as an exact JSON number (a currency field takes no string). */
export type FieldValue = string | { decimal: string }

const decimalPattern = /^-?\d+(\.\d+)?$/

/** JSON whose decimals are written digit for digit, never through a binary float. */
export function recordJson(fields: Readonly<Record<string, FieldValue>>): string {
  const parts = Object.entries(fields).map(([name, value]) => {
    if (typeof value === 'string') return `${JSON.stringify(name)}:${JSON.stringify(value)}`
    if (!decimalPattern.test(value.decimal)) throw new SyncFailure('data', `${name}: "${value.decimal}" is not a decimal`, { connectorId: salesforceConnectorId })
    return `${JSON.stringify(name)}:${value.decimal}`
  })
  return `{${parts.join(',')}}`
}

export interface SalesforceClient {
  /** PATCH the Order's fields; the same values twice leave the Order as after once. */
  updateOrder(orderId: string, fields: Readonly<Record<string, FieldValue>>): Promise<void>
  createRecord(sObject: 'Task' | 'FeedItem', fields: Readonly<Record<string, FieldValue>>): Promise<string>
  /** Creates or updates the record whose external id field holds `key` (idempotent). */
  upsertRecord(sObject: 'Task', externalIdField: string, key: string, fields: Readonly<Record<string, FieldValue>>): Promise<{ id: string; created: boolean }>
  /** The Order's fields: name and whether the integration user may update it. */
  describeOrder(): Promise<{ name: string; updateable: boolean }[]>
  /** The first page of a SOQL query's answer; numbers stay their source text. */
  query(soql: string): Promise<QueryResult>
  /** The next page, from a `nextRecordsUrl` of an answer (the query's own or a subquery's). */
  queryMore(nextRecordsUrl: string): Promise<QueryResult>
}

// The key changes with the org's URL and the credentials, without holding them.
const cacheKey = (ctx: SalesforceContext) => sessionKey(ctx.connectionId, { myDomainUrl: ctx.settings.myDomainUrl, ...ctx.secrets })

function httpClient(baseURL: string, timeoutMs: number): AxiosInstance {
  const key = `${baseURL}\u0000${timeoutMs}`
  let http = httpClients.get(key)
  if (!http) {
    http = createHttpClient({ baseURL, timeoutMs, headers: { Accept: 'application/json' } })
    httpClients.set(key, http)
  }
  return http
}

function credentialsOf(ctx: SalesforceContext): { myDomainUrl: string; clientId: string; clientSecret: string } {
  const { myDomainUrl } = ctx.settings
  const { clientId, clientSecret } = ctx.secrets
  if (myDomainUrl === undefined || clientId === undefined || clientSecret === undefined) {
    throw new SyncFailure('config', 'reading order lines from Salesforce and writing status back need settings.myDomainUrl, secrets.clientId and secrets.clientSecret', {
      connectorId: salesforceConnectorId,
    })
  }
  return { myDomainUrl, clientId, clientSecret }
}

async function login(ctx: SalesforceContext): Promise<SessionGrant<Session>> {
  const { myDomainUrl, clientId, clientSecret } = credentialsOf(ctx)
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret })
  const answer = await httpClient(myDomainUrl, ctx.settings.timeoutMs).post('/services/oauth2/token', form.toString(), {
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  })
  const token = tokenAnswerSchema.safeParse(answer.data)
  if (!token.success) throw new SyncFailure('bug', 'the Salesforce token endpoint answered without an access token and instance URL', { connectorId: salesforceConnectorId })
  const ttlMs = token.data.expires_in !== undefined ? Math.min(token.data.expires_in * 1000, ctx.settings.tokenTtlMs) : ctx.settings.tokenTtlMs
  return { value: { accessToken: token.data.access_token, instanceUrl: token.data.instance_url.replace(/\/+$/, '') }, ttlMs }
}

/** The error codes of a REST error answer (`[{errorCode, message, fields}]`). */
export function restErrorsOf(err: unknown): { errorCode: string; message: string; fields?: string[] }[] {
  const data = (err as AxiosError | undefined)?.response?.data
  if (!Array.isArray(data)) return []
  return data.filter((e): e is { errorCode: string; message: string; fields?: string[] } => typeof e?.errorCode === 'string')
}

const isInvalidSession = (err: unknown) =>
  (err as AxiosError | undefined)?.response?.status === 401 && restErrorsOf(err).some((e) => e.errorCode === 'INVALID_SESSION_ID')

export function salesforceClient(ctx: SalesforceContext): SalesforceClient {
  const apiPath = `/services/data/v${ctx.settings.apiVersion}`

  /** Runs `call` with a session; a session Salesforce no longer knows is replaced once (then: auth). */
  function withSalesforceSession<T>(call: (http: AxiosInstance, headers: Record<string, string>) => Promise<T>): Promise<T> {
    const key = cacheKey(ctx)
    return withSession(
      sessions,
      key,
      () => login(ctx),
      (session) => call(httpClient(session.instanceUrl, ctx.settings.timeoutMs), { Authorization: `Bearer ${session.accessToken}` }),
      { isExpired: isInvalidSession, connectorId: salesforceConnectorId },
    )
  }

  const json = { 'Content-Type': 'application/json' }

  return {
    async updateOrder(orderId, fields) {
      const id = recordId(orderId)
      await withSalesforceSession((http, auth) => http.patch(`${apiPath}/sobjects/Order/${id}`, recordJson(fields), { headers: { ...auth, ...json } }))
    },
    async createRecord(sObject, fields) {
      const answer = await withSalesforceSession((http, auth) => http.post(`${apiPath}/sobjects/${sObject}`, recordJson(fields), { headers: { ...auth, ...json } }))
      return saveResultSchema.parse(answer.data).id
    },
    async upsertRecord(sObject, externalIdField, key, fields) {
      const answer = await withSalesforceSession((http, auth) =>
        http.patch(`${apiPath}/sobjects/${sObject}/${externalIdField}/${encodeURIComponent(key)}`, recordJson(fields), { headers: { ...auth, ...json } }),
      )
      // Before API 46.0 an update answered 204 without a body.
      const saved = answer.status === 204 ? undefined : saveResultSchema.parse(answer.data)
      return { id: saved?.id ?? '', created: answer.status === 201 }
    },
    async describeOrder() {
      const answer = await withSalesforceSession((http, auth) => http.get(`${apiPath}/sobjects/Order/describe`, { headers: auth }))
      return describeSchema.parse(answer.data).fields
    },
    async query(soql) {
      const answer = await withSalesforceSession((http, auth) => http.get(`${apiPath}/query?q=${encodeURIComponent(soql)}`, { headers: auth, ...exactJson }))
      return queryResultOf(answer.data)
    },
    async queryMore(nextRecordsUrl) {
      if (!nextRecordsUrlPattern.test(nextRecordsUrl)) {
        throw new SyncFailure('bug', `Salesforce answered a nextRecordsUrl that is not a query locator of its REST API: ${nextRecordsUrl.slice(0, 120)}`, { connectorId: salesforceConnectorId })
      }
      const answer = await withSalesforceSession((http, auth) => http.get(nextRecordsUrl, { headers: auth, ...exactJson }))
      return queryResultOf(answer.data)
    },
  }
}

function queryResultOf(data: unknown): QueryResult {
  const result = queryResultSchema.safeParse(data)
  if (!result.success) throw new SyncFailure('bug', 'Salesforce answered a query without totalSize, done and records', { connectorId: salesforceConnectorId })
  return result.data
}

/** A record id goes into a URL path or a SOQL literal: anything but an id is refused before a request is made. */
export function recordId(id: string): string {
  if (!salesforceIdPattern.test(id)) throw new SyncFailure('data', `"${id}" is not a Salesforce record id`, { connectorId: salesforceConnectorId })
  return id
}

/** Forgets every cached session (tests). */
export function forgetSalesforceSessions(): void {
  sessions.clear()
}
