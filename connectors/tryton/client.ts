/**
 * The Tryton 6.0 JSON-RPC client: the only file that knows URLs and the wire format. One POST per
 * call to `<url>/<database>/` with exactly `{id, method, params}` (no `"jsonrpc": "2.0"`: Tryton
 * then answers bare results and HTML errors), a `Session` authorization from `common.db.login`
 * reused through the kit's SessionCache, and the company context appended to every model call.
 *
 * Tryton answers errors with HTTP 200 and `{"error": [type, args]}`; they are thrown as
 * `TrytonRpcError` for `classify()` (errors.ts). HTTP-level refusals (401, 403, 429) come from axios
 * as they are. It does not retry and does not classify: the queue and `classify()` do.
 */
import http from 'node:http'
import https from 'node:https'
import axios, { AxiosError } from 'axios'
import {
  SessionCache,
  SyncFailure,
  createHttpClient,
  secretValuesOf,
  sessionKey,
  withSession,
  type ConnectorContext,
  type SessionGrant,
} from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { trytonConnectorId, type TrytonSecrets, type TrytonSettings } from './settings.ts'
import { decode, type Encoded } from './values.ts'

export type TrytonContext = ConnectorContext<TrytonSettings, TrytonSecrets>

/** An error Tryton answered inside a 200: `type` is `UserError`, `UserWarning`, `ConcurrencyException`, `LoginException` or a server exception's text. */
export class TrytonRpcError extends Error {
  readonly type: string
  /** UserError: [message, description, domain]; UserWarning: [name, message, description]; ConcurrencyException: a string. */
  readonly args: unknown
  readonly method: string
  constructor(type: string, args: unknown, method: string) {
    super(`Tryton ${type} on ${method}`)
    this.name = 'TrytonRpcError'
    this.type = type
    this.args = args
    this.method = method
  }

  /** What Tryton says to people: a UserError's message, a UserWarning's message, else the type's first line. */
  get userMessage(): string {
    const args = Array.isArray(this.args) ? this.args : [this.args]
    const message = this.type === 'UserWarning' ? args[1] : this.type === 'UserError' || this.type === 'ConcurrencyException' ? args[0] : this.type
    return String(message ?? this.type).split('\n')[0]!.trim().slice(0, 500)
  }
}

/** The server answered 200 with something that is not a Tryton JSON-RPC envelope. */
export class TrytonProtocolError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TrytonProtocolError'
  }
}

/** A logged-in session: the header every call carries and the context every model call ends with. */
export interface TrytonSession {
  authorization: string
  userId: number
  context: { company: number; language: string; [key: string]: Encoded }
}

const envelopeSchema = z.union([
  z.object({ id: z.unknown(), result: z.unknown() }),
  z.object({ id: z.unknown(), error: z.unknown() }),
])

const preferencesSchema = z.object({ company: z.number().int().nullable().optional(), language: z.string().nullable().optional() }).loose()

type HttpClient = ReturnType<typeof createHttpClient>

// One axios instance per settings object; nothing here outlives the connection's configuration.
const httpClients = new WeakMap<TrytonSettings, HttpClient>()
// Logins go through an instance of their own that records no exchanges: the answer is the session
// key, a bearer credential for up to 30 days, and must not land in the sync-attempt log.
const loginClients = new WeakMap<TrytonSettings, HttpClient>()
const loginAgents = { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 8 }), httpsAgent: new https.Agent({ keepAlive: true, maxSockets: 8 }) }
// Sessions live in this process only (see the kit's SessionCache).
const sessions = new SessionCache<TrytonSession>({ defaultTtlMs: 12 * 3_600_000 })
let nextRequestId = 1

function httpClientFor(ctx: TrytonContext): HttpClient {
  let http = httpClients.get(ctx.settings)
  if (!http) {
    http = createHttpClient({
      baseURL: ctx.settings.url,
      timeoutMs: ctx.settings.timeoutMs,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      // The login sends the password positionally inside params: mask it wherever it appears.
      exchange: { secretValues: secretValuesOf(ctx.secrets) },
    })
    httpClients.set(ctx.settings, http)
  }
  return http
}

function loginClientFor(ctx: TrytonContext): HttpClient {
  let client = loginClients.get(ctx.settings)
  if (!client) {
    client = axios.create({ baseURL: ctx.settings.url, timeout: ctx.settings.timeoutMs, headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, maxRedirects: 0, proxy: false, ...loginAgents })
    loginClients.set(ctx.settings, client)
  }
  return client
}

function databasePath(settings: TrytonSettings): string {
  return `${encodeURIComponent(settings.database)}/`
}

