import { createServer } from 'node:net'
import Fastify from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Logger, OperationContext } from '../../src/connector-kit/index.ts'
import { genericRest } from './index.ts'
import { secretsSchema, settingsSchema, type GenericRestSecrets, type GenericRestSettings } from './settings.ts'
import { startErpSimulator, type ErpSimulator } from './simulator.ts'

const apiToken = 'test-erp-token'
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

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
  return address.port
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
    })
  })

  it('rejects paths that would leave baseUrl and a non-http base URL', () => {
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', salesOrders: { createPath: '//evil.example.com/x' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', salesOrders: { createPath: 'https://evil.example.com/x' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'http://erp', salesOrders: { updatePath: '/sales-orders' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ baseUrl: 'ftp://erp.example.com' }).success).toBe(false)
    expect(secretsSchema.safeParse({ apiToken: '' }).success).toBe(false)
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
      const ctx = context({ baseUrl: `http://127.0.0.1:${await closedPort()}` })

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
