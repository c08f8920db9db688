/**
 * The Fxiaoke connector against the vendor's published formats (../shared/fixtures, INDEX.md §3)
 * and its simulator: signed pushes, the events they give, the mapping of those events, writeback,
 * the corpAccessToken's life, and the errorCode table.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { WebhookRejected, withExchangeCapture, type HttpExchange, type Logger, type OperationContext, type SyncFailure } from '../../src/connector-kit/index.ts'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { compileMapping } from '../../src/mapping/compile-mapping.ts'
import { loadMappingFiles } from '../../src/mapping/mapping-catalog.ts'
import { mappedOrderSchema } from '../../src/orders/order.schemas.ts'
import { UndecryptableContent, callbackSignature, decryptContent, encryptContent, signCallback } from './callback.ts'
import { FxiaokeApiError, forgetTokens } from './client.ts'
import { fxiaokeErrorCodes, untilBeijingMidnight } from './errors.ts'
import { fxiaoke, fxiaokePush, receiveFxiaokePush, secretsSchema, settingsSchema, type FxiaokeSecrets, type FxiaokeSettings } from './index.ts'
import { forgetPacing } from './pacer.ts'
import { fetchOrderChanges } from './poll.ts'
import { parseFxiaokeJson } from './records.ts'
import { simulatorErrorCodes, startFxiaokeSimulator, type FxiaokeSimulator } from './simulator.ts'

const fixturesDir = new URL('../../../shared/fixtures/', import.meta.url)
const fixture = (name: string) => JSON.parse(readFileSync(new URL(name, fixturesDir), 'utf8')) as Record<string, unknown>

const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const credentials = { appId: 'FSAID_131fxtest', appSecret: 'app-secret-for-tests', permanentCode: 'PERMANENT0CODE0FOR0TESTS' }
const callbackToken = 'fx-callback-token'
const encodingAesKey = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG'
const userId = 'FSUID_TESTOPERATOR'

function settings(overrides: Record<string, unknown> = {}): FxiaokeSettings {
  return settingsSchema.parse({ currentOpenUserId: userId, ...overrides })
}
function secrets(overrides: Record<string, unknown> = {}): FxiaokeSecrets {
  return secretsSchema.parse({ ...credentials, callbackToken, ...overrides })
}

/** The fixture's sales order as the record Fxiaoke holds after the create: with its id and times. */
function fixtureOrderContent(extra: { lastModified?: number; created?: number } = {}) {
  const request = fixture('fxiaoke-crm-v2-salesorder-create-request.json') as { data: { object_data: Record<string, unknown>; details: { SalesOrderProductObj: Record<string, unknown>[] } } }
  const created = extra.created ?? 1716163300000
  return {
    object_data: { ...request.data.object_data, _id: '664ab1f2e4b0c1a2b3c4d5e6', create_time: created, last_modified_time: extra.lastModified ?? created },
    details: { SalesOrderProductObj: request.data.details.SalesOrderProductObj.map((line, i) => ({ ...line, _id: `664ab1f2e4b0c1a2b3c4d5e${7 + i}`, order_id: '664ab1f2e4b0c1a2b3c4d5e6' })) },
  }
}

function delivery(body: unknown, options: { settings?: FxiaokeSettings; secrets?: FxiaokeSecrets; now?: number } = {}) {
  return { raw: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), headers: {}, settings: options.settings ?? settings(), secrets: options.secrets ?? secrets(), ...(options.now ? { now: options.now } : {}) }
}

function rejection(fn: () => unknown): WebhookRejected {
  try {
    fn()
  } catch (err) {
    if (err instanceof WebhookRejected) return err
    throw err
  }
  throw new Error('expected a WebhookRejected')
}

describe('the push signature (open-platform callback format)', () => {
  it('is the SHA-1 hex of token, timeStamp, nonce and content sorted and concatenated', () => {
    // DERIVED: the four strings sorted by hand: "1716163200000" < "abc123" < "encrypted==" < "token-x".
    const expected = createHash('sha1').update('1716163200000abc123encrypted==token-x').digest('hex')
    expect(callbackSignature('token-x', '1716163200000', 'abc123', 'encrypted==')).toBe(expected)
  })

  it('builds the body the fixture describes, answered with `success`', () => {
    const format = fixture('fxiaoke-openplatform-callback-format.json') as { body: Record<string, string>; expected_response_body: string }
    const body = signCallback({ token: callbackToken, content: '{}' })
    expect(Object.keys(body).sort()).toEqual(Object.keys(format.body).sort())
    expect(body.timeStamp).toMatch(/^\d{13}$/)
    expect(fxiaokePush.acknowledge({ events: [] })).toEqual({ contentType: 'text/plain; charset=utf-8', body: format.expected_response_body })
  })
})

describe('AES content (as the official demo decrypts it)', () => {
  it('round-trips through random(16) + length + message + appId, padded to 32 bytes', () => {
    const message = JSON.stringify({ hello: '纷享销客' })
    const encrypted = encryptContent(message, encodingAesKey, 'FSAID_131fxtest')
    expect(Buffer.from(encrypted, 'base64').length % 32).toBe(0)
    expect(decryptContent(encrypted, encodingAesKey)).toBe(message)
  })

  it('refuses content encrypted with another key', () => {
    const encrypted = encryptContent('{"a":1}', 'ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut')
    expect(() => decryptContent(encrypted, encodingAesKey)).toThrow(UndecryptableContent)
  })
})

