import { AsyncLocalStorage } from 'node:async_hooks'
import http from 'node:http'
import https from 'node:https'
import { performance } from 'node:perf_hooks'
import axios, { AxiosError, type AxiosInstance, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios'
import { SyncFailure } from './failure.ts'
import { leanHttpAdapter } from './http-adapter.ts'
import { failureKindForStatus, parseRetryAfter } from './http-status.ts'

export interface HttpClientOptions {
  baseURL: string
  timeoutMs?: number
  headers?: Record<string, string>
  /**
   * Called after every request with what was sent and answered, secrets masked (see `HttpExchange`),
   * e.g. to keep it in the sync-attempt log. It must not throw (what it throws is ignored) and should
   * be quick: it runs before the caller gets the answer.
   */
  onExchange?: (exchange: HttpExchange) => void
  /** How exchanges are recorded: body size and the secret values to mask. */
  exchange?: ExchangeRecordOptions
}

/**
 * One client per connection configuration: `build` runs once per (settings, secrets) pair. Keyed
 * weakly on the settings object, so nothing (least of all a secret) outlives the configuration.
 */
export function httpClientPerConnection<Settings extends object, Secrets>(build: (settings: Settings, secrets: Secrets) => AxiosInstance): (settings: Settings, secrets: Secrets) => AxiosInstance {
  const clients = new WeakMap<Settings, { secrets: Secrets; http: AxiosInstance }>()
  return (settings, secrets) => {
    const cached = clients.get(settings)
    if (cached && cached.secrets === secrets) return cached.http
    const http = build(settings, secrets)
    clients.set(settings, { secrets, http })
    return http
  }
}

// Shared keep-alive agents: one POST per job over fresh sockets is ~3x slower (see DESIGN.md).
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 64 })

/**
 * An HTTP client for connectors' `client.ts`: keep-alive, a timeout, and no retries of its own,
 * because the queue does the retrying. Requests go through `leanHttpAdapter`, which answers as
 * axios's http adapter does for a fraction of its CPU.
 */
export function createHttpClient(options: HttpClientOptions): AxiosInstance {
  const client = axios.create({
    baseURL: options.baseURL,
    timeout: options.timeoutMs ?? 30_000,
    headers: options.headers,
    httpAgent,
    httpsAgent,
    maxRedirects: 0,
    proxy: false,
    adapter: leanHttpAdapter,
  })
  // Always attached, so `withExchangeCapture` sees every kit client; it costs nothing while nobody records.
  recordExchanges(client, options.onExchange, options.exchange)
  return client
}

const neverSentCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * The default classification of an HTTP error. A request that may have reached the remote and
 * got no answer is an `unknown_outcome`: the caller must look before it writes again.
 */
export function classifyHttpError(err: unknown, connectorId: string): SyncFailure {
  if (err instanceof SyncFailure) return err
  if (err instanceof AxiosError) {
    // An answer whose body broke off has a status but no data: the request may have been applied.
    if (err.response && err.response.data === undefined) {
      return new SyncFailure('unknown_outcome', `the answer broke off (${err.code ?? 'network error'})`, { connectorId, httpStatus: err.response.status }, { cause: err })
    }
    const status = err.response?.status
    if (status !== undefined) {
      const retryAfterMs = parseRetryAfter(err.response?.headers?.['retry-after'] as string | undefined)
      return new SyncFailure(failureKindForStatus(status), `remote answered HTTP ${status}`, { connectorId, httpStatus: status, retryAfterMs }, { cause: err })
    }
    if (err.code && neverSentCodes.has(err.code)) {
      return new SyncFailure('transient', `remote unreachable (${err.code})`, { connectorId }, { cause: err })
    }
    return new SyncFailure('unknown_outcome', `no answer from remote (${err.code ?? 'network error'})`, { connectorId }, { cause: err })
  }
  return new SyncFailure('bug', 'unexpected error in connector', { connectorId }, { cause: err })
}

