import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  classifyHttpError,
  createHttpClient,
  isSecretName,
  secretValuesOf,
  withExchangeCapture,
  type HttpExchange,
} from '../../src/connector-kit/index.ts'

let server: Server
let baseURL: string

/** Answers per path: /json echoes a login answer, /xml a SOAP body, /fail 500, /slow hangs, /big a long body. */
beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const path = (request.url ?? '').split('?')[0]
      if (path === '/json') {
        response.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'kdservice-sessionid=abc123; Path=/' })
        response.end(JSON.stringify({ corpAccessToken: 'CORP-TOKEN-1', expiresIn: 7200, errorCode: 0, nested: [{ refresh_token: 'RT-1', name: 'kept' }] }))
      } else if (path === '/xml') {
        response.writeHead(200, { 'content-type': 'text/xml' })
        response.end('<loginResponse><result><sessionId>00D!SESSION</sessionId><userId>005x</userId></result></loginResponse>')
      } else if (path === '/fail') {
        response.writeHead(500, { 'content-type': 'application/json' })
        response.end('{"error":"boom"}')
      } else if (path === '/slow') {
        setTimeout(() => response.end('late'), 500)
      } else if (path === '/big') {
        response.writeHead(200, { 'content-type': 'text/plain' })
        response.end('x'.repeat(10_000))
      } else {
        response.writeHead(204).end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  baseURL = `http://127.0.0.1:${address.port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

function recorder() {
  const exchanges: HttpExchange[] = []
  return { exchanges, onExchange: (exchange: HttpExchange) => void exchanges.push(exchange) }
}

describe('createHttpClient({ onExchange })', () => {
  it('records method, url, status, duration, headers and bodies with secret fields masked', async () => {
    const { exchanges, onExchange } = recorder()
    const http = createHttpClient({ baseURL, headers: { Authorization: 'Bearer SECRET-BEARER' }, onExchange })
    await http.post('/json?access_token=QUERY-TOKEN&page=2', { appId: 'app-1', appSecret: 'APP-SECRET', password: 'PW', order: { id: 'SO-1' } }, {
      headers: { 'Idempotency-Key': 'order-1.erp.upsert.v1', 'X-Api-Key': 'API-KEY' },
    })
    expect(exchanges).toHaveLength(1)
    const [exchange] = exchanges
    expect(exchange).toMatchObject({ method: 'POST', url: `${baseURL}/json?access_token=[redacted]&page=2`, status: 200 })
    expect(exchange!.durationMs).toBeGreaterThanOrEqual(0)
    expect(Date.parse(exchange!.startedAt)).not.toBeNaN()
    expect(exchange!.requestHeaders.authorization).toBe('[redacted]')
    expect(exchange!.requestHeaders['x-api-key']).toBe('[redacted]')
    expect(exchange!.requestHeaders['idempotency-key']).toBe('order-1.erp.upsert.v1')
    expect(JSON.parse(exchange!.requestBody!)).toEqual({ appId: 'app-1', appSecret: '[redacted]', password: '[redacted]', order: { id: 'SO-1' } })
    expect(JSON.parse(exchange!.responseBody!)).toEqual({ corpAccessToken: '[redacted]', expiresIn: 7200, errorCode: 0, nested: [{ refresh_token: '[redacted]', name: 'kept' }] })
    expect(exchange!.responseHeaders!['set-cookie']).toBe('[redacted]')
    const all = JSON.stringify(exchanges)
    for (const secret of ['SECRET-BEARER', 'QUERY-TOKEN', 'APP-SECRET', 'API-KEY', 'CORP-TOKEN-1', 'RT-1', 'abc123']) expect(all).not.toContain(secret)
  })

  it('masks secret elements of XML bodies and secret fields of form bodies', async () => {
    const { exchanges, onExchange } = recorder()
    const http = createHttpClient({ baseURL, onExchange })
    await http.post('/xml', '<n1:login xmlns:n1="urn:partner"><n1:username>u@example.com</n1:username><n1:password>PW-XML</n1:password></n1:login>', {
      headers: { 'content-type': 'text/xml' },
    })
    await http.post('/none', 'grant_type=client_credentials&client_id=cid&client_secret=CLIENT-SECRET', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
    expect(exchanges[0]!.requestBody).toBe('<n1:login xmlns:n1="urn:partner"><n1:username>u@example.com</n1:username><n1:password>[redacted]</n1:password></n1:login>')
    expect(exchanges[0]!.responseBody).toBe('<loginResponse><result><sessionId>[redacted]</sessionId><userId>005x</userId></result></loginResponse>')
    expect(exchanges[1]!.requestBody).toBe('grant_type=client_credentials&client_id=cid&client_secret=[redacted]')
    expect(exchanges[1]!.status).toBe(204)
  })

  it('masks secret values wherever they appear, such as a password sent positionally', async () => {
    const { exchanges, onExchange } = recorder()
    const secrets = { acctId: 'ACCT-1', username: 'bob', password: 'P@ss w0rd!', appSecret: 'K3-APP-SECRET' }
    const http = createHttpClient({ baseURL, onExchange, exchange: { secretValues: secretValuesOf(secrets) } })
    await http.post(`/none?x=${encodeURIComponent(secrets.password)}`, { parameters: ['ACCT-1', 'bob', 'P@ss w0rd!', 2052] })
    const [exchange] = exchanges
    expect(exchange!.requestBody).toBe('{"parameters":["[redacted]","bob","[redacted]",2052]}')
    expect(exchange!.url).toBe(`${baseURL}/none?x=[redacted]`)
    // Values shorter than 4 characters are not masked: they would mangle everything else.
    expect(secretValuesOf(secrets)).toEqual(['ACCT-1', 'P@ss w0rd!', 'K3-APP-SECRET'])
  })

  it('cuts long bodies', async () => {
    const { exchanges, onExchange } = recorder()
    const http = createHttpClient({ baseURL, onExchange, exchange: { maxBodyChars: 100 } })
    await http.get('/big')
    expect(exchanges[0]!.responseBody).toBe(`${'x'.repeat(100)}…[truncated 9900 chars]`)
  })

  it('records error answers and leaves the error for classify() unchanged', async () => {
    const { exchanges, onExchange } = recorder()
    const http = createHttpClient({ baseURL, onExchange })
    const err = await http.put('/fail', { a: 1 }).catch((e: unknown) => e)
    expect(classifyHttpError(err, 'test').kind).toBe('transient')
    expect(exchanges[0]).toMatchObject({ method: 'PUT', status: 500, responseBody: '{"error":"boom"}', requestBody: '{"a":1}' })
    expect(exchanges[0]!.error).toBeUndefined()
  })

  it('records requests that got no answer: refused and timed out', async () => {
    const { exchanges, onExchange } = recorder()
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as { port: number }).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const refused = await createHttpClient({ baseURL: `http://127.0.0.1:${port}`, onExchange }).get('/x').catch((e: unknown) => e)
    expect(classifyHttpError(refused, 'test').kind).toBe('transient')
    const timedOut = await createHttpClient({ baseURL, onExchange, timeoutMs: 50 }).get('/slow').catch((e: unknown) => e)
    expect(classifyHttpError(timedOut, 'test').kind).toBe('unknown_outcome')
    expect(exchanges.map((e) => [e.status, e.error])).toEqual([
      [undefined, 'ECONNREFUSED'],
      [undefined, 'ECONNABORTED'],
    ])
  })

  it('ignores a recorder that throws', async () => {
    const http = createHttpClient({
      baseURL,
      onExchange: () => {
        throw new Error('recorder broke')
      },
    })
    expect((await http.get('/json')).status).toBe(200)
  })
})