describe('receiving a push', () => {
  it('turns the fixture sales order into an order.created event with its lines', () => {
    const content = fixtureOrderContent()
    const received = fxiaokePush.receive(delivery(signCallback({ token: callbackToken, content: JSON.stringify(content) })))
    expect(received.events).toHaveLength(1)
    const event = received.events[0]!
    expect(event).toMatchObject({ eventId: '664ab1f2e4b0c1a2b3c4d5e6:1716163300000', type: 'order.created', externalId: '664ab1f2e4b0c1a2b3c4d5e6', sourceVersion: 1716163300000 })
    const document = event.document as { object_data: Record<string, unknown>; details: { SalesOrderProductObj: Record<string, unknown>[] } }
    expect(document.object_data.account_id).toBe('5e1d7a2b8c3f4a0001a1b2c3')
    expect(document.object_data).not.toHaveProperty('last_modified_time')
    expect(document.details.SalesOrderProductObj.map((l) => l.product_id)).toEqual(['6017a0c18c3207000154eea2'])
  })

  it('decrypts encrypted content', () => {
    const s = secrets({ encodingAesKey })
    const body = signCallback({ token: callbackToken, content: JSON.stringify(fixtureOrderContent()), encodingAesKey, appId: credentials.appId })
    expect(body.content).not.toContain('object_data')
    expect(fxiaokePush.receive(delivery(body, { secrets: s })).events[0]?.externalId).toBe('664ab1f2e4b0c1a2b3c4d5e6')
    const plain = signCallback({ token: callbackToken, content: JSON.stringify(fixtureOrderContent()) })
    expect(rejection(() => fxiaokePush.receive(delivery(plain, { secrets: s })))).toMatchObject({ status: 400, code: 'undecryptable_content' })
  })

  it('keeps money exact: a binary float arrives as its source text', () => {
    const text = '{"object_data":{"_id":"o-1","last_modified_time":1716163300001,"order_amount":406.80},"details":{"SalesOrderProductObj":[{"_id":"l-1","quantity":2,"sales_price":180.80}]}}'
    const event = fxiaokePush.receive(delivery(signCallback({ token: callbackToken, content: text }))).events[0]!
    const document = event.document as { object_data: Record<string, unknown>; details: { SalesOrderProductObj: Record<string, unknown>[] } }
    expect(document.object_data.order_amount).toBe('406.80')
    expect(document.details.SalesOrderProductObj[0]).toEqual({ _id: 'l-1', quantity: 2, sales_price: '180.80' })
    expect(parseFxiaokeJson('{"errorCode":0,"t":1716163300001}')).toEqual({ errorCode: 0, t: 1716163300001 })
  })

  it('tells created, updated and cancelled apart, and takes several orders in one push', () => {
    const created = fixtureOrderContent()
    const updated = fixtureOrderContent({ lastModified: 1716163400000 })
    const voided = { ...fixtureOrderContent({ lastModified: 1716163500000 }), object_data: { ...fixtureOrderContent({ lastModified: 1716163500000 }).object_data, life_status: 'invalid' } }
    const told = { ...fixtureOrderContent({ lastModified: 1716163600000 }), event: 'cancelled' }
    const events = fxiaokePush.receive(delivery(signCallback({ token: callbackToken, content: JSON.stringify([created, updated, voided, told]) }))).events
    expect(events.map((e) => [e.type, e.eventId])).toEqual([
      ['order.created', '664ab1f2e4b0c1a2b3c4d5e6:1716163300000'],
      ['order.updated', '664ab1f2e4b0c1a2b3c4d5e6:1716163400000'],
      ['order.cancelled', '664ab1f2e4b0c1a2b3c4d5e6:1716163500000'],
      ['order.cancelled', '664ab1f2e4b0c1a2b3c4d5e6:1716163600000'],
    ])
  })

  it('401 for a signature made with another token, or over changed content', () => {
    const content = JSON.stringify(fixtureOrderContent())
    expect(rejection(() => fxiaokePush.receive(delivery(signCallback({ token: 'another-token', content }))))).toMatchObject({ status: 401, code: 'invalid_signature' })
    const tampered = { ...signCallback({ token: callbackToken, content }), content: content.replace('226', '1') }
    expect(rejection(() => fxiaokePush.receive(delivery(tampered)))).toMatchObject({ status: 401, code: 'invalid_signature' })
  })

  it('401 for a timeStamp outside the tolerance, either way', () => {
    const content = JSON.stringify(fixtureOrderContent())
    const now = Date.now()
    const old = signCallback({ token: callbackToken, content, timeStamp: String(now - 300_001) })
    expect(rejection(() => fxiaokePush.receive(delivery(old, { now })))).toMatchObject({ status: 401, code: 'timestamp_out_of_tolerance' })
    const future = signCallback({ token: callbackToken, content, timeStamp: String(now + 300_001) })
    expect(rejection(() => fxiaokePush.receive(delivery(future, { now })))).toMatchObject({ status: 401, code: 'timestamp_out_of_tolerance' })
    const inside = signCallback({ token: callbackToken, content, timeStamp: String(now - 299_000) })
    expect(receiveFxiaokePush({ ...delivery(inside), now }).events).toHaveLength(1)
  })

  it('401 when the connection takes no pushes', () => {
    const body = signCallback({ token: callbackToken, content: '{}' })
    expect(rejection(() => fxiaokePush.receive(delivery(body, { secrets: secrets({ callbackToken: undefined }) })))).toMatchObject({ status: 401, code: 'push_not_configured' })
  })

  it('400 for a body that is not JSON or not the envelope, with the fields named', () => {
    expect(rejection(() => fxiaokePush.receive(delivery('{"nonce":')))).toMatchObject({ status: 400, code: 'invalid_json' })
    const missing = rejection(() => fxiaokePush.receive(delivery({ nonce: 'n', content: 'c' })))
    expect(missing).toMatchObject({ status: 400, code: 'invalid_envelope' })
    expect(missing.details.map((d) => d.path).sort()).toEqual(['sig', 'timeStamp'])
  })

  it('422 for content that is not an order, naming every wrong field; refused as a JSON error', () => {
    const content = JSON.stringify({ object_data: { account_id: 'x' }, details: { SalesOrderProductObj: 'none' } })
    const refused = rejection(() => fxiaokePush.receive(delivery(signCallback({ token: callbackToken, content }))))
    expect(refused).toMatchObject({ status: 422, code: 'invalid_order' })
    expect(refused.details.map((d) => d.path)).toEqual(expect.arrayContaining(['content.object_data._id', 'content.object_data.last_modified_time', 'content.details.SalesOrderProductObj']))
    const answer = fxiaokePush.refuse(refused)
    expect(answer.contentType).toMatch(/^application\/json/)
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'invalid_order', details: expect.any(Array) } })
  })
})