// ---------------------------------------------------------------------------------------------
// Exchange recording: what was sent and answered, for the sync-attempt log, with secrets masked.

/**
 * One request and its answer as recorded for the sync-attempt log. Secrets are masked as
 * `[redacted]`: query parameters, headers and body fields named like a secret (password, token,
 * secret, apiKey, authorization, cookie, signature, session id, corpAccessToken, appSecret,
 * client_secret, permanentCode, …), in JSON, form and XML bodies alike, and every `secretValues`
 * value wherever it appears. Bodies are cut to `maxBodyChars`.
 */
export interface HttpExchange {
  /** When the request was sent (ISO 8601). */
  startedAt: string
  method: string
  /** Absolute URL with its query; secret query values and URL passwords masked. */
  url: string
  /** The HTTP status; absent when no answer came (see `error`). */
  status?: number
  durationMs: number
  requestHeaders: Record<string, string>
  requestBody?: string
  responseHeaders?: Record<string, string>
  responseBody?: string
  /** Why no answer came: the error code (`ECONNREFUSED`, `ECONNABORTED` for a timeout, `ECONNRESET`, …). */
  error?: string
}

export interface ExchangeRecordOptions {
  /** Longest body kept, in characters (default 4096); a longer one ends with `…[truncated N chars]`. */
  maxBodyChars?: number
  /** Values masked wherever they appear, e.g. `secretValuesOf(ctx.secrets)`, for secrets a vendor sends positionally. */
  secretValues?: readonly string[]
}

export const redactedMarker = '[redacted]'

const secretNames = new Set(['password', 'passwd', 'pwd', 'pass', 'secret', 'token', 'apikey', 'key', 'auth', 'authorization', 'cookie', 'setcookie', 'signature', 'sign', 'sig', 'session', 'sessionid', 'sid', 'privatekey', 'permanentcode', 'credentials'])
const secretSuffixes = ['password', 'passwd', 'secret', 'token', 'apikey', 'authorization', 'signature', 'sessionid', 'privatekey', 'permanentcode']

/**
 * True for a field, parameter or header name that holds a secret, whatever its case and separators:
 * `password`, `access_token`, `corpAccessToken`, `appSecret`, `client_secret`, `X-Api-Key`,
 * `Authorization`, `Cookie`, `kdservice-sessionid`, …
 */
export function isSecretName(name: string): boolean {
  const normalized = name.toLowerCase().replace(/[^a-z0-9]/g, '')
  return secretNames.has(normalized) || secretSuffixes.some((suffix) => normalized.endsWith(suffix))
}

/** The string values (4 characters or more) in a connection's secrets, to mask wherever they appear. */
export function secretValuesOf(secrets: unknown): string[] {
  const values = new Set<string>()
  const walk = (value: unknown, depth: number): void => {
    if (depth > 8) return
    if (typeof value === 'string') {
      if (value.length >= 4) values.add(value)
    } else if (Array.isArray(value)) {
      for (const item of value) walk(item, depth + 1)
    } else if (value !== null && typeof value === 'object') {
      for (const item of Object.values(value)) walk(item, depth + 1)
    }
  }
  walk(secrets, 0)
  return [...values]
}

function maskValues(text: string, values: readonly string[]): string {
  let out = text
  for (const value of values) {
    if (value.length < 4) continue
    for (const form of new Set([value, encodeURIComponent(value)])) {
      if (out.includes(form)) out = out.split(form).join(redactedMarker)
    }
  }
  return out
}

function redactJson(value: unknown, depth = 0): unknown {
  if (depth > 64 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((item) => redactJson(item, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) out[key] = isSecretName(key) ? redactedMarker : redactJson(item, depth + 1)
  return out
}

/** `a=1&token=x` with secret-named values masked; the rest exactly as written. */
function redactParams(query: string): string {
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      if (eq === -1) return pair
      let name = pair.slice(0, eq)
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '))
      } catch {
        // Keep the raw name.
      }
      return isSecretName(name) ? `${pair.slice(0, eq)}=${redactedMarker}` : pair
    })
    .join('&')
}

