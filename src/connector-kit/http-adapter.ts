/**
 * A lean axios adapter for the kit's HTTP clients. It sends the common request itself over
 * node:http(s): an http(s) URL, a string or Buffer body (or none), a text or JSON answer, no proxy,
 * no redirects. axios's own http adapter spends about 50 µs of CPU per call on machinery such a
 * request never uses (follow-redirects, stream pipelines, progress and rate hooks, two socket
 * option syscalls), and the end-to-end run is CPU-bound. Every other request goes to axios's http
 * adapter, decided before anything is sent.
 *
 * It must behave exactly as axios's http adapter (axios/lib/adapters/http.js) for what it handles:
 * the same URL, headers on the wire and left in `config.headers` (the exchange log records them),
 * the same settling, AxiosErrors and codes (`classifyHttpError` reads them) and the same timeout.
 * It must not grow options of its own: a request it does not recognise is delegated.
 *
 * One difference on purpose: axios sets TCP keep-alive probes to start after 60 s on every request's
 * socket, and the keep-alive agent sets them back to 1 s whenever the socket goes idle, two
 * syscalls per call. Here the agent's setting stays; the request timeout ends a silent exchange
 * long before either delay could matter.
 */
import http from 'node:http'
import https from 'node:https'
import zlib from 'node:zlib'
import axios, { Axios, AxiosError, AxiosHeaders, type AxiosAdapter, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios'

const axiosHttpAdapter = axios.getAdapter('http')

/**
 * Builds URLs with axios's own helpers (buildFullPath, then buildURL with the params serializer),
 * which axios exports only through `getUri`. A bare instance has no defaults, so `getUri` merges
 * nothing but the few fields it is given.
 */
const urlBuilder = new Axios({})

/** Sends `config` itself when it is the common case described above, or through axios's http adapter. */
export const leanHttpAdapter: AxiosAdapter = (config) => {
  const request = leanRequestFor(config)
  return request ? send(request, config) : axiosHttpAdapter(config)
}

interface LeanRequest {
  transport: typeof http | typeof https
  url: URL
  /** Path and query as axios builds them: the URL's own, then the serialized `params`. */
  path: string
  agent: http.Agent | undefined
  body: string | Buffer | undefined
}

const leanResponseTypes = new Set([undefined, '', 'json', 'text'])

/** The request to send, or undefined when an option asks for something only axios's adapter does. */
function leanRequestFor(config: InternalAxiosRequestConfig): LeanRequest | undefined {
  const usesOnlyLeanOptions =
    config.proxy === false &&
    config.maxRedirects === 0 &&
    !config.auth &&
    !config.socketPath &&
    config.transport === undefined &&
    (config.httpVersion === undefined || config.httpVersion === 1) &&
    config.lookup === undefined &&
    config.family === undefined &&
    !config.insecureHTTPParser &&
    config.cancelToken === undefined &&
    config.signal === undefined &&
    config.onUploadProgress === undefined &&
    config.onDownloadProgress === undefined &&
    config.maxRate === undefined &&
    isUnlimited(config.maxContentLength) &&
    isUnlimited(config.maxBodyLength) &&
    leanResponseTypes.has(config.responseType) &&
    (config.responseEncoding === undefined || config.responseEncoding === 'utf8') &&
    (config.timeout === undefined || (Number.isSafeInteger(config.timeout) && config.timeout >= 0)) &&
    isLeanBody(config.data)
  if (!usesOnlyLeanOptions) return undefined

  let url: URL
  let path: string
  try {
    url = new URL(urlBuilder.getUri({ baseURL: config.baseURL, url: config.url, allowAbsoluteUrls: config.allowAbsoluteUrls }))
    path = url.pathname + url.search
    // Without params axios's buildURL leaves the path as it is.
    if (config.params) path = urlBuilder.getUri({ url: path, params: config.params, paramsSerializer: config.paramsSerializer })
  } catch {
    // A URL axios cannot build: its adapter rejects with the error it has always given.
    return undefined
  }
  // Credentials in the URL become basic auth in axios's adapter.
  if (url.username || url.password) return undefined
  const transport = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined
  if (!transport) return undefined

  const agent = (transport === https ? config.httpsAgent : config.httpAgent) as http.Agent | undefined
  // With `proxy: false`, axios's adapter swaps an agent that reads proxies from the environment for a direct one.
  if (readsProxyFromEnvironment(agent ?? transport.globalAgent)) return undefined

  const data: unknown = config.data
  // An empty string is no body to axios: no Content-Length, nothing written.
  const body = typeof data === 'string' ? data || undefined : Buffer.isBuffer(data) ? data : undefined
  return { transport, url, path, agent, body }
}

/** axios applies a size limit only when it is above -1 (its default). */
function isUnlimited(limit: number | undefined): boolean {
  return limit === undefined || limit === -1
}

/** After axios's transformRequest, a JSON body is already a string. */
function isLeanBody(data: unknown): boolean {
  return data === undefined || data === null || typeof data === 'string' || Buffer.isBuffer(data)
}

function readsProxyFromEnvironment(agent: http.Agent): boolean {
  return (agent as { options?: { proxyEnv?: unknown } }).options?.proxyEnv != null
}

// Brotli and zstd are always there on Node 24 (package.json engines), so advertised as axios does then.
const acceptEncoding = 'gzip, compress, deflate, br'
const acceptEncodingWithZstd = `${acceptEncoding}, zstd`

/**
 * The headers to send. Like axios's adapter, it normalizes `config.headers` in place and adds its
 * defaults there (User-Agent, Content-Length, Accept-Encoding, in that order), so that what is
 * recorded of the request stays what it was.
 */
function headersToSend(config: InternalAxiosRequestConfig, body: string | Buffer | undefined): Record<string, string | string[]> {
  const headers = AxiosHeaders.from(config.headers).normalize(false)
  headers.set('User-Agent', `axios/${axios.VERSION}`, false)
  if (body !== undefined) headers.setContentLength(Buffer.byteLength(body), false)
  headers.set('Accept-Encoding', config.transitional?.advertiseZstdAcceptEncoding === true ? acceptEncodingWithZstd : acceptEncoding, false)
  const wire: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers.toJSON())) wire[name] = Array.isArray(value) ? value.map(byteString) : byteString(value)
  return wire
}

