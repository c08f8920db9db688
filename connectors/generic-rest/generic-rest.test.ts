import Fastify from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { verifyStandardWebhook, type Logger, type OperationContext } from '../../src/connector-kit/index.ts'
import { genericRest } from './index.ts'
import { secretsSchema, settingsSchema, type GenericRestSecrets, type GenericRestSettings } from './settings.ts'
import { startErpSimulator, type ErpSimulator } from './simulator.ts'
import { freePort } from '../../src/shared/free-port.ts'
import { startWebhookReceiver, type ReceivedWebhook } from '../../test/support/webhook-receiver.ts'

const apiToken = 'test-erp-token'
const webhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const upsert = genericRest.salesOrders!.upsert

let erp: ErpSimulator
let sequence = 0

function context(
  overrides: Partial<OperationContext<GenericRestSettings, GenericRestSecrets>> & { baseUrl?: string; apiToken?: string } = {},
): OperationContext<GenericRestSettings, GenericRestSecrets> {
  sequence += 1
  const { baseUrl = erp.url, apiToken: token = apiToken, ...rest } = overrides
  return {
    connectionId: 'demo-erp',
    settings: settingsSchema.parse({ baseUrl, timeoutMs: 5_000 }),
    secrets: secretsSchema.parse({ apiToken: token }),
    log: noopLogger,
    idempotencyKey: `order-${sequence}.demo-erp.salesOrders.upsert.v1`,
    reference: `ORD-${sequence}`,
    mayHaveWritten: false,
    ...rest,
  }
}

function salesOrder(reference: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { reference, customerCode: 'C-001', currency: 'EUR', lines: [{ itemCode: 'SKU-100', qty: 2, price: '9.50' }], total: '19.00', ...extra }
}

async function classified(promise: Promise<unknown>, ctx: OperationContext<GenericRestSettings, GenericRestSecrets>) {
  const error = await promise.then(
    () => { throw new Error('expected the call to fail') },
    (err: unknown) => err,
  )
  return genericRest.classify(error, ctx)
}

beforeAll(async () => {
  erp = await startErpSimulator({ apiToken })
})

afterEach(() => {
  erp.faults.reset()
})

afterAll(async () => {
  await erp.close()
})

describe('settings', () => {
  it('fills in the default paths, timeout and id field', () => {
    expect(settingsSchema.parse({ baseUrl: 'https://erp.example.com/api' })).toEqual({
      baseUrl: 'https://erp.example.com/api',
      timeoutMs: 15_000,
      healthPath: '/health',
      salesOrders: {
        createPath: '/sales-orders',
        updatePath: '/sales-orders/{id}',
        findByReferencePath: '/sales-orders?reference={reference}',
        cancelPath: '/sales-orders/{id}/cancel',
        idField: 'id',
      },
      credit: { customerCreditPath: '/customers/{customerId}/credit' },
    })
  })

  it('rejects paths that would leave baseUrl and a non-http base URL', () => {
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', salesOrders: { createPath: '//evil.example.com/x' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', salesOrders: { createPath: 'https://evil.example.com/x' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', salesOrders: { updatePath: '/sales-orders' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'ftp://erp.example.com' }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', credit: { customerCreditPath: '/customers/credit' } }).success).toBe(false)
    expect(secretsSchema.safeParse({ apiToken: '' }).success).toBe(false)
    expect(secretsSchema.safeParse({ apiToken: 't', webhookSecret: 'not-whsec' }).success).toBe(false)
  })
})

describe('check', () => {
  it('passes when the ERP is up', async () => {
    await expect(genericRest.check(context())).resolves.toBeUndefined()
  })
})