const formBodyPattern = /^[^\s=&{}<>[\]"]+=[^\s&]*(&[^\s=&]+=[^\s&]*)*$/

/** Masks secret-named elements and attributes of an XML text (`<password>…</password>`, `<n1:sessionId>`). */
function redactXml(xml: string): string {
  return xml
    .replace(/<((?:[\w.-]+:)?([\w.-]+))(\s[^<>]*)?>([^<]*)<\/\1\s*>/g, (whole, tag: string, local: string, attrs: string | undefined) =>
      isSecretName(local) ? `<${tag}${attrs ?? ''}>${redactedMarker}</${tag}>` : whole,
    )
    .replace(/([\w.:-]+)(\s*=\s*)("[^"]*"|'[^']*')/g, (whole, name: string, eq: string) => {
      const local = name.includes(':') ? name.slice(name.lastIndexOf(':') + 1) : name
      return isSecretName(local) && !name.startsWith('xmlns') ? `${name}${eq}"${redactedMarker}"` : whole
    })
}

function redactText(text: string): string {
  const trimmed = text.trimStart()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return JSON.stringify(redactJson(JSON.parse(text)))
    } catch {
      // Not JSON after all: mask what the other shapes can find.
    }
  }
  if (trimmed.startsWith('<')) return redactXml(text)
  if (formBodyPattern.test(text)) return redactParams(text)
  return text
}

function bodyText(data: unknown): string | undefined {
  if (data === undefined || data === null || data === '') return undefined
  if (typeof data === 'string') return data
  if (Buffer.isBuffer(data) || data instanceof Uint8Array) return Buffer.from(data).toString('utf8')
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8')
  if (data instanceof URLSearchParams) return data.toString()
  if (typeof (data as { pipe?: unknown }).pipe === 'function') return '[stream]'
  if (typeof data === 'object') {
    try {
      return JSON.stringify(data)
    } catch {
      return '[unserializable body]'
    }
  }
  return String(data)
}

function recordedBody(data: unknown, options: ExchangeRecordOptions): string | undefined {
  const text = bodyText(data)
  if (text === undefined) return undefined
  const masked = maskValues(redactText(text), options.secretValues ?? [])
  const max = options.maxBodyChars ?? 4096
  return masked.length > max ? `${masked.slice(0, max)}…[truncated ${masked.length - max} chars]` : masked
}

function recordedHeaders(headers: unknown, options: ExchangeRecordOptions): Record<string, string> {
  const plain = headers && typeof (headers as { toJSON?: unknown }).toJSON === 'function' ? (headers as { toJSON(): unknown }).toJSON() : headers
  const out: Record<string, string> = {}
  if (!plain || typeof plain !== 'object') return out
  for (const [name, value] of Object.entries(plain as Record<string, unknown>)) {
    if (value === undefined || value === null || value === false) continue
    const text = Array.isArray(value) ? value.join('; ') : String(value)
    out[name.toLowerCase()] = isSecretName(name) ? redactedMarker : maskValues(text, options.secretValues ?? [])
  }
  return out
}

function recordedUrl(config: InternalAxiosRequestConfig, options: ExchangeRecordOptions): string {
  let raw: string
  try {
    raw = axios.getUri(config)
  } catch {
    raw = `${config.baseURL ?? ''}${config.url ?? ''}`
  }
  let url = raw
  try {
    const parsed = new URL(raw)
    if (parsed.password) parsed.password = 'redacted'
    const query = parsed.search.length > 1 ? `?${redactParams(parsed.search.slice(1))}` : ''
    url = `${parsed.origin}${parsed.pathname}${query}`
    if (parsed.username || parsed.password) url = `${parsed.protocol}//${parsed.username ? `${parsed.username}:` : ''}${redactedMarker}@${parsed.host}${parsed.pathname}${query}`
  } catch {
    // A relative URL (no baseURL): mask its query as it is.
    const at = raw.indexOf('?')
    if (at !== -1) url = `${raw.slice(0, at)}?${redactParams(raw.slice(at + 1))}`
  }
  return maskValues(url, options.secretValues ?? [])
}