const notByteStringOrPadded = /[^\t\x20-\x7e\x80-\xff]|^[\t ]|[\t ]$/

/** axios's sanitizeByteStringHeaderValue: drops what a header cannot carry, trims spaces and tabs. */
function byteString(value: string): string {
  // Nearly every value is clean already: testing is cheaper than rewriting.
  if (!notByteStringOrPadded.test(value)) return value
  return value.replace(/[^\t\x20-\x7e\x80-\xff]+/g, '').replace(/^[\t ]+|[\t ]+$/g, '')
}

type Decode = (body: Buffer, done: (err: Error | null, decoded: Buffer) => void) => void

// Flushing on every chunk and at the end, as axios does, a body cut short decodes as far as it goes.
const zlibOptions = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }
const brotliOptions = { flush: zlib.constants.BROTLI_OPERATION_FLUSH, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }
const zstdOptions = { flush: zlib.constants.ZSTD_e_flush, finishFlush: zlib.constants.ZSTD_e_flush }

const unzip: Decode = (body, done) => zlib.unzip(body, zlibOptions, done)

/** The content codings axios's adapter decodes; any other arrives as it was sent. */
const decoders = new Map<string, Decode>([
  ['gzip', unzip],
  ['x-gzip', unzip],
  ['compress', unzip],
  ['x-compress', unzip],
  // Servers send deflate with or without its zlib header; axios adds one when it is missing.
  ['deflate', (body, done) => unzip(body.length > 0 && body[0] !== 0x78 ? Buffer.concat([zlibHeader, body]) : body, done)],
  ['br', (body, done) => zlib.brotliDecompress(body, brotliOptions, done)],
  ['zstd', (body, done) => zlib.zstdDecompress(body, zstdOptions, done)],
])
const zlibHeader = Buffer.from([0x78, 0x9c])

/** The decoder for the answer's content coding, removing the header it answers for, as axios does. */
function decoderFor(res: http.IncomingMessage, config: InternalAxiosRequestConfig, method: string): Decode | undefined {
  if (config.decompress === false || !res.headers['content-encoding']) return undefined
  // No body to decode: the header would only mislead.
  if (method === 'HEAD' || res.statusCode === 204) delete res.headers['content-encoding']
  const decode = decoders.get((res.headers['content-encoding'] ?? '').toLowerCase())
  if (decode) delete res.headers['content-encoding']
  return decode
}