describe('salesOrders.upsert', () => {
  it('creates a sales order, returns its id and sends the idempotency key and bearer token', async () => {
    const ctx = context()
    const result = await upsert.run(ctx, salesOrder(ctx.reference), undefined)

    expect(result.externalId).toMatch(/^SO-\d{6}$/)
    const stored = erp.salesOrders().find((order) => order.id === result.externalId)
    expect(stored).toMatchObject({ reference: ctx.reference, currency: 'EUR', total: '19.00', customerCode: 'C-001' })
    expect(erp.requests()).toContainEqual({ method: 'POST', path: '/sales-orders', idempotencyKey: ctx.idempotencyKey })
  })

  it('creates one order when the same idempotency key is sent twice', async () => {
    const ctx = context()
    const before = erp.salesOrders().length

    const first = await upsert.run(ctx, salesOrder(ctx.reference), undefined)
    const second = await upsert.run(ctx, salesOrder(ctx.reference), undefined)

    expect(second).toEqual(first)
    expect(erp.salesOrders().length).toBe(before + 1)
    expect(erp.requests().filter((r) => r.method === 'POST' && r.idempotencyKey === ctx.idempotencyKey)).toHaveLength(2)
  })

  it('updates the named order when it already exists, without creating one', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, salesOrder(ctx.reference), undefined)
    const before = erp.salesOrders().length

    const updated = await upsert.run(
      { ...ctx, idempotencyKey: `${ctx.idempotencyKey}-v2` },
      salesOrder(ctx.reference, { total: '28.50', lines: [{ itemCode: 'SKU-100', qty: 3, price: '9.50' }] }),
      created,
    )

    expect(updated).toEqual(created)
    expect(erp.salesOrders().length).toBe(before)
    expect(erp.salesOrders().find((order) => order.id === created.externalId)).toMatchObject({ id: created.externalId, total: '28.50', lines: [{ qty: 3 }] })
    expect(erp.requests().at(-1)).toMatchObject({ method: 'PUT', path: `/sales-orders/${created.externalId}` })
  })

  describe('when the ERP commits the order but the answer is lost', () => {
    it('classifies the loss as unknown_outcome and the retry finds the order instead of creating a second', async () => {
      const ctx = context()
      erp.faults.commitThenDrop(1)
      const before = erp.salesOrders().filter((order) => order.reference === ctx.reference)
      expect(before).toHaveLength(0)

      const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference), undefined), ctx)
      expect(failure.kind).toBe('unknown_outcome')
      expect(failure.retryable).toBe(true)
      const committed = erp.salesOrders().filter((order) => order.reference === ctx.reference)
      expect(committed).toHaveLength(1)

      const postsBefore = erp.requests().filter((r) => r.method === 'POST').length
      const retried = await upsert.run({ ...ctx, mayHaveWritten: true }, salesOrder(ctx.reference, { total: '19.00' }), undefined)

      expect(retried).toEqual({ externalId: committed[0]!.id })
      expect(erp.salesOrders().filter((order) => order.reference === ctx.reference)).toHaveLength(1)
      expect(erp.requests().filter((r) => r.method === 'POST').length).toBe(postsBefore)
      expect(erp.requests().slice(-2)).toEqual([
        { method: 'GET', path: `/sales-orders?reference=${encodeURIComponent(ctx.reference)}` },
        { method: 'PUT', path: `/sales-orders/${committed[0]!.id}` },
      ])
    })

    it('creates the order on a retry when the lookup finds nothing', async () => {
      const ctx = context({ mayHaveWritten: true })
      const result = await upsert.run(ctx, salesOrder(ctx.reference), undefined)

      expect(erp.salesOrders().filter((order) => order.reference === ctx.reference).map((order) => order.id)).toEqual([result.externalId])
    })
  })

  describe('classify', () => {
    it('a 503 with Retry-After: 2 is transient, retried after 2000 ms, and creates nothing', async () => {
      const ctx = context()
      const before = erp.salesOrders().length
      erp.faults.failNext(1, 503, { 'retry-after': '2' })

      const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference), undefined), ctx)

      expect(failure).toMatchObject({ kind: 'transient', details: { connectorId: 'generic-rest', httpStatus: 503, retryAfterMs: 2000 } })
      expect(erp.salesOrders().length).toBe(before)
    })

    it('a 429 is rate_limited', async () => {
      const ctx = context()
      erp.faults.failNext(1, 429, { 'retry-after': '7' })

      const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference), undefined), ctx)

      expect(failure).toMatchObject({ kind: 'rate_limited', details: { httpStatus: 429, retryAfterMs: 7000 } })
    })

    it('a 422 for an invalid document is data and is not retried', async () => {
      const ctx = context()
      const before = erp.salesOrders().length

      const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference, { currency: 'euro', lines: [] }), undefined), ctx)

      expect(failure).toMatchObject({ kind: 'data', details: { httpStatus: 422 } })
      expect(failure.retryable).toBe(false)
      expect(erp.salesOrders().length).toBe(before)
    })

    it('a wrong token is auth', async () => {
      const ctx = context({ apiToken: 'wrong-token' })

      const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference), undefined), ctx)

      expect(failure).toMatchObject({ kind: 'auth', details: { httpStatus: 401 } })
      expect(failure.message).not.toContain('wrong-token')
    })

    it('a refused connection is transient', async () => {
      const ctx = context({ baseUrl: `http://127.0.0.1:${await freePort()}` })

      const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference), undefined), ctx)

      expect(failure.kind).toBe('transient')
      expect(failure.message).toContain('ECONNREFUSED')
    })
  })
})