interface ExchangeScope {
  onExchange: (exchange: HttpExchange) => void
  options: ExchangeRecordOptions
}

const exchangeScope = new AsyncLocalStorage<ExchangeScope>()
const started = new WeakMap<InternalAxiosRequestConfig, { at: number; wall: number }>()

/**
 * Records every exchange of a client: calls `onExchange` (when given) and the `withExchangeCapture`
 * in whose async context the request runs (when there is one). `createHttpClient` attaches it;
 * call it for an axios instance made otherwise. Answers and errors pass through unchanged.
 * Returns a function that detaches it.
 */
export function recordExchanges(client: AxiosInstance, onExchange?: (exchange: HttpExchange) => void, options: ExchangeRecordOptions = {}): () => void {
  const active = () => onExchange !== undefined || exchangeScope.getStore() !== undefined
  const emit = (config: InternalAxiosRequestConfig | undefined, response: AxiosResponse | undefined, errorCode: string | undefined) => {
    const start = config ? started.get(config) : undefined
    if (!config || !start) return
    started.delete(config)
    const scope = exchangeScope.getStore()
    const sinks: [(exchange: HttpExchange) => void, ExchangeRecordOptions][] = []
    if (onExchange) sinks.push([onExchange, options])
    if (scope) sinks.push([scope.onExchange, { ...options, ...scope.options, secretValues: [...(options.secretValues ?? []), ...(scope.options.secretValues ?? [])] }])
    for (const [sink, sinkOptions] of sinks) {
      try {
        sink({
          startedAt: new Date(start.wall).toISOString(),
          method: (config.method ?? 'get').toUpperCase(),
          url: recordedUrl(config, sinkOptions),
          ...(response ? { status: response.status } : {}),
          durationMs: Math.round((performance.now() - start.at) * 10) / 10,
          requestHeaders: recordedHeaders(config.headers, sinkOptions),
          ...(config.data !== undefined ? { requestBody: recordedBody(config.data, sinkOptions) } : {}),
          ...(response ? { responseHeaders: recordedHeaders(response.headers, sinkOptions), responseBody: recordedBody(response.data, sinkOptions) } : {}),
          ...(response ? {} : { error: errorCode ?? 'network error' }),
        })
      } catch {
        // A recorder must never change the outcome of a request.
      }
    }
  }
  const request = client.interceptors.request.use(
    (config) => {
      started.set(config, { at: performance.now(), wall: Date.now() })
      return config
    },
    undefined,
    { synchronous: true, runWhen: active },
  )
  const response = client.interceptors.response.use(
    (answer) => {
      emit(answer.config, answer, undefined)
      return answer
    },
    (err: unknown) => {
      if (err instanceof AxiosError) emit(err.config, err.response, err.code)
      throw err
    },
  )
  return () => {
    client.interceptors.request.eject(request)
    client.interceptors.response.eject(response)
  }
}

/**
 * Runs `run` and reports every exchange that a kit HTTP client makes inside it (in its async
 * context), whichever connector made it: the sync worker wraps one attempt in it to keep what was
 * sent and answered.
 *
 * @example
 * const exchanges: HttpExchange[] = []
 * const result = await withExchangeCapture((e) => exchanges.push(e), () => op.run(ctx, input, existing), { secretValues: secretValuesOf(ctx.secrets) })
 */
export function withExchangeCapture<T>(onExchange: (exchange: HttpExchange) => void, run: () => Promise<T>, options: ExchangeRecordOptions = {}): Promise<T> {
  return exchangeScope.run({ onExchange, options }, run)
}