describe('the mapping fxiaoke.to-canonical.order', () => {
  it('maps the pushed fixture order into a canonical order the pipeline accepts', async () => {
    const file = loadMappingFiles().find((f) => f.spec.id === 'fxiaoke.to-canonical.order')
    if (!file) throw new Error('mapping fxiaoke.to-canonical.order is missing')
    const lookups = JSON.parse(readFileSync(new URL('../../mappings/examples/fxiaoke.to-canonical.order/lookups.json', import.meta.url), 'utf8'))
    const event = fxiaokePush.receive(delivery(signCallback({ token: callbackToken, content: JSON.stringify(fixtureOrderContent()) }))).events[0]!
    const result = await compileMapping(file.spec).apply(event.document, { lookups })
    if (!result.ok) throw new Error(JSON.stringify(result.errors))
    expect(mappedOrderSchema.parse(result.value)).toEqual({
      externalId: '664ab1f2e4b0c1a2b3c4d5e6',
      customer: { externalId: '5e1d7a2b8c3f4a0001a1b2c3' },
      currency: 'CNY',
      owner: 'FSUID_00000000000000000000000000000000',
      orderedAt: '2024-05-20T00:00:00.000Z',
      lines: [{ sku: 'MAT0001', quantity: '2', unitPrice: '113' }],
    })
  })
})

