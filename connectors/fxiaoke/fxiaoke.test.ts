/**
 * The Fxiaoke connector against the vendor's published formats (../shared/fixtures, INDEX.md §3)
 * and its simulator: signed pushes, the events they give, the mapping of those events, writeback,
 * the corpAccessToken's life, and the errorCode table.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { WebhookRejected, type Logger, type OperationContext, type SyncFailure } from '../../src/connector-kit/index.ts'
import { compileMapping } from '../../src/mapping/compile-mapping.ts'
import { loadMappingFiles } from '../../src/mapping/mapping-catalog.ts'
import { mappedOrderSchema } from '../../src/orders/order.schemas.ts'
import { UndecryptableContent, callbackSignature, decryptContent, encryptContent, signCallback } from './callback.ts'
import { FxiaokeApiError, forgetTokens } from './client.ts'
import { fxiaokeErrorCodes, untilBeijingMidnight } from './errors.ts'
import { fxiaoke, fxiaokePush, receiveFxiaokePush, secretsSchema, settingsSchema, type FxiaokeSecrets, type FxiaokeSettings } from './index.ts'
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