/** The cache key of a connection's session: changes with the server, database, login or password. */
export function trytonSessionKey(ctx: TrytonContext): string {
  const { url, database, username } = ctx.settings
  return sessionKey(`${ctx.connectionId}|${url}|${database}|${username}`, ctx.secrets)
}

/** True when Tryton refused the session itself (expired, logged out): the call did nothing. */
export function isSessionRefused(err: unknown): boolean {
  return err instanceof AxiosError && err.response?.status === 401
}

export interface TrytonClient {
  /** A model or wizard method; the session's context (company, language, `extra`) is appended as the last param. */
  call<T = unknown>(method: string, params: Encoded[], extra?: Record<string, Encoded>): Promise<T>
  /** The session's context (company and language), logging in if needed. */
  context(): Promise<TrytonSession['context']>
  /** Forgets this connection's session so the next call logs in again. */
  forgetSession(): void
}

async function post(http: HttpClient, path: string, method: string, params: unknown[], authorization?: string): Promise<unknown> {
  // Exactly these three keys: anything more and Tryton answers without its envelope.
  const body = { id: nextRequestId++, method, params }
  const response = await http.post<unknown>(path, body, authorization ? { headers: { Authorization: authorization } } : undefined)
  const envelope = envelopeSchema.safeParse(response.data)
  if (!envelope.success) throw new TrytonProtocolError(`the server did not answer ${method} with a Tryton JSON-RPC envelope`)
  if ('error' in envelope.data && envelope.data.error !== undefined && envelope.data.error !== null) {
    const error = envelope.data.error
    const [type, args] = Array.isArray(error) ? [String(error[0]), error[1]] : [String(error), undefined]
    throw new TrytonRpcError(type, args, method)
  }
  return decode((envelope.data as { result?: unknown }).result)
}

/** `common.db.login` then the user's preferences: the session and its context. */
async function login(ctx: TrytonContext): Promise<SessionGrant<TrytonSession>> {
  const client = loginClientFor(ctx)
  const { username, language } = ctx.settings
  const path = databasePath(ctx.settings)
  const answer = await post(client, path, 'common.db.login', [username, { password: ctx.secrets.password }, language])
  const parsed = z.tuple([z.number().int(), z.string().min(1)]).safeParse(answer)
  if (!parsed.success) throw new SyncFailure('auth', 'Tryton did not answer the login with a session', { connectorId: trytonConnectorId })
  const [userId, key] = parsed.data
  const authorization = `Session ${Buffer.from(`${username}:${userId}:${key}`).toString('base64')}`
  const preferences = preferencesSchema.parse(await post(client, path, 'model.res.user.get_preferences', [true, {}], authorization))
  const company = ctx.settings.companyId ?? preferences.company
  if (typeof company !== 'number') {
    throw new SyncFailure('config', `the Tryton user ${username} has no current company; set companyId or give the user a company`, { connectorId: trytonConnectorId })
  }
  return { value: { authorization, userId, context: { company, language: preferences.language ?? language } }, ttlMs: ctx.settings.sessionTtlMs }
}

export function trytonClient(ctx: TrytonContext): TrytonClient {
  const http = httpClientFor(ctx)
  const key = trytonSessionKey(ctx)
  const path = databasePath(ctx.settings)
  const options = { isExpired: isSessionRefused, connectorId: trytonConnectorId }
  return {
    call<T>(method: string, params: Encoded[], extra: Record<string, Encoded> = {}): Promise<T> {
      // A 401 on a model call is an expired or revoked session, refused before anything ran:
      // withSession logs in again and repeats the call once.
      return withSession(sessions, key, () => login(ctx), (session) => post(http, path, method, [...params, { ...session.context, ...extra }], session.authorization), options) as Promise<T>
    },
    async context() {
      return (await sessions.get(key, () => login(ctx))).context
    },
    forgetSession() {
      sessions.invalidate(key)
    },
  }
}

/** `common.server.version` (no login), e.g. `"6.0.29"`. */
export async function serverVersion(ctx: TrytonContext): Promise<string> {
  return String(await post(httpClientFor(ctx), '', 'common.server.version', []))
}

/** Logs the cached session out on the server (it stays cached): the next call finds it refused. For tests of re-login. */
export async function logoutCachedSession(ctx: TrytonContext): Promise<boolean> {
  const key = trytonSessionKey(ctx)
  const session = await sessions.get(key, () => login(ctx))
  await post(loginClientFor(ctx), databasePath(ctx.settings), 'common.db.logout', [], session.authorization)
  return true
}