describe('findByReference', () => {
  it('finds an order by a reference that needs URL encoding, and nothing for an unknown one', async () => {
    const ctx = context({ reference: 'ORD 7/å&x=1' })
    const created = await upsert.run(ctx, salesOrder(ctx.reference), undefined)

    await expect(genericRest.salesOrders!.findByReference(ctx, ctx.reference)).resolves.toEqual(created)
    await expect(genericRest.salesOrders!.findByReference(ctx, 'ORD 7/å')).resolves.toBeUndefined()
  })

  it('reads an { items } answer, a custom id field, and skips orders under another reference', async () => {
    const erpWithItems = Fastify({ logger: false, forceCloseConnections: true })
    erpWithItems.get('/api/orders/search', async () => ({
      items: [
        { number: 41, reference: 'ORD-other' },
        { number: 42, reference: 'ORD-42' },
      ],
    }))
    await erpWithItems.listen({ port: 0, host: '127.0.0.1' })
    try {
      const address = erpWithItems.server.address()
      if (address === null || typeof address === 'string') throw new Error('no port')
      const ctx = {
        ...context(),
        settings: settingsSchema.parse({
          baseUrl: `http://127.0.0.1:${address.port}/api`,
          salesOrders: { findByReferencePath: '/orders/search?ref={reference}', idField: 'number' },
        }),
      }

      await expect(genericRest.salesOrders!.findByReference(ctx, 'ORD-42')).resolves.toEqual({ externalId: '42' })
      await expect(genericRest.salesOrders!.findByReference(ctx, 'ORD-none')).resolves.toBeUndefined()
    } finally {
      await erpWithItems.close()
    }
  })
})

