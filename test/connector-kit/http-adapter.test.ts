import http, { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import zlib from 'node:zlib'
import { AxiosError, type AxiosInstance, type AxiosRequestConfig } from 'axios'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { classifyHttpError, createHttpClient, type HttpExchange } from '../../src/connector-kit/index.ts'

let server: Server
let baseURL: string
/** Paths whose requests the server saw close before it answered. */
const closedUnanswered: string[] = []

const order = { reference: 'SO-1001', lines: [{ sku: 'SKU-1', quantity: 2 }], note: 'Müller & Söhne' }

/** What the server saw of a request, answered by the default route. */
interface Echo {
  method: string
  url: string
  headers: Record<string, string>
  body: string
}

const routes: Record<string, (request: IncomingMessage, response: ServerResponse, body: string) => void> = {
  '/json': (_request, response) => json(response, 200, { ok: true }),
  '/not-found': (_request, response) => json(response, 404, { error: 'no such order' }),
  '/unprocessable': (_request, response) => json(response, 422, { error: 'bad sku' }),
  '/broken': (_request, response) => json(response, 503, { error: 'down' }),
  '/quota': (_request, response) => json(response, 429, { error: 'quota' }, { 'retry-after': '7' }),
  '/silent': () => undefined,
  '/breaks-off': (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
    response.write('{"id":"SO-1')
    setTimeout(() => response.socket?.destroy(), 20)
  },
  '/gzip': (_request, response) => encoded(response, 'gzip', zlib.gzipSync(JSON.stringify({ coding: 'gzip' }))),
  '/deflate': (_request, response) => encoded(response, 'deflate', zlib.deflateSync(JSON.stringify({ coding: 'deflate' }))),
  '/deflate-raw': (_request, response) => encoded(response, 'deflate', zlib.deflateRawSync(JSON.stringify({ coding: 'deflate-raw' }))),
  '/br': (_request, response) => encoded(response, 'br', zlib.brotliCompressSync(JSON.stringify({ coding: 'br' }))),
  '/big': (_request, response) => json(response, 200, { text: 'x'.repeat(5_000) }),
}

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const path = (request.url ?? '').split('?')[0] ?? ''
      response.on('close', () => {
        if (!response.writableFinished) closedUnanswered.push(path)
      })
      const route = routes[path.replace(/^\/api/, '')]
      const body = Buffer.concat(chunks).toString('utf8')
      if (route) route(request, response, body)
      else json(response, 200, { method: request.method, url: request.url, headers: request.headers, body })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  baseURL = `http://127.0.0.1:${address.port}/api`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

afterEach(() => {
  vi.restoreAllMocks()
})

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers })
  response.end(JSON.stringify(body))
}

function encoded(response: ServerResponse, coding: string, body: Buffer): void {
  response.writeHead(200, { 'content-type': 'application/json', 'content-encoding': coding })
  response.end(body)
}

/** A kit client, and the same client answered by axios's own http adapter, to compare against. */
function clients(options: { timeoutMs?: number; onExchange?: (exchange: HttpExchange) => void } = {}): { lean: AxiosInstance; axiosOwn: AxiosInstance } {
  const headers = { Authorization: 'Bearer T0KEN', Accept: 'application/json' }
  const lean = createHttpClient({ baseURL, headers, ...options })
  const axiosOwn = createHttpClient({ baseURL, headers, ...options })
  axiosOwn.defaults.adapter = 'http'
  return { lean, axiosOwn }
}

/**
 * Counts the requests sent by the lean adapter and by axios's http adapter, told apart by the
 * follow-redirects hooks axios's adapter puts in its request options even when it does not follow.
 */
function watchTransport(): { lean: number; delegated: number } {
  const counts = { lean: 0, delegated: 0 }
  const request = http.request.bind(http)
  vi.spyOn(http, 'request').mockImplementation(((options: object, callback?: (res: IncomingMessage) => void) => {
    if ('beforeRedirects' in options) counts.delegated++
    else counts.lean++
    return request(options as http.RequestOptions, callback)
  }) as typeof http.request)
  return counts
}

async function failure(call: Promise<unknown>): Promise<AxiosError> {
  try {
    await call
  } catch (err) {
    if (err instanceof AxiosError) return err
    throw err
  }
  throw new Error('expected the request to fail')
}