function send(request: LeanRequest, config: InternalAxiosRequestConfig): Promise<AxiosResponse> {
  return new Promise((resolve, reject) => {
    const method = (config.method ?? 'get').toUpperCase()
    const { url } = request
    let settled = false
    let connectTimer: NodeJS.Timeout | undefined
    let response: http.IncomingMessage | undefined
    const clearConnectTimer = () => {
      clearTimeout(connectTimer)
      connectTimer = undefined
    }
    const succeed = (answer: AxiosResponse) => {
      settled = true
      clearConnectTimer()
      resolve(answer)
    }
    const fail = (err: unknown) => {
      settled = true
      clearConnectTimer()
      reject(err)
    }

    const req = request.transport.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port,
        path: request.path,
        method,
        headers: headersToSend(config, request.body),
        agent: request.agent,
        insecureHTTPParser: false,
      },
      (res) => {
        clearConnectTimer()
        if (req.destroyed) return
        response = res
        const decode = decoderFor(res, config, method)
        // Like axios's, the answer has no data until the body is read, so an error's response has none.
        const answer = { status: res.statusCode, statusText: res.statusMessage, headers: new AxiosHeaders(res.headers as Record<string, string>), config, request: req } as AxiosResponse

        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        if (!decode) {
          // A body that breaks off: axios reports it so when nothing is decoding it (then the error below does).
          res.on('aborted', () => {
            if (settled) return
            const err = new AxiosError('stream has been aborted', AxiosError.ERR_BAD_RESPONSE, config, req, answer)
            res.destroy(err)
            fail(err)
          })
        }
        res.on('error', (err) => fail(AxiosError.from(err, undefined, config, req, answer)))
        res.on('end', () => {
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
          const finish = (err: Error | null, decoded: Buffer) => {
            if (err) return fail(AxiosError.from(err, undefined, config, req, answer))
            const text = decoded.toString('utf8')
            answer.data = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
            settle(answer, succeed, fail)
          }
          if (decode) decode(body, finish)
          else finish(null, body)
        })
      },
    )

    req.on('error', (err) => fail(AxiosError.from(err, undefined, config, req)))
    req.once('close', clearConnectTimer)

    if (config.timeout) {
      const onTimeout = () => {
        if (settled) return
        const err = timeoutError(config, req)
        fail(err)
        req.destroy(err)
        if (response && !response.destroyed) response.destroy()
      }
      // The socket's idle timeout may not start while the connection is being made, so a wall clock
      // watches until the answer's headers arrive, as in axios's adapter.
      connectTimer = setTimeout(onTimeout, config.timeout)
      req.setTimeout(config.timeout, onTimeout)
    } else {
      // A kept-alive socket may still carry an earlier request's timeout.
      req.setTimeout(0)
    }

    if (request.body !== undefined) req.end(request.body)
    else req.end()
  })
}

function timeoutError(config: InternalAxiosRequestConfig, req: http.ClientRequest): AxiosError {
  const message = config.timeoutErrorMessage || `timeout of ${config.timeout}ms exceeded`
  return new AxiosError(message, config.transitional?.clarifyTimeoutError ? AxiosError.ETIMEDOUT : AxiosError.ECONNABORTED, config, req)
}

/** axios's core/settle: `validateStatus` decides; a refused status rejects with the response. */
function settle(answer: AxiosResponse, resolve: (answer: AxiosResponse) => void, reject: (err: unknown) => void): void {
  const { validateStatus } = answer.config
  let accepted: boolean
  // What a validateStatus throws escapes axios's adapter as an uncaught exception; the caller gets it here.
  try {
    accepted = !answer.status || !validateStatus || validateStatus(answer.status)
  } catch (err) {
    return reject(err)
  }
  if (accepted) return resolve(answer)
  const code = answer.status >= 400 && answer.status < 500 ? AxiosError.ERR_BAD_REQUEST : AxiosError.ERR_BAD_RESPONSE
  reject(new AxiosError(`Request failed with status code ${answer.status}`, code, answer.config, answer.request, answer))
}