describe('against the simulator', () => {
  let sim: FxiaokeSimulator
  let sequence = 0
  beforeAll(async () => {
    sim = await startFxiaokeSimulator({ ...credentials })
  })
  afterAll(() => sim?.close())
  afterEach(() => {
    forgetTokens()
    sim.failNext(0, 0)
  })

  const writeback = {
    fields: { state: 'field_sync_state__c', erpOrderNumber: 'field_erp_no__c', invoiceNumber: 'field_invoice_no__c', carrier: 'field_carrier__c', trackingNumber: 'field_tracking_no__c', paidAmount: 'field_paid__c' },
    values: { state: { shipped: 'option_shipped' } },
  }
  function context(overrides: { settings?: Record<string, unknown>; secrets?: Record<string, unknown>; mayHaveWritten?: boolean } = {}): OperationContext<FxiaokeSettings, FxiaokeSecrets> {
    sequence += 1
    return {
      connectionId: 'fxiaoke',
      settings: settings({ baseUrl: sim.url, writeback, ...overrides.settings }),
      secrets: secrets(overrides.secrets),
      log: noopLogger,
      idempotencyKey: `order-${sequence}.fxiaoke.crm.v1`,
      reference: `ORD-${sequence}`,
      mayHaveWritten: overrides.mayHaveWritten ?? false,
    }
  }
  async function failureOf(promise: Promise<unknown>, ctx = context()): Promise<SyncFailure> {
    const error = await promise.then(
      () => {
        throw new Error('expected the call to fail')
      },
      (err: unknown) => err,
    )
    return fxiaoke.classify(error, ctx)
  }
  const newOrder = () => String(sim.putOrder({ account_id: 'acc-1', order_amount: '226.00' }, [{ product_id: 'p-1', quantity: '2', sales_price: '113.00' }])._id)

  it('answers the published query request (fixture) in the v2 envelope with data.dataList', async () => {
    newOrder()
    const login = (await (await fetch(`${sim.url}/cgi/corpAccessToken/get/V2`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(credentials) })).json()) as Record<string, unknown>
    expect(login).toMatchObject({ errorCode: 0, corpId: sim.corpId, expiresIn: 7200, corpAccessToken: expect.any(String) })
    const request = fixture('fxiaoke-crm-v2-data-query-request.json') as { data: Record<string, unknown> }
    const body = { ...request, corpAccessToken: login.corpAccessToken, corpId: login.corpId, currentOpenUserId: userId, data: { ...request.data, dataObjectApiName: 'SalesOrderObj' } }
    const answer = (await (await fetch(`${sim.url}/cgi/crm/v2/data/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as Record<string, unknown>
    const envelope = fixture('fxiaoke-crm-v2-response-envelope.json')
    expect(Object.keys(answer).sort()).toEqual(Object.keys(envelope).sort())
    expect(answer).toMatchObject({ errorCode: 0, data: { dataList: expect.any(Array), limit: 2, offset: 0 } })
    expect((answer.data as { dataList: unknown[] }).dataList.length).toBeGreaterThan(0)
  })

  it('writes state, ERP number, invoice and shipment to the configured fields, without triggering workflows', async () => {
    const id = newOrder()
    const ctx = context()
    await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'shipped', erpOrderNumber: 'SO-0042', invoiceNumber: 'INV-7', carrier: 'SF', trackingNumber: 'SF123', paidAmount: '100.00', paymentState: 'partially_paid' })
    const update = sim.updates().at(-1)
    expect(update).toEqual({
      objectApiName: 'SalesOrderObj',
      id,
      triggerWorkFlow: false,
      fields: { field_sync_state__c: 'option_shipped', field_erp_no__c: 'SO-0042', field_invoice_no__c: 'INV-7', field_carrier__c: 'SF', field_tracking_no__c: 'SF123', field_paid__c: '100.00' },
    })
    // The same update again leaves the order as it was.
    await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'shipped', erpOrderNumber: 'SO-0042', invoiceNumber: 'INV-7', carrier: 'SF', trackingNumber: 'SF123', paidAmount: '100.00' })
    expect(sim.order(id)).toMatchObject(update!.fields)
    // A state without a mapped option value goes as it is.
    await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'approved' })
    expect(sim.updates().at(-1)?.fields).toEqual({ field_sync_state__c: 'approved' })
  })

  it('is disabled without writeback fields, and refuses notes without a notes object', async () => {
    expect(fxiaoke.crm!.enabled!(settings())).toBe(false)
    expect(fxiaoke.crm!.enabled!(settings({ writeback }))).toBe(true)
    const failure = await failureOf(fxiaoke.crm!.addNote!(context(), newOrder(), { title: 't', body: 'b' }))
    expect(failure.kind).toBe('config')
  })

  it('adds a note as a record of the configured object, once even when retried', async () => {
    const id = newOrder()
    const notes = { objectApiName: 'object_order_note__c', orderField: 'field_order__c', bodyField: 'field_text__c', keyField: 'field_key__c' }
    const ctx = context({ settings: { notes } })
    await fxiaoke.crm!.addNote!(ctx, id, { title: 'Approval waiting', body: 'Order waits for finance' })
    await fxiaoke.crm!.addNote!({ ...ctx, mayHaveWritten: true }, id, { title: 'Approval waiting', body: 'Order waits for finance' })
    const stored = sim.records('object_order_note__c').filter((r) => r.field_order__c === id)
    expect(stored).toHaveLength(1)
    expect(stored[0]).toMatchObject({ name: 'Approval waiting', field_text__c: 'Order waits for finance', field_key__c: ctx.idempotencyKey })
    expect(sim.stats().calls['/cgi/crm/custom/v2/data/create']).toBeGreaterThan(0)
  })

  it('keeps the corpAccessToken between calls', async () => {
    const before = sim.stats().tokenRequests
    const ctx = context()
    for (let i = 0; i < 3; i++) await fxiaoke.crm!.updateOrderStatus(ctx, newOrder(), { state: 'approved' })
    expect(sim.stats().tokenRequests - before).toBe(1)
  })

  it('logs in again once when the token has expired (errorCode 20016), and the call succeeds', async () => {
    const ctx = context()
    await fxiaoke.crm!.updateOrderStatus(ctx, newOrder(), { state: 'approved' })
    const before = sim.stats()
    sim.expireTokens()
    await fxiaoke.crm!.updateOrderStatus(ctx, newOrder(), { state: 'approved' })
    const after = sim.stats()
    expect(after.tokenRequests - before.tokenRequests).toBe(1)
    expect(after.tokensIssued - before.tokensIssued).toBe(1)
  })

  it('is an auth failure when the new token is refused too (re-login only once)', async () => {
    const ctx = context()
    const before = sim.stats().tokenRequests
    sim.failNext(2, 20016, 'corpAccessToken不存在或者已经过期')
    const failure = await failureOf(fxiaoke.crm!.updateOrderStatus(ctx, newOrder(), { state: 'approved' }))
    expect(failure.kind).toBe('auth')
    expect(failure.message).toContain('errorCode 20016')
    expect(sim.stats().tokenRequests - before).toBe(2)
  })

  it('renews the token before it expires (expiresIn minus the margin)', async () => {
    const short = await startFxiaokeSimulator({ ...credentials, tokenTtlSeconds: 2 })
    try {
      const ctx = { ...context({ settings: { baseUrl: short.url, tokenMarginSeconds: 1 } }) }
      const id = String(short.putOrder({ account_id: 'a' })._id)
      await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'approved' })
      await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'approved' })
      expect(short.stats().tokenRequests).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 2_100))
      await fxiaoke.crm!.updateOrderStatus(ctx, id, { state: 'approved' })
      expect(short.stats()).toMatchObject({ tokenRequests: 2, tokensIssued: 2 })
      expect(short.stats().calls['/cgi/crm/v2/data/update']).toBe(3)
    } finally {
      await short.close()
    }
  })

  it('fails the check with wrong credentials (auth), passes with the right ones', async () => {
    await expect(fxiaoke.check(context())).resolves.toBeUndefined()
    const ctx = context({ secrets: { appSecret: 'wrong' } })
    const failure = await failureOf(fxiaoke.check(ctx), ctx)
    expect(failure.kind).toBe('auth')
  })

  it('classifies by errorCode: the table, overrides, unknown codes', async () => {
    const notFound = await failureOf(fxiaoke.crm!.updateOrderStatus(context(), 'no-such-order', { state: 'approved' }))
    expect(notFound.kind).toBe('transient')
    const mapped = context({ settings: { errorCodes: { [simulatorErrorCodes.notFound]: 'not_found' } } })
    expect((await failureOf(fxiaoke.crm!.updateOrderStatus(mapped, 'no-such-order', { state: 'approved' }), mapped)).kind).toBe('not_found')
    sim.failNext(1, 30002, '当日调用次数超限')
    const quota = await failureOf(fxiaoke.crm!.updateOrderStatus(context(), newOrder(), { state: 'approved' }))
    expect(quota.kind).toBe('rate_limited')
    expect(quota.details.retryAfterMs).toBeGreaterThan(0)
    expect(quota.details.retryAfterMs).toBeLessThanOrEqual(24 * 3600_000)
    sim.failNext(1, 30003)
    expect((await failureOf(fxiaoke.crm!.updateOrderStatus(context(), newOrder(), { state: 'approved' }))).kind).toBe('config')
  })

  it('classifies transport failures: unreachable is transient, a redirect is a wrong baseUrl', async () => {
    const unreachable = context({ settings: { baseUrl: 'http://127.0.0.1:1' } })
    expect((await failureOf(fxiaoke.crm!.updateOrderStatus(unreachable, 'x', { state: 'approved' }), unreachable)).kind).toBe('transient')
    const redirecting = await import('node:http').then(
      ({ createServer }) =>
        new Promise<{ url: string; close(): void }>((resolve) => {
          const server = createServer((_req, res) => res.writeHead(302, { location: 'https://www.fxiaoke.com/' }).end())
          server.listen(0, '127.0.0.1', () => {
            const address = server.address() as { port: number }
            resolve({ url: `http://127.0.0.1:${address.port}`, close: () => server.close() })
          })
        }),
    )
    try {
      const ctx = context({ settings: { baseUrl: redirecting.url } })
      expect((await failureOf(fxiaoke.crm!.updateOrderStatus(ctx, 'x', { state: 'approved' }), ctx)).kind).toBe('config')
    } finally {
      redirecting.close()
    }
  })

  it('reads changed orders page by page, equal timestamps across a page boundary included', async () => {
    const own = await startFxiaokeSimulator({ ...credentials })
    try {
      const at = Date.now() - 60_000
      const ids = Array.from({ length: 7 }, (_, i) => String(own.putOrder({ account_id: `acc-${i}` }, [{ product_id: `p-${i}`, quantity: '1', sales_price: '1.00' }], { modifiedAt: at })._id))
      const later = String(own.putOrder({ account_id: 'acc-late' }, [], { modifiedAt: at + 5 })._id)
      const ctx = context({ settings: { baseUrl: own.url, poll: { intervalMs: 1_000, pageSize: 3, settleMs: 0, since: new Date(at - 1_000).toISOString() } } })
      const seen: string[] = []
      const cursors: (string | null)[] = []
      let cursor: string | null = null
      for (let page = 0; page < 10; page++) {
        const changes = await fetchOrderChanges(ctx, cursor, 100)
        seen.push(...changes.events.map((e) => e.eventId))
        cursors.push(changes.nextCursor)
        for (const e of changes.events) expect((e.document as { details: { SalesOrderProductObj: unknown[] } }).details.SalesOrderProductObj.length).toBe(e.externalId === later ? 0 : 1)
        cursor = changes.nextCursor
        if (!changes.more) break
      }
      expect(seen).toEqual([...ids.map((id) => `${id}:${at}`), `${later}:${at + 5}`])
      expect(cursors).toEqual([`${at}:${ids[2]}`, `${at}:${ids[5]}`, `${at + 5}`])
      // Nothing new: the same cursor, no events.
      expect(await fetchOrderChanges(ctx, cursor, 100)).toEqual({ events: [], nextCursor: `${at + 5}`, more: false })
    } finally {
      await own.close()
    }
  })
})

