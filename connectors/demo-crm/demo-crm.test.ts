import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { verifyStandardWebhook, type Logger, type OperationContext, type SyncFailure } from '../../src/connector-kit/index.ts'
import { demoCrm, secretsSchema, settingsSchema, type DemoCrmSecrets, type DemoCrmSettings } from './index.ts'
import { sampleOrder } from './sender.ts'
import { startCrmSimulator, type CrmSimulator } from './simulator.ts'
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from '../../test/support/webhook-receiver.ts'

const webhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const apiToken = 'test-crm-token'
const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const crm = demoCrm.crm!
const webhooks = demoCrm.webhooks!

/** What orderbridge's ingest does with a delivery: verify, parse, validate, turn into an event. */
function ingest(delivery: ReceivedWebhook) {
  expect(verifyStandardWebhook(webhookSecret, delivery.headers as Record<string, string>, delivery.body)).toEqual({ ok: true })
  return webhooks.toEvent(webhooks.bodySchema.parse(JSON.parse(delivery.body.toString('utf8'))))
}

let receiver: WebhookReceiver
let sim: CrmSimulator
let sequence = 0

beforeAll(async () => {
  receiver = await startWebhookReceiver({ path: '/webhooks/demo-crm', answer: { status: 202, json: { status: 'accepted' } } })
  sim = await startCrmSimulator({ webhookUrl: receiver.url, secret: webhookSecret, apiToken })
})

afterEach(() => {
  sim.faults.reset()
})

afterAll(async () => {
  await sim.close()
  await receiver.close()
})

function context(
  overrides: Partial<OperationContext<DemoCrmSettings, DemoCrmSecrets>> & { baseUrl?: string | null; apiToken?: string | null; timeoutMs?: number } = {},
): OperationContext<DemoCrmSettings, DemoCrmSecrets> {
  sequence += 1
  const { baseUrl = sim.url, apiToken: token = apiToken, timeoutMs = 5_000, ...rest } = overrides
  return {
    connectionId: 'demo-crm',
    settings: settingsSchema.parse({ ...(baseUrl === null ? {} : { baseUrl }), timeoutMs }),
    secrets: secretsSchema.parse({ webhookSecret, ...(token === null ? {} : { apiToken: token }) }),
    log: noopLogger,
    idempotencyKey: `order-${sequence}.demo-crm.crm.updateOrderStatus.v1`,
    reference: `ORD-crm-${sequence}`,
    mayHaveWritten: false,
    ...rest,
  }
}

async function failureOf(promise: Promise<unknown>, ctx = context()): Promise<SyncFailure> {
  const error = await promise.then(
    () => { throw new Error('expected the call to fail') },
    (err: unknown) => err,
  )
  return demoCrm.classify(error, ctx)
}

describe('webhook bodies', () => {
  it('still takes order events as the CRM order document', () => {
    const order = sampleOrder(3, 'SO-W-3')
    expect(webhooks.toEvent(webhooks.bodySchema.parse({ type: 'order.updated', data: order }))).toEqual({ type: 'order.updated', externalId: 'SO-W-3', sourceVersion: 1, document: order })
  })

  it('turns a CRM approval decision into order.approval', () => {
    const approved = webhooks.bodySchema.parse({ type: 'order.approval', data: { order_id: 'SO-1', decision: 'approved', level: 'sales_manager', comment: 'ok', approver: 'li.wei' } })
    expect(webhooks.toEvent(approved)).toEqual({ type: 'order.approval', externalId: 'SO-1', sourceVersion: 0, document: { decision: 'approve', level: 'sales_manager', comment: 'ok', by: 'li.wei' } })
    const rejected = webhooks.bodySchema.parse({ type: 'order.approval', data: { order_id: 'SO-1', decision: 'rejected' } })
    expect(webhooks.toEvent(rejected)).toEqual({ type: 'order.approval', externalId: 'SO-1', sourceVersion: 0, document: { decision: 'reject' } })
  })

  it('names every wrong field, also when the type is unknown', () => {
    const data = { ...sampleOrder(4, 'SO-R-4'), currency: 'yuan', items: [{ product_code: 'SKU-1', qty: 2, price: 199.5 }] }
    const unknownType = webhooks.bodySchema.safeParse({ type: 'order.shipped', data })
    expect(unknownType.error?.issues.map((issue) => issue.path.join('.')).sort()).toEqual(['data.currency', 'data.items.0.price', 'type'])
    expect(unknownType.error?.issues.find((issue) => issue.path.join('.') === 'data.items.0.price')?.message).toBe('Invalid input: expected string, received number')

    const badDecision = webhooks.bodySchema.safeParse({ type: 'order.approval', data: { order_id: 'SO-1', decision: 'maybe' } })
    expect(badDecision.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['data.decision'])
    expect(webhooks.bodySchema.safeParse('not an object').success).toBe(false)
  })
})