describe('the simulator', () => {
  it('answers 422 when an idempotency key is reused with a different body', async () => {
    const ctx = context()
    await upsert.run(ctx, salesOrder(ctx.reference), undefined)

    const failure = await classified(upsert.run(ctx, salesOrder(ctx.reference, { total: '99.00' }), undefined), ctx)

    expect(failure).toMatchObject({ kind: 'data', details: { httpStatus: 422 } })
    expect(erp.salesOrders().filter((order) => order.reference === ctx.reference)).toHaveLength(1)
  })

  it('answers health without a token and rejects a missing token', async () => {
    const health = await fetch(`${erp.url}/health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })

    const unauthenticated = await fetch(`${erp.url}/sales-orders`)
    expect(unauthenticated.status).toBe(401)
    expect(await unauthenticated.json()).toMatchObject({ error: { code: 'unauthorized' } })
  })

  it('lists validation details and 404s an unknown order', async () => {
    const headers = { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }
    const invalid = await fetch(`${erp.url}/sales-orders`, { method: 'POST', headers, body: JSON.stringify({ currency: 'EURO', lines: [] }) })
    expect(invalid.status).toBe(422)
    const body = (await invalid.json()) as { error: { code: string; details: { path: string }[] } }
    expect(body.error.code).toBe('validation')
    expect(body.error.details.map((detail) => detail.path).sort()).toEqual(['currency', 'lines', 'reference'])

    const missing = await fetch(`${erp.url}/sales-orders/SO-999999`, { headers })
    expect(missing.status).toBe(404)
  })
})

describe('credit.getCustomerCredit', () => {
  const credit = genericRest.credit!

  it('answers the default limit for any customer, in decimal strings', async () => {
    await expect(credit.getCustomerCredit(context(), 'C-NEW')).resolves.toEqual({ limit: '50000.00', outstanding: '0.00', currency: 'CNY', overdue: false })
  })

  it('rises when a sales order is created, stays when it is invoiced, and falls as it is paid', async () => {
    const ctx = context()
    const customer = `C-credit-${ctx.reference}`
    erp.setCredit(customer, { limit: '1000.00', openingBalance: '100.50' })
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ limit: '1000.00', outstanding: '100.50' })

    const order = await upsert.run(ctx, salesOrder(ctx.reference, { customerCode: customer, total: '569.08' }), undefined)
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ outstanding: '669.58', overdue: false })

    const invoice = erp.invoice(order.externalId)
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ outstanding: '669.58' })

    erp.pay(invoice.id, '500.00')
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ outstanding: '169.58' })
    erp.pay(invoice.id, '69.08')
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ outstanding: '100.50' })
    expect(erp.invoices().find((i) => i.id === invoice.id)).toMatchObject({ status: 'paid', paid: '569.08', open: '0.00' })
  })

  it('falls when an uninvoiced sales order is cancelled', async () => {
    const ctx = context()
    const customer = `C-cancel-${ctx.reference}`
    const order = await upsert.run(ctx, salesOrder(ctx.reference, { customerCode: customer, total: '19.00' }), undefined)
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ outstanding: '19.00' })

    await genericRest.salesOrders!.cancel!(ctx, order)
    await expect(credit.getCustomerCredit(ctx, customer)).resolves.toMatchObject({ outstanding: '0.00' })
  })

  it('is overdue when marked so, or when an invoice is unpaid past its due date', async () => {
    const ctx = context()
    const marked = `C-marked-${ctx.reference}`
    erp.setCredit(marked, { overdue: true })
    await expect(credit.getCustomerCredit(ctx, marked)).resolves.toMatchObject({ overdue: true })

    const late = `C-late-${ctx.reference}`
    const order = await upsert.run(ctx, salesOrder(ctx.reference, { customerCode: late, total: '40.00' }), undefined)
    const invoiced = await fetch(`${erp.url}/sales-orders/${order.externalId}/invoice`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ dueDate: '2020-01-31' }),
    })
    expect(invoiced.status).toBe(201)
    await expect(credit.getCustomerCredit(ctx, late)).resolves.toEqual({ limit: '50000.00', outstanding: '40.00', currency: 'CNY', overdue: true })
    expect(erp.credit(late)).toMatchObject({ overdueAmount: '40.00', available: '49960.00' })
  })

  it('takes per-customer credit and a default from the simulator options, and changes over HTTP', async () => {
    const other = await startErpSimulator({ apiToken, credit: { default: { limit: '1000', currency: 'EUR' }, customers: { 'C-BIG': { limit: '250000.00' } } } })
    try {
      const ctx = context({ baseUrl: other.url })
      await expect(credit.getCustomerCredit(ctx, 'C-BIG')).resolves.toMatchObject({ limit: '250000.00', currency: 'EUR' })
      await expect(credit.getCustomerCredit(ctx, 'C-ANY')).resolves.toMatchObject({ limit: '1000.00', currency: 'EUR' })
      const patched = await fetch(`${other.url}/customers/C-ANY/credit`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ overdue: true, limit: '5.00' }),
      })
      expect(await patched.json()).toMatchObject({ customerId: 'C-ANY', limit: '5.00', overdue: true })
      await expect(credit.getCustomerCredit(ctx, 'C-ANY')).resolves.toMatchObject({ limit: '5.00', overdue: true })
    } finally {
      await other.close()
    }
  })

  describe('when the ERP cannot answer', () => {
    it('a failing credit service is transient (and other calls still work)', async () => {
      const ctx = context()
      erp.faults.creditUnavailable()
      expect(await classified(credit.getCustomerCredit(ctx, 'C-001'), ctx)).toMatchObject({ kind: 'transient', details: { httpStatus: 503 } })
      await expect(genericRest.check(ctx)).resolves.toBeUndefined()
      erp.faults.reset()
      await expect(credit.getCustomerCredit(ctx, 'C-001')).resolves.toMatchObject({ limit: '50000.00' })
    })

    it('an ERP started with its credit service down, or not running at all, is transient', async () => {
      const down = await startErpSimulator({ apiToken, creditUnavailable: 502 })
      try {
        const ctx = context({ baseUrl: down.url })
        expect(await classified(credit.getCustomerCredit(ctx, 'C-001'), ctx)).toMatchObject({ kind: 'transient', details: { httpStatus: 502 } })
      } finally {
        await down.close()
      }
      const ctx = context({ baseUrl: `http://127.0.0.1:${await freePort()}` })
      expect(await classified(credit.getCustomerCredit(ctx, 'C-001'), ctx)).toMatchObject({ kind: 'transient' })
    })

    it('a timeout is unknown_outcome and a wrong token is auth', async () => {
      const slow = { ...context(), settings: settingsSchema.parse({ baseUrl: erp.url, timeoutMs: 100 }) }
      erp.faults.delayMs(400)
      expect(await classified(credit.getCustomerCredit(slow, 'C-001'), slow)).toMatchObject({ kind: 'unknown_outcome' })
      erp.faults.reset()

      const wrong = context({ apiToken: 'wrong-token' })
      expect(await classified(credit.getCustomerCredit(wrong, 'C-001'), wrong)).toMatchObject({ kind: 'auth', details: { httpStatus: 401 } })
    })
  })

  it('reads a configured path, whole-number amounts, and calls an answer of another shape a config failure', async () => {
    const other = Fastify({ logger: false, forceCloseConnections: true })
    other.get('/api/credit/:customer', async (request) => {
      const { customer } = request.params as { customer: string }
      if (customer === 'C/odd') return { limit: 20000, outstanding: '1250.5', currency: 'USD', overdue: false }
      return { creditLimit: 20000.5, owed: 1 }
    })
    await other.listen({ port: 0, host: '127.0.0.1' })
    try {
      const address = other.server.address()
      if (address === null || typeof address === 'string') throw new Error('no port')
      const ctx = {
        ...context(),
        settings: settingsSchema.parse({ baseUrl: `http://127.0.0.1:${address.port}/api`, credit: { customerCreditPath: '/credit/{customerId}' } }),
      }
      await expect(credit.getCustomerCredit(ctx, 'C/odd')).resolves.toEqual({ limit: '20000', outstanding: '1250.5', currency: 'USD', overdue: false })
      expect(await classified(credit.getCustomerCredit(ctx, 'C-2'), ctx)).toMatchObject({ kind: 'config', details: { httpStatus: 200 } })
    } finally {
      await other.close()
    }
  })
})