describe('crm.pushStockLevels against the simulator', () => {
  let sim: FxiaokeSimulator
  let sequence = 0
  const logged: unknown[] = []
  const log: Logger = { info: (obj, msg) => void logged.push([obj, msg]), warn: (obj, msg) => void logged.push([obj, msg]), error: () => {} }
  const productFields = { ProductObj: { product_code: 'text', field_available_stock__c: 'number', field_on_hand__c: 'number' } } as const
  const push = fxiaoke.crm!.pushStockLevels!

  beforeAll(async () => {
    sim = await startFxiaokeSimulator({ ...credentials, fields: productFields })
  })
  afterAll(() => sim?.close())
  afterEach(() => {
    forgetTokens()
    forgetPacing()
    sim.failNext(0, 0)
  })

  function context(overrides: { stock?: Record<string, unknown>; settings?: Record<string, unknown>; baseUrl?: string } = {}): OperationContext<FxiaokeSettings, FxiaokeSecrets> {
    sequence += 1
    return {
      connectionId: 'fxiaoke',
      settings: settings({ baseUrl: overrides.baseUrl ?? sim.url, stock: { ...overrides.stock }, ...overrides.settings }),
      secrets: secrets(),
      log,
      idempotencyKey: `stock-wms-${sequence}`,
      reference: 'wms',
      mayHaveWritten: true,
    }
  }
  async function failureOf(promise: Promise<unknown>, ctx: OperationContext<FxiaokeSettings, FxiaokeSecrets>): Promise<SyncFailure> {
    const error = await promise.then(
      () => {
        throw new Error('expected the push to fail')
      },
      (err: unknown) => err,
    )
    return fxiaoke.classify(error, ctx)
  }
  /** Products with fresh codes, as a CRM user keeps them. */
  function products(count: number, extra: Record<string, unknown> = {}): { id: string; code: string }[] {
    sequence += 1
    return Array.from({ length: count }, (_, i) => {
      const code = `SKU-${sequence}-${i}`
      return { id: String(sim.putProduct({ product_code: code, name: `Product ${code}`, ...extra })._id), code }
    })
  }
  const product = (id: string) => sim.records('ProductObj').find((p) => p._id === id)!
  const updatesSince = (from: number) => sim.updates().slice(from)

  it('is enabled by stock settings alone, which take status writeback as nothing to write', async () => {
    expect(fxiaoke.crm!.enabled!(settings())).toBe(false)
    expect(fxiaoke.crm!.enabled!(settings({ stock: {} }))).toBe(true)
    expect(settings({ stock: {} }).stock).toEqual({ objectApiName: 'ProductObj', skuField: 'product_code', availableField: 'field_available_stock__c', triggerWorkFlow: false, triggerApprovalFlow: false, callsPerWindow: 90, windowMs: 20_000 })
    const before = sim.stats().calls
    await fxiaoke.crm!.updateOrderStatus(context(), 'any-order', { state: 'shipped' })
    expect(sim.stats().calls).toEqual(before)
    const unconfigured = { ...context(), settings: settings({ baseUrl: sim.url }) }
    expect((await failureOf(push(unconfigured, [{ sku: 'X', available: '1' }]), unconfigured)).kind).toBe('config')
  })

  it('writes the available quantity of each SKU to the product with that code, summed over warehouses, in the v2 wire format', async () => {
    const [a, b, untouched] = products(3)
    const exchanges: HttpExchange[] = []
    const from = sim.updates().length
    logged.length = 0

    await withExchangeCapture(
      (e) => exchanges.push(e),
      () =>
        push(context(), [
          { sku: a!.code, available: '998' },
          { sku: b!.code, available: '12.5', warehouse: 'SH' },
          { sku: b!.code, available: '0.25', warehouse: 'BJ' },
          { sku: 'NOT-IN-CRM', available: '7' },
        ]),
    )

    expect(updatesSince(from)).toEqual([
      { objectApiName: 'ProductObj', id: a!.id, triggerWorkFlow: false, fields: { field_available_stock__c: '998' } },
      { objectApiName: 'ProductObj', id: b!.id, triggerWorkFlow: false, fields: { field_available_stock__c: '12.75' } },
    ])
    expect(product(a!.id).field_available_stock__c).toBe('998')
    expect(product(b!.id).field_available_stock__c).toBe('12.75')
    expect(product(untouched!.id).field_available_stock__c).toBeUndefined()

    const calls = exchanges.map((e) => ({ path: new URL(e.url).pathname, request: JSON.parse(e.requestBody!) as Record<string, unknown>, response: JSON.parse(e.responseBody!) as Record<string, unknown> }))
    expect(calls.map((c) => c.path)).toEqual(['/cgi/corpAccessToken/get/V2', '/cgi/crm/v2/data/query', '/cgi/crm/v2/data/update', '/cgi/crm/v2/data/update'])
    expect(calls[1]!.request).toEqual({
      corpAccessToken: '[redacted]',
      corpId: sim.corpId,
      currentOpenUserId: userId,
      data: {
        dataObjectApiName: 'ProductObj',
        search_query_info: { offset: 0, limit: 100, filters: [{ field_name: 'product_code', operator: 'IN', field_values: [a!.code, b!.code, 'NOT-IN-CRM'] }], orders: [{ fieldName: '_id', isAsc: true }] },
      },
    })
    expect(calls[2]!.request).toEqual({
      corpAccessToken: '[redacted]',
      corpId: sim.corpId,
      currentOpenUserId: userId,
      triggerWorkFlow: false,
      triggerApprovalFlow: false,
      data: { object_data: { field_available_stock__c: '998', dataObjectApiName: 'ProductObj', _id: a!.id } },
    })
    // The answer is the v2 envelope (fixture) with the record's dataId.
    expect(Object.keys(calls[2]!.response).sort()).toEqual([...Object.keys(fixture('fxiaoke-crm-v2-response-envelope.json')).filter((k) => k !== 'data'), 'dataId'].sort())
    expect(calls[2]!.response).toMatchObject({ errorCode: 0, dataId: a!.id })
    expect(logged).toContainEqual([expect.objectContaining({ skipped: 1, skus: ['NOT-IN-CRM'] }), expect.stringContaining('skipped')])
  })

  it('writes only what differs: the same levels again change nothing, and the figure is compared as a decimal', async () => {
    const [a, b] = products(2)
    const ctx = context({ stock: { onHandField: 'field_on_hand__c' } })
    await push(ctx, [
      { sku: a!.code, available: '5', onHand: '8' },
      { sku: b!.code, available: '1.50' },
    ])
    const from = sim.updates().length
    await push(ctx, [
      { sku: a!.code, available: '5.000', onHand: '8' },
      { sku: b!.code, available: '1.5' },
    ])
    expect(updatesSince(from)).toEqual([])
    await push(ctx, [
      { sku: a!.code, available: '4', onHand: '8' },
      { sku: b!.code, available: '1.5' },
    ])
    expect(updatesSince(from).map((u) => [u.id, u.fields])).toEqual([[a!.id, { field_available_stock__c: '4' }]])
  })

  it('finds products in batches of 100 codes per IN query, paging a full page', async () => {
    const many = products(150)
    const before = sim.stats().calls['/cgi/crm/v2/data/query'] ?? 0
    await push(context({ stock: { callsPerWindow: 1000 } }), many.map((p, i) => ({ sku: p.code, available: String(i) })))
    // 100 codes → a full page, so one more (empty) page; then the last 50.
    expect((sim.stats().calls['/cgi/crm/v2/data/query'] ?? 0) - before).toBe(3)
    expect(many.every((p, i) => product(p.id).field_available_stock__c === String(i))).toBe(true)
  })

  it('keeps each interface under its call limit, waiting for room instead of being refused', async () => {
    const limited = await startFxiaokeSimulator({ ...credentials, fields: productFields, interfaceLimit: { max: 3, perMs: 400 } })
    try {
      const made = Array.from({ length: 7 }, (_, i) => ({ id: String(limited.putProduct({ product_code: `PACE-${i}` })._id), code: `PACE-${i}` }))
      const started = Date.now()
      await push(context({ baseUrl: limited.url, stock: { callsPerWindow: 3, windowMs: 400 } }), made.map((p) => ({ sku: p.code, available: '1' })))
      const updates = limited.callLog().filter((c) => c.path === '/cgi/crm/v2/data/update')
      expect(updates).toHaveLength(7)
      for (const call of updates) expect(updates.filter((other) => other.at <= call.at && call.at - other.at < 400).length).toBeLessThanOrEqual(3)
      expect(Date.now() - started).toBeGreaterThanOrEqual(800)
    } finally {
      await limited.close()
    }
  })

  it('is refused by the limit when paced too loosely: transient by default, rate_limited where mapped, and then it stops', async () => {
    // A gateway that takes 3 calls per interface a minute.
    const strict = await startFxiaokeSimulator({ ...credentials, fields: productFields, interfaceLimit: { max: 3, perMs: 60_000 } })
    try {
      const made = Array.from({ length: 6 }, (_, i) => ({ id: String(strict.putProduct({ product_code: `STRICT-${i}` })._id), code: `STRICT-${i}` }))
      const loose = context({ baseUrl: strict.url, stock: { callsPerWindow: 100 } })
      const refused = await failureOf(push(loose, made.map((p) => ({ sku: p.code, available: '2' }))), loose)
      expect(refused.kind).toBe('transient')
      expect(refused.message).toMatch(/^Fxiaoke refused the stock figures of 3 product\(s\) \(STRICT-3, STRICT-4, STRICT-5\): Fxiaoke update ProductObj answered errorCode 90429/)
      expect(made.map((p) => strict.records('ProductObj').find((r) => r._id === p.id)!.field_available_stock__c)).toEqual(['2', '2', '2', undefined, undefined, undefined])

      const mapped = context({ baseUrl: strict.url, stock: { callsPerWindow: 100 }, settings: { errorCodes: { [simulatorErrorCodes.tooFrequent]: 'rate_limited' } } })
      const before = strict.callLog().length
      const stopped = await failureOf(push(mapped, made.map((p) => ({ sku: p.code, available: '3' }))), mapped)
      expect(stopped.kind).toBe('rate_limited')
      // The first update is refused and no other is tried.
      expect(strict.callLog().slice(before).filter((c) => c.path === '/cgi/crm/v2/data/update')).toHaveLength(1)
    } finally {
      await strict.close()
    }
  })

  it('goes on past a product the CRM refuses (locked), then fails naming it, classified by its errorCode', async () => {
    const [a] = products(1)
    const [locked] = products(1, { lock_status: '1' })
    const [c] = products(1)
    const levels = [a!, locked!, c!].map((p) => ({ sku: p.code, available: '3' }))
    const ctx = context()

    const failure = await failureOf(push(ctx, levels), ctx)

    expect(product(a!.id).field_available_stock__c).toBe('3')
    expect(product(c!.id).field_available_stock__c).toBe('3')
    expect(product(locked!.id).field_available_stock__c).toBeUndefined()
    // 90423 is not a documented Fxiaoke code: unknown codes are transient (README), unless mapped.
    expect(failure.kind).toBe('transient')
    expect(failure.message).toBe(`Fxiaoke refused the stock figures of 1 product(s) (${locked!.code}): Fxiaoke update ProductObj answered errorCode ${simulatorErrorCodes.locked}: 数据已锁定，不能编辑 (traceId ${(failure.cause as FxiaokeApiError).traceId})`)
    const mapped = context({ settings: { errorCodes: { [simulatorErrorCodes.locked]: 'data' } } })
    expect((await failureOf(push(mapped, levels), mapped)).kind).toBe('data')
  })

  it('stops at the first refusal that concerns the connection, e.g. a stock field the product object does not have', async () => {
    const made = products(3)
    const ctx = context({ stock: { availableField: 'field_stock__c' }, settings: { errorCodes: { [simulatorErrorCodes.badParameter]: 'config' } } })
    const before = sim.stats().calls['/cgi/crm/v2/data/update'] ?? 0
    const failure = await failureOf(push(ctx, made.map((p) => ({ sku: p.code, available: '1' }))), ctx)
    expect(failure.kind).toBe('config')
    expect(failure.message).toContain('字段field_stock__c不存在')
    expect((sim.stats().calls['/cgi/crm/v2/data/update'] ?? 0) - before).toBe(1)
  })

  it('logs in again once when the token has expired, and is auth when the new one is refused too', async () => {
    const [a] = products(1)
    await fxiaoke.check(context())
    const before = sim.stats()
    sim.expireTokens()
    await push(context(), [{ sku: a!.code, available: '9' }])
    expect(sim.stats().tokensIssued - before.tokensIssued).toBe(1)
    expect(product(a!.id).field_available_stock__c).toBe('9')

    sim.failNext(2, 20016, 'corpAccessToken不存在或者已经过期')
    const ctx = context()
    expect((await failureOf(push(ctx, [{ sku: a!.code, available: '10' }]), ctx)).kind).toBe('auth')
    expect(product(a!.id).field_available_stock__c).toBe('9')
  })

  it('refuses a level that is not a decimal quantity before calling anything', async () => {
    const ctx = context()
    const before = sim.stats().calls
    const failure = await failureOf(push(ctx, [{ sku: 'X', available: '1e3' }]), ctx)
    expect(failure.kind).toBe('data')
    expect(sim.stats().calls).toEqual(before)
  })
})