describe('withExchangeCapture', () => {
  it('collects the exchanges of any kit client made inside it, and only those', async () => {
    const http = createHttpClient({ baseURL })
    const first: HttpExchange[] = []
    const second: HttpExchange[] = []
    await Promise.all([
      withExchangeCapture((e) => first.push(e), async () => {
        await http.get('/json?n=1')
        await http.get('/none?n=1')
      }),
      withExchangeCapture((e) => second.push(e), () => http.get('/json?n=2'), { secretValues: ['app-1-secret-value'] }),
      http.get('/json?n=outside'),
    ])
    expect(first.map((e) => e.url)).toEqual([`${baseURL}/json?n=1`, `${baseURL}/none?n=1`])
    expect(second.map((e) => e.url)).toEqual([`${baseURL}/json?n=2`])
  })

  it('still collects when the run fails', async () => {
    const http = createHttpClient({ baseURL })
    const seen: HttpExchange[] = []
    await expect(withExchangeCapture((e) => seen.push(e), () => http.get('/fail'))).rejects.toThrow()
    expect(seen.map((e) => e.status)).toEqual([500])
  })
})

describe('isSecretName', () => {
  it.each(['password', 'Password', 'pwd', 'token', 'access_token', 'refresh_token', 'corpAccessToken', 'appSecret', 'client_secret', 'apiKey', 'X-Api-Key', 'Authorization', 'Cookie', 'Set-Cookie', 'kdservice-sessionid', 'sessionId', 'permanentCode', 'x-csrf-token', 'sign'])(
    '%s is a secret',
    (name) => expect(isSecretName(name)).toBe(true),
  )
  it.each(['Idempotency-Key', 'appId', 'username', 'tokenType', 'expiresIn', 'reference', 'content-type', 'productCode'])('%s is not', (name) =>
    expect(isSecretName(name)).toBe(false),
  )
})