describe('CRM-run approval', () => {
  it('pushes a signed order.approval when an approver decides, from tests or over HTTP', async () => {
    const before = receiver.received.length
    const delivery = await sim.approve('SO-2001', 'approved', { level: 'finance', approver: 'wang.fang' })
    expect(delivery.status).toBe(202)
    const overHttp = await fetch(`${sim.url}/orders/SO-2002/approval`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'rejected', comment: 'credit' }),
    })
    expect(overHttp.status).toBe(200)

    expect(receiver.received.slice(before).map(ingest)).toEqual([
      { type: 'order.approval', externalId: 'SO-2001', sourceVersion: 0, document: { decision: 'approve', level: 'finance', by: 'wang.fang' } },
      { type: 'order.approval', externalId: 'SO-2002', sourceVersion: 0, document: { decision: 'reject', comment: 'credit' } },
    ])
  })

  it('decides every order created in the CRM by itself when configured to', async () => {
    const own = await startWebhookReceiver({ path: '/webhooks/demo-crm', answer: { status: 202, json: { status: 'accepted' } } })
    const auto = await startCrmSimulator({ webhookUrl: own.url, secret: webhookSecret, approval: { decision: 'approved', afterMs: 10, level: 'sales_manager' } })
    try {
      const created = await fetch(`${auto.url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count: 1 }) })
      expect(created.status).toBe(201)
      const until = Date.now() + 5_000
      while (own.received.length < 2 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))

      expect(own.received.map(ingest).map((event) => [event.type, event.externalId, event.document.decision])).toEqual([
        ['order.created', 'SO-1001', undefined],
        ['order.approval', 'SO-1001', 'approve'],
      ])
    } finally {
      await auto.close()
      await own.close()
    }
  })
})

describe('crm.updateOrderStatus', () => {
  it('writes the status in the CRM format, and the same update twice leaves the CRM as after once', async () => {
    const ctx = context()
    const update = { state: 'shipped', carrier: 'SF Express', trackingNumber: 'SF0000000001', erpOrderNumber: 'SO-000001' }

    await crm.updateOrderStatus(ctx, 'SO-3001', update)
    await crm.updateOrderStatus(ctx, 'SO-3001', update)
    // A later attempt under another key with the same content changes nothing either.
    await crm.updateOrderStatus({ ...ctx, idempotencyKey: `${ctx.idempotencyKey}-again` }, 'SO-3001', update)

    const [status] = sim.statuses().filter((entry) => entry.orderId === 'SO-3001')
    expect(status?.history).toHaveLength(1)
    expect(status?.current).toEqual({ status: 'shipped', carrier: 'SF Express', tracking_no: 'SF0000000001', erp_order_no: 'SO-000001', updated_at: expect.any(String) })

    await crm.updateOrderStatus({ ...ctx, idempotencyKey: 'next' }, 'SO-3001', { state: 'completed', paymentState: 'paid', paidAmount: '569.08', currency: 'CNY', invoiceNumber: 'FP-2026-000001' })
    const after = sim.statuses().find((entry) => entry.orderId === 'SO-3001')!
    expect(after.history.map((entry) => entry.status)).toEqual(['shipped', 'completed'])
    expect(after.current).toMatchObject({ status: 'completed', payment_status: 'paid', paid_amount: '569.08', currency: 'CNY', invoice_no: 'FP-2026-000001' })
  })

  it('a retry of an older update under its key does not undo a newer one', async () => {
    const ctx = context()
    await crm.updateOrderStatus(ctx, 'SO-3002', { state: 'reserved' })
    await crm.updateOrderStatus({ ...ctx, idempotencyKey: 'later' }, 'SO-3002', { state: 'shipped' })
    await crm.updateOrderStatus(ctx, 'SO-3002', { state: 'reserved' })

    expect(sim.statuses().find((entry) => entry.orderId === 'SO-3002')?.current.status).toBe('shipped')
  })
})

describe('crm.addNote and crm.pushStockLevels', () => {
  it('adds a note once per idempotency key', async () => {
    const ctx = context()
    const note = { title: 'Payment overdue', body: 'Invoice FP-2026-000001 is 10 days overdue.' }
    await crm.addNote!(ctx, 'SO-4001', note)
    await crm.addNote!(ctx, 'SO-4001', note)
    await crm.addNote!({ ...ctx, idempotencyKey: 'second-reminder' }, 'SO-4001', note)

    expect(sim.notes().filter((n) => n.order_id === 'SO-4001').map((n) => n.title)).toEqual(['Payment overdue', 'Payment overdue'])
  })

  it('sets the stock levels it names and keeps the others', async () => {
    const ctx = context()
    await crm.pushStockLevels!(ctx, [{ sku: 'SKU-100', available: '998', onHand: '1000' }, { sku: 'SKU-101', available: '0' }])
    await crm.pushStockLevels!(ctx, [{ sku: 'SKU-101', available: '25', warehouse: 'SH' }, { sku: 'SKU-100', available: '990' }])

    expect(sim.stock().map(({ updated_at: _at, ...level }) => level)).toEqual([
      { product_code: 'SKU-100', available: '990' },
      { product_code: 'SKU-101', available: '0' },
      { product_code: 'SKU-101', available: '25', warehouse: 'SH' },
    ])
  })
})

describe('check and classify', () => {
  it('checks the API when there is one, and has nothing to check for a push-only connection', async () => {
    await expect(demoCrm.check(context())).resolves.toBeUndefined()
    await expect(demoCrm.check(context({ baseUrl: null }))).resolves.toBeUndefined()
  })

  it('writeback without a baseUrl is a config failure', async () => {
    const ctx = context({ baseUrl: null })
    expect(await failureOf(crm.updateOrderStatus(ctx, 'SO-5001', { state: 'approved' }), ctx)).toMatchObject({ kind: 'config', retryable: false })
  })

  it('a missing or wrong token is auth', async () => {
    const none = context({ apiToken: null })
    expect(await failureOf(crm.updateOrderStatus(none, 'SO-5002', { state: 'approved' }), none)).toMatchObject({ kind: 'auth', details: { httpStatus: 401 } })
    const wrong = context({ apiToken: 'wrong-token' })
    const failure = await failureOf(crm.addNote!(wrong, 'SO-5002', { title: 't', body: 'b' }), wrong)
    expect(failure).toMatchObject({ kind: 'auth', details: { connectorId: 'demo-crm', httpStatus: 401 } })
    expect(failure.message).not.toContain('wrong-token')
  })

  it('a 5xx is transient and a 429 rate_limited, and neither changes anything', async () => {
    const ctx = context()
    sim.faults.failNext(1, 502)
    expect(await failureOf(crm.updateOrderStatus(ctx, 'SO-5003', { state: 'approved' }), ctx)).toMatchObject({ kind: 'transient', details: { httpStatus: 502 } })
    sim.faults.failNext(1, 429, { 'retry-after': '3' })
    expect(await failureOf(crm.updateOrderStatus(ctx, 'SO-5003', { state: 'approved' }), ctx)).toMatchObject({ kind: 'rate_limited', details: { retryAfterMs: 3000 } })
    expect(sim.statuses().find((entry) => entry.orderId === 'SO-5003')).toBeUndefined()
  })

  it('an invalid update is data and is not retried', async () => {
    const ctx = context()
    const failure = await failureOf(crm.updateOrderStatus(ctx, 'SO-5004', { state: 'completed', paidAmount: '12,50' }), ctx)
    expect(failure).toMatchObject({ kind: 'data', details: { httpStatus: 422 } })
    expect(failure.retryable).toBe(false)
  })

  it('a timeout is unknown_outcome, and sending the update again is harmless', async () => {
    const ctx = context({ timeoutMs: 100 })
    sim.faults.delayMs(300)
    expect(await failureOf(crm.updateOrderStatus(ctx, 'SO-5005', { state: 'approved' }), ctx)).toMatchObject({ kind: 'unknown_outcome' })
    sim.faults.reset()

    await crm.updateOrderStatus(ctx, 'SO-5005', { state: 'approved' })
    expect(sim.statuses().find((entry) => entry.orderId === 'SO-5005')?.history).toHaveLength(1)
  })
})

describe('choosing HubSpot v3 signatures on a connection', () => {
  const clientSecret = '5c1e2f7a-3b4d-4e8f-9a0b-1c2d3e4f5a6b'

  it('takes webhookVerification hubspot-v3 with a public URL, and needs one of the two secrets', () => {
    expect(settingsSchema.parse({ webhookVerification: { scheme: 'hubspot-v3', publicUrl: 'https://ob.example.com/webhooks/crm' } }).webhookVerification).toEqual({ scheme: 'hubspot-v3', publicUrl: 'https://ob.example.com/webhooks/crm' })
    expect(settingsSchema.safeParse({ webhookVerification: { scheme: 'hubspot-v3', publicUrl: 'https://ob.example.com/webhooks/crm?x=1' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ webhookVerification: { scheme: 'hubspot-v2' } }).success).toBe(false)
    expect(secretsSchema.safeParse({ hubspotClientSecret: clientSecret }).success).toBe(true)
    expect(secretsSchema.safeParse({ apiToken }).error?.issues.map((i) => i.path.join('.'))).toEqual(['webhookSecret'])
  })

  it('fails check() as config when the chosen scheme has no secret', async () => {
    const hubspot = { ...context({ baseUrl: null }), settings: settingsSchema.parse({ webhookVerification: { scheme: 'hubspot-v3' } }), secrets: secretsSchema.parse({ webhookSecret }) }
    const failure = await failureOf(demoCrm.check(hubspot), hubspot)
    expect(failure).toMatchObject({ kind: 'config', message: 'webhookVerification is hubspot-v3 but the secret hubspotClientSecret is not set' })
    await demoCrm.check({ ...hubspot, secrets: secretsSchema.parse({ hubspotClientSecret: clientSecret }) })
    const standard = { ...context({ baseUrl: null }), secrets: secretsSchema.parse({ hubspotClientSecret: clientSecret }) }
    expect((await failureOf(demoCrm.check(standard), standard)).kind).toBe('config')
  })
})