describe('the errorCode table', () => {
  it('classifies each known code as documented in the README', () => {
    const kinds = Object.fromEntries(Object.entries(fxiaokeErrorCodes).map(([code, entry]) => [code, entry.kind]))
    expect(kinds).toEqual({ '10006': 'auth', '10013': 'bug', '20005': 'auth', '20016': 'auth', '20017': 'auth', '30002': 'rate_limited', '30003': 'config' })
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8')
    for (const [code, kind] of Object.entries(kinds)) expect(readme).toMatch(new RegExp(`\\| ${code} \\|[^\\n]*\\| \`${kind}\``))
    expect(fxiaoke.classify(new FxiaokeApiError('query SalesOrderObj', 123456, 'unknown', 'E-O.1'), { connectionId: 'x', settings: settings(), secrets: secrets(), log: noopLogger }).kind).toBe('transient')
  })

  it('waits for the daily quota until midnight Beijing time', () => {
    // 2024-05-20T15:30:00Z is 23:30 in Beijing: half an hour to go.
    expect(untilBeijingMidnight(Date.parse('2024-05-20T15:30:00Z'))).toBe(30 * 60_000)
  })
})

// Fxiaoke answers its errors as errorCode envelopes inside HTTP 200, so the suite's HTTP-status
// faults do not apply; the envelopes are classified by the tests above (the errorCode table).
describeConnectorConformance('fxiaoke', async () => {
  forgetTokens()
  const sim = await startFxiaokeSimulator({ ...credentials })
  const writeback = { fields: { state: 'field_sync_state__c', erpOrderNumber: 'field_erp_no__c' } }
  return {
    connector: fxiaoke,
    ctx: { settings: { currentOpenUserId: userId, baseUrl: sim.url, writeback }, secrets: { ...credentials, callbackToken } },
    sampleCrmOrderId: () => String(sim.putOrder({ account_id: 'acc-1', order_amount: '226.00' }, [{ product_id: 'p-1', quantity: '2', sales_price: '113.00' }])._id),
    countCrmStatuses: (id) => new Set(sim.updates().filter((u) => u.id === id).map((u) => JSON.stringify(u.fields))).size,
    reset: () => forgetTokens(),
    close: () => sim.close(),
  }
})