/** What orderbridge's ingest does with a delivery: verify, parse, validate, turn into an event. */
function ingest(delivery: ReceivedWebhook) {
  expect(verifyStandardWebhook(webhookSecret, delivery.headers as Record<string, string>, delivery.body)).toEqual({ ok: true })
  const webhooks = genericRest.webhooks!
  return webhooks.toEvent(webhooks.bodySchema.parse(JSON.parse(delivery.body.toString('utf8'))))
}

describe('invoice and payment events', () => {
  const headers = { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }

  it('invoices once, takes partial payments, and sends signed events that become order.invoiced and order.payment_received', async () => {
    const receiver = await startWebhookReceiver({ path: '/webhooks/demo-erp' })
    const other = await startErpSimulator({ apiToken, webhookUrl: receiver.url, webhookSecret, paymentTermsDays: 14 })
    try {
      const ctx = context({ baseUrl: other.url })
      const order = await upsert.run(ctx, salesOrder(ctx.reference, { total: '100.00' }), undefined)

      const first = await fetch(`${other.url}/sales-orders/${order.externalId}/invoice`, { method: 'POST', headers, body: '{}' })
      const again = await fetch(`${other.url}/sales-orders/${order.externalId}/invoice`, { method: 'POST', headers, body: '{}' })
      expect([first.status, again.status]).toEqual([201, 200])
      const invoice = (await first.json()) as { id: string; number: string; dueDate: string; issueDate: string }
      expect(await again.json()).toMatchObject({ id: invoice.id })
      expect(Date.parse(invoice.dueDate) - Date.parse(invoice.issueDate)).toBe(14 * 86_400_000)

      const pay = (amount: string, key?: string) =>
        fetch(`${other.url}/invoices/${invoice.id}/payments`, { method: 'POST', headers: { ...headers, ...(key ? { 'idempotency-key': key } : {}) }, body: JSON.stringify({ amount }) })
      const partial = await pay('30.00', 'pay-1')
      const replayed = await pay('30.00', 'pay-1')
      expect([partial.status, replayed.status]).toEqual([201, 201])
      const payment = (await partial.json()) as { id: string }
      expect(await replayed.json()).toMatchObject({ id: payment.id })
      const over = await pay('70.01')
      expect(over.status).toBe(422)
      expect(await over.json()).toMatchObject({ error: { code: 'overpayment' } })
      const rest = await pay('70')
      expect(rest.status).toBe(201)
      expect(other.invoices()).toEqual([expect.objectContaining({ id: invoice.id, status: 'paid', paid: '100.00', open: '0.00' })])
      await other.flushWebhooks()

      expect(other.deliveries().map((d) => [d.body.event, d.status])).toEqual([
        ['invoice.issued', 'delivered'],
        ['payment.received', 'delivered'],
        ['payment.received', 'delivered'],
      ])
      expect(receiver.received.map(ingest)).toEqual([
        { type: 'order.invoiced', externalId: order.externalId, sourceVersion: 0, document: { invoiceNumber: invoice.number, amount: '100.00', currency: 'EUR', dueDate: invoice.dueDate } },
        { type: 'order.payment_received', externalId: order.externalId, sourceVersion: 0, document: { paymentId: payment.id, amount: '30.00', currency: 'EUR' } },
        { type: 'order.payment_received', externalId: order.externalId, sourceVersion: 0, document: { paymentId: expect.stringMatching(/^PAY-/), amount: '70.00', currency: 'EUR' } },
      ])
      expect(JSON.parse(receiver.received[2]!.body.toString('utf8'))).toMatchObject({ event: 'payment.received', invoice: { paid: '100.00', open: '0.00', status: 'paid' } })
    } finally {
      await other.close()
      await receiver.close()
    }
  })

  it('invoices and pays by itself when asked to', async () => {
    const receiver = await startWebhookReceiver({ path: '/webhooks/demo-erp' })
    const other = await startErpSimulator({ apiToken, webhookUrl: receiver.url, webhookSecret, autoInvoiceAfterMs: 10, autoPayAfterMs: 10 })
    try {
      const ctx = context({ baseUrl: other.url })
      const order = await upsert.run(ctx, salesOrder(ctx.reference, { total: '19.00' }), undefined)
      const until = Date.now() + 5_000
      while (receiver.received.length < 2 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))

      expect(receiver.received.map(ingest).map((event) => [event.type, event.externalId, event.document.amount])).toEqual([
        ['order.invoiced', order.externalId, '19.00'],
        ['order.payment_received', order.externalId, '19.00'],
      ])
    } finally {
      await other.close()
      await receiver.close()
    }
  })

  it('refuses to invoice a cancelled order or one without a total, and rejects malformed events', async () => {
    const ctx = context()
    const cancelled = await upsert.run(ctx, salesOrder(ctx.reference), undefined)
    await genericRest.salesOrders!.cancel!(ctx, cancelled)
    expect(() => erp.invoice(cancelled.externalId)).toThrow('is cancelled')
    const second = context()
    const untotalled = await upsert.run(second, salesOrder(second.reference, { total: undefined }), undefined)
    const answer = await fetch(`${erp.url}/sales-orders/${untotalled.externalId}/invoice`, { method: 'POST', headers, body: '{}' })
    expect(answer.status).toBe(422)

    const schema = genericRest.webhooks!.bodySchema
    expect(schema.safeParse({ event: 'invoice.issued', occurredAt: 'x', invoice: { id: 'I', number: 'N', salesOrderId: 'SO', amount: 10.5, currency: 'EUR' } }).success).toBe(false)
    expect(schema.safeParse({ event: 'invoice.voided', occurredAt: 'x' }).success).toBe(false)
  })
})