/** The parts of an error that callers and classifyHttpError read. */
function errorShape(err: AxiosError): Record<string, unknown> {
  return { name: err.name, code: err.code, message: err.message, status: err.response?.status, data: err.response?.data, hasRequest: err.request !== undefined }
}

describe('leanHttpAdapter in createHttpClient', () => {
  it('sends a JSON POST itself, with the headers and body axios sends', async () => {
    const transport = watchTransport()
    const { lean, axiosOwn } = clients()
    const sent = await lean.post<Echo>('/sales-orders', order, { headers: { 'X-Request-Id': '  r-1  ' } })
    expect(transport).toEqual({ lean: 1, delegated: 0 })
    const expected = await axiosOwn.post<Echo>('/sales-orders', order, { headers: { 'X-Request-Id': '  r-1  ' } })

    expect(sent.status).toBe(200)
    expect(sent.data).toEqual(expected.data)
    expect(sent.data.body).toBe(JSON.stringify(order))
    expect(sent.data.headers).toMatchObject({ 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(JSON.stringify(order))), 'user-agent': expect.stringMatching(/^axios\//), 'x-request-id': 'r-1' })
    expect(sent.config.headers.toJSON()).toEqual(expected.config.headers.toJSON())
    expect(sent.headers['content-type']).toBe('application/json')
  })

  it('builds a GET with params to the very URL axios builds', async () => {
    const transport = watchTransport()
    const { lean, axiosOwn } = clients()
    const config: AxiosRequestConfig = { params: { ids: ['SO-1', 'SO 2'], q: "Müller's (x) [y] 中 a+b", since: new Date(0), filter: { status: 'open' }, skip: undefined, none: null } }
    const sent = await lean.get<Echo>('/orders/../orders?page=2#top', config)
    expect(transport).toEqual({ lean: 1, delegated: 0 })
    const expected = await axiosOwn.get<Echo>('/orders/../orders?page=2#top', config)
    expect(sent.data.url).toBe(expected.data.url)
    expect(sent.data.url).toMatch(/^\/api\/orders\?page=2&ids/)
  })

  it('sends a string body and a body-less DELETE as axios does', async () => {
    const { lean, axiosOwn } = clients()
    const text = { headers: { 'Content-Type': 'text/plain' } }
    expect((await lean.put<Echo>('/notes', 'plain text', text)).data).toEqual((await axiosOwn.put<Echo>('/notes', 'plain text', text)).data)
    expect((await lean.delete<Echo>('/orders/1')).data).toEqual((await axiosOwn.delete<Echo>('/orders/1')).data)
  })

  it.each([
    ['/not-found', 'ERR_BAD_REQUEST', 404],
    ['/unprocessable', 'ERR_BAD_REQUEST', 422],
    ['/broken', 'ERR_BAD_RESPONSE', 503],
  ])('rejects %s as an AxiosError %s carrying the response', async (path, code, status) => {
    const { lean, axiosOwn } = clients()
    const err = await failure(lean.get(path))
    expect(err.code).toBe(code)
    expect(err.response?.status).toBe(status)
    expect(err.response?.data).toEqual(expect.objectContaining({ error: expect.any(String) }))
    expect(errorShape(err)).toEqual(errorShape(await failure(axiosOwn.get(path))))
  })

  it('lets classifyHttpError read Retry-After from a 429', async () => {
    const { lean } = clients()
    const failed = classifyHttpError(await failure(lean.post('/quota', order)), 'acme')
    expect(failed.kind).toBe('rate_limited')
    expect(failed.details).toEqual({ connectorId: 'acme', httpStatus: 429, retryAfterMs: 7_000 })
  })

  it('accepts what a custom validateStatus accepts', async () => {
    const { lean } = clients()
    const answer = await lean.get('/not-found', { validateStatus: (status) => status === 404 || (status >= 200 && status < 300) })
    expect(answer.status).toBe(404)
    expect(answer.data).toEqual({ error: 'no such order' })
  })
})

describe('when no answer comes', () => {
  it('times out as ECONNABORTED, destroys the request and classifies it as an unknown outcome', async () => {
    const { lean, axiosOwn } = clients({ timeoutMs: 100 })
    const err = await failure(lean.post('/silent', order))
    expect(err.code).toBe('ECONNABORTED')
    expect(err.message).toBe('timeout of 100ms exceeded')
    expect(classifyHttpError(err, 'acme').kind).toBe('unknown_outcome')
    await vi.waitFor(() => expect(closedUnanswered).toContain('/api/silent'))
    expect(errorShape(err)).toEqual(errorShape(await failure(axiosOwn.post('/silent', order))))
  })

  it('reports a refused connection as ECONNREFUSED, a transient failure', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const address = closed.address()
    if (address === null || typeof address === 'string') throw new Error('no port')
    await new Promise<void>((resolve) => closed.close(() => resolve()))

    const err = await failure(createHttpClient({ baseURL: `http://127.0.0.1:${address.port}` }).post('/sales-orders', order))
    expect(err.code).toBe('ECONNREFUSED')
    expect(classifyHttpError(err, 'acme').kind).toBe('transient')
  })

  it('rejects an answer whose body breaks off, as axios does', async () => {
    const { lean, axiosOwn } = clients()
    const err = await failure(lean.get('/breaks-off'))
    expect(err.code).toBe('ERR_BAD_RESPONSE')
    expect(err.response?.data).toBeUndefined()
    expect(errorShape(err)).toEqual(errorShape(await failure(axiosOwn.get('/breaks-off'))))
    // The remote may have applied the request before its answer broke off: look before writing again.
    expect(classifyHttpError(err, 'acme').kind).toBe('unknown_outcome')
  })
})

describe('compressed answers', () => {
  it.each(['gzip', 'deflate', 'deflate-raw', 'br'])('decodes %s', async (coding) => {
    const { lean } = clients()
    const answer = await lean.get(`/${coding}`)
    expect(answer.data).toEqual({ coding })
    expect(answer.headers['content-encoding']).toBeUndefined()
  })

  it('leaves the body as sent with decompress: false', async () => {
    const { lean } = clients()
    const answer = await lean.get<string>('/gzip', { decompress: false, responseType: 'text' })
    expect(answer.headers['content-encoding']).toBe('gzip')
    expect(answer.data).toBe(Buffer.from(zlib.gzipSync(JSON.stringify({ coding: 'gzip' }))).toString('utf8'))
  })
})

describe('what it hands to axios', () => {
  it('delegates responseType: stream and the stream still reads', async () => {
    const transport = watchTransport()
    const { lean } = clients()
    const answer = await lean.get<Readable>('/json', { responseType: 'stream' })
    expect(transport).toEqual({ lean: 0, delegated: 1 })
    const parts: Buffer[] = []
    for await (const part of answer.data) parts.push(part as Buffer)
    expect(JSON.parse(Buffer.concat(parts).toString('utf8'))).toEqual({ ok: true })
  })

  it('delegates a size limit, which axios enforces', async () => {
    const transport = watchTransport()
    const { lean } = clients()
    const err = await failure(lean.get('/big', { maxContentLength: 100 }))
    expect(transport).toEqual({ lean: 0, delegated: 1 })
    expect(err.message).toBe('maxContentLength size of 100 exceeded')
  })

  it('delegates a request with an abort signal, which still aborts', async () => {
    const transport = watchTransport()
    const { lean } = clients()
    const err = await failure(lean.get('/silent', { signal: AbortSignal.timeout(50) }))
    expect(transport).toEqual({ lean: 0, delegated: 1 })
    expect(err.code).toBe('ERR_CANCELED')
  })
})

describe('exchange recording', () => {
  it('records the same exchange as with axios’s adapter', async () => {
    const recorded: HttpExchange[] = []
    const { lean, axiosOwn } = clients({ onExchange: (exchange) => void recorded.push(exchange) })
    await lean.post('/sales-orders', order, { params: { dryRun: true } })
    await axiosOwn.post('/sales-orders', order, { params: { dryRun: true } })
    await failure(lean.get('/broken'))
    await failure(axiosOwn.get('/broken'))
    const comparable = recorded.map(({ startedAt: _startedAt, durationMs: _durationMs, responseHeaders, ...rest }) => ({ ...rest, responseHeaders: { ...responseHeaders, date: undefined } }))
    expect(comparable).toHaveLength(4)
    expect(comparable[0]).toEqual(comparable[1])
    expect(comparable[2]).toEqual(comparable[3])
    expect(comparable[0]?.requestHeaders).toMatchObject({ 'user-agent': expect.stringMatching(/^axios\//), 'accept-encoding': expect.any(String), 'content-length': expect.any(String) })
  })
})
