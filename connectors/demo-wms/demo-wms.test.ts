import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { verifyStandardWebhook, type Logger, type OperationContext, type SyncFailure } from '../../src/connector-kit/index.ts'
import { demoWms, secretsSchema, settingsSchema, type DemoWmsSecrets, type DemoWmsSettings } from './index.ts'
import { startWmsSimulator, type WmsSimulator } from './simulator.ts'
import { freePort } from '../../src/shared/free-port.ts'
import { startWebhookReceiver, type ReceivedWebhook } from '../../test/support/webhook-receiver.ts'

const apiToken = 'test-wms-token'
const webhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const inventory = demoWms.inventory!
const webhooks = demoWms.webhooks!

let wms: WmsSimulator
let sequence = 0

beforeAll(async () => {
  wms = await startWmsSimulator({
    apiToken,
    stock: { 'SKU-LAST': 10, 'SKU-ODD': 25, 'SKU-A': 5, 'SKU-B': 1, 'SKU-KEY': 100, 'SKU-DUEL': 5, 'SKU-C': 50, 'SKU-P': 4, 'SKU-Q': 10 },
  })
})

afterEach(() => {
  wms.faults.reset()
})

afterAll(async () => {
  await wms.close()
})

function reserve(body: unknown, idempotencyKey?: string): Promise<Response> {
  return fetch(`${wms.url}/reservations`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiToken}`,
      'content-type': 'application/json',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: JSON.stringify(body),
  })
}

function levelOf(sku: string, simulator: WmsSimulator = wms) {
  return simulator.stock().find((level) => level.sku === sku)
}

function context(
  overrides: Partial<OperationContext<DemoWmsSettings, DemoWmsSecrets>> & { baseUrl?: string; apiToken?: string; timeoutMs?: number } = {},
): OperationContext<DemoWmsSettings, DemoWmsSecrets> {
  sequence += 1
  const { baseUrl = wms.url, apiToken: token = apiToken, timeoutMs = 5_000, ...rest } = overrides
  return {
    connectionId: 'demo-wms',
    settings: settingsSchema.parse({ baseUrl, timeoutMs }),
    secrets: secretsSchema.parse({ apiToken: token, webhookSecret }),
    log: noopLogger,
    idempotencyKey: `order-${sequence}.demo-wms.inventory.reserve.v1`,
    reference: `ORD-wms-${sequence}`,
    mayHaveWritten: false,
    ...rest,
  }
}

async function failureOf(promise: Promise<unknown>, ctx = context()): Promise<SyncFailure> {
  const error = await promise.then(
    () => { throw new Error('expected the call to fail') },
    (err: unknown) => err,
  )
  return demoWms.classify(error, ctx)
}

/** What orderbridge's ingest does with a delivery: verify, parse, validate, turn into an event. */
function ingest(delivery: ReceivedWebhook) {
  const verified = verifyStandardWebhook(webhookSecret, delivery.headers as Record<string, string>, delivery.body)
  expect(verified).toEqual({ ok: true })
  const body = webhooks.bodySchema.parse(JSON.parse(delivery.body.toString('utf8')))
  return webhooks.toEvent(body)
}

async function waitFor(probe: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!probe()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('the simulator', () => {
  it('never oversells when 20 reservations race for the last 10 units', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => reserve({ reference: `ORD-race-${i}`, lines: [{ sku: 'SKU-LAST', quantity: 1 }] })),
    )

    const statuses = answers.map((answer) => answer.status)
    expect(statuses.filter((status) => status === 201)).toHaveLength(10)
    expect(statuses.filter((status) => status === 409)).toHaveLength(10)
    expect(levelOf('SKU-LAST')).toEqual({ sku: 'SKU-LAST', onHand: 10, reserved: 10, available: 0 })
    const refused = answers.find((answer) => answer.status === 409)!
    expect(await refused.json()).toMatchObject({
      error: { code: 'insufficient_stock', details: [{ sku: 'SKU-LAST', requested: 1, available: 0 }] },
    })
  })

  it('reserves exactly as many whole reservations as fit when 20 race for 3 units each out of 25', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => reserve({ reference: `ORD-odd-${i}`, lines: [{ sku: 'SKU-ODD', quantity: 3 }] })),
    )

    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(8)
    expect(levelOf('SKU-ODD')).toEqual({ sku: 'SKU-ODD', onHand: 25, reserved: 24, available: 1 })
  })

  it('is all-or-nothing across lines, and counts a SKU repeated on several lines', async () => {
    const partial = await reserve({ reference: 'ORD-partial', lines: [{ sku: 'SKU-A', quantity: 2 }, { sku: 'SKU-B', quantity: 2 }] })
    expect(partial.status).toBe(409)
    expect(await partial.json()).toMatchObject({ error: { details: [{ sku: 'SKU-B', requested: 2, available: 1 }] } })

    const repeated = await reserve({ reference: 'ORD-repeated', lines: [{ sku: 'SKU-A', quantity: 3 }, { sku: 'SKU-A', quantity: 3 }] })
    expect(repeated.status).toBe(409)
    expect(await repeated.json()).toMatchObject({ error: { details: [{ sku: 'SKU-A', requested: 6, available: 5 }] } })

    expect(levelOf('SKU-A')).toMatchObject({ reserved: 0, available: 5 })
    expect(levelOf('SKU-B')).toMatchObject({ reserved: 0, available: 1 })
  })

  it('reserves once for a repeated idempotency key and replays the first answer', async () => {
    const body = { reference: 'ORD-key', lines: [{ sku: 'SKU-KEY', quantity: 4 }] }

    const first = await reserve(body, 'ORD-key.demo-wms.reserve.v1')
    const second = await reserve(body, 'ORD-key.demo-wms.reserve.v1')

    expect(first.status).toBe(201)
    expect(second.status).toBe(201)
    expect(second.headers.get('idempotent-replayed')).toBe('true')
    const created = (await first.json()) as { id: string }
    expect(created).toMatchObject({ reference: 'ORD-key', status: 'active', allowPartial: false, lines: [{ sku: 'SKU-KEY', quantity: 4, reserved: 4 }] })
    expect(await second.json()).toEqual(created)
    expect(levelOf('SKU-KEY')).toMatchObject({ reserved: 4, available: 96 })
    expect(wms.reservations().filter((reservation) => reservation.reference === 'ORD-key')).toHaveLength(1)

    const reused = await reserve({ ...body, lines: [{ sku: 'SKU-KEY', quantity: 5 }] }, 'ORD-key.demo-wms.reserve.v1')
    expect(reused.status).toBe(422)
    expect(levelOf('SKU-KEY')).toMatchObject({ reserved: 4 })
  })

  it('releases a reservation once, however often it is deleted', async () => {
    const created = await reserve({ reference: 'ORD-release', lines: [{ sku: 'SKU-KEY', quantity: 10 }] })
    const { id } = (await created.json()) as { id: string }
    const reservedBefore = levelOf('SKU-KEY')!.reserved

    for (let i = 0; i < 2; i++) {
      const released = await fetch(`${wms.url}/reservations/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${apiToken}` } })
      expect(released.status).toBe(200)
      expect(await released.json()).toMatchObject({ id, status: 'released' })
    }
    expect(levelOf('SKU-KEY')!.reserved).toBe(reservedBefore - 10)
  })

  it('answers one SKU, a filtered list, 404s an unknown one and needs the token', async () => {
    const headers = { authorization: `Bearer ${apiToken}` }
    const one = await fetch(`${wms.url}/stock/SKU-A`, { headers })
    expect(await one.json()).toEqual({ sku: 'SKU-A', onHand: 5, reserved: 0, available: 5 })
    expect((await fetch(`${wms.url}/stock/SKU-NOPE`, { headers })).status).toBe(404)
    expect((await fetch(`${wms.url}/stock`)).status).toBe(401)
    const some = (await (await fetch(`${wms.url}/stock?sku=SKU-B&sku=SKU-A&sku=SKU-NOPE`, { headers })).json()) as { sku: string }[]
    expect(some.map((level) => level.sku)).toEqual(['SKU-A', 'SKU-B'])
  })

  it('starts with SKU-100 … SKU-109 at 1000 each by default', async () => {
    const defaults = await startWmsSimulator({ apiToken })
    try {
      expect(defaults.stock()).toEqual(Array.from({ length: 10 }, (_, i) => ({ sku: `SKU-${100 + i}`, onHand: 1000, reserved: 0, available: 1000 })))
    } finally {
      await defaults.close()
    }
  })

  it('takes goods receipts over HTTP and from tests', async () => {
    const answer = await fetch(`${wms.url}/stock/SKU-NEW/receipts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ quantity: 7 }),
    })
    expect(answer.status).toBe(201)
    expect(await answer.json()).toEqual({ sku: 'SKU-NEW', onHand: 7, reserved: 0, available: 7 })
    expect(wms.receive('SKU-NEW', 3)).toEqual({ sku: 'SKU-NEW', onHand: 10, reserved: 0, available: 10 })
  })
})

describe('the demo-wms connector', () => {
  it('passes its check against the simulator', async () => {
    await expect(demoWms.check(context())).resolves.toBeUndefined()
  })

  describe('inventory.getStock', () => {
    it('answers decimal strings for the SKUs the WMS knows and leaves out the others', async () => {
      await expect(inventory.getStock(context(), ['SKU-B', 'SKU-A', 'SKU-NOPE'])).resolves.toEqual([
        { sku: 'SKU-A', available: '5', onHand: '5' },
        { sku: 'SKU-B', available: '1', onHand: '1' },
      ])
      await expect(inventory.getStock(context(), [])).resolves.toEqual([])
    })
  })

  describe('inventory.reserve', () => {
    it('reserves every line and answers per line, in decimal strings', async () => {
      const ctx = context()
      const reservation = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-C', quantity: '2' }, { lineId: 'L2', sku: 'SKU-C', quantity: '3.000' }] }, undefined)

      expect(reservation).toEqual({
        externalId: expect.stringMatching(/^RSV-\d{6}$/),
        lines: [
          { lineId: 'L1', sku: 'SKU-C', requested: '2', reserved: '2' },
          { lineId: 'L2', sku: 'SKU-C', requested: '3', reserved: '3' },
        ],
      })
      expect(wms.reservations().find((r) => r.id === reservation.externalId)).toMatchObject({ reference: ctx.reference, status: 'active' })
    })

    it('is all-or-nothing: short stock is a data failure naming each short line, and nothing is reserved', async () => {
      const ctx = context()
      const before = levelOf('SKU-P')!

      const failure = await failureOf(
        inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-P', quantity: '3' }, { lineId: 'L2', sku: 'SKU-P', quantity: '2' }, { lineId: 'L3', sku: 'SKU-Q', quantity: '1' }] }, undefined),
        ctx,
      )

      expect(failure).toMatchObject({ kind: 'data', details: { connectorId: 'demo-wms', httpStatus: 409, missing: [{ lineId: 'L2', sku: 'SKU-P', requested: '2', available: '1' }] } })
      expect(failure.retryable).toBe(false)
      expect(failure.message).toBe('not enough stock: SKU-P (line L2) requested 2, available 1')
      expect(levelOf('SKU-P')).toEqual(before)
      expect(levelOf('SKU-Q')).toMatchObject({ reserved: 0 })
      expect(wms.reservations().filter((r) => r.reference === ctx.reference)).toHaveLength(0)
    })

    it('lets exactly one of two concurrent reservations have the last units and oversells nothing', async () => {
      const [first, second] = [context(), context()]
      const request = { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-DUEL', quantity: '3' }] }

      const outcomes = await Promise.allSettled([inventory.reserve.run(first, request, undefined), inventory.reserve.run(second, request, undefined)])

      expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1)
      const lost = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')!
      expect(demoWms.classify(lost.reason, first)).toMatchObject({ kind: 'data', details: { missing: [{ lineId: 'L1', sku: 'SKU-DUEL', requested: '3', available: '2' }] } })
      expect(levelOf('SKU-DUEL')).toEqual({ sku: 'SKU-DUEL', onHand: 5, reserved: 3, available: 2 })
    })

    it('reserves what there is when partial lines are allowed', async () => {
      const ctx = context()
      wms.receive('SKU-PART', 4)

      const reservation = await inventory.reserve.run(
        ctx,
        { allowPartial: true, lines: [{ lineId: 'L1', sku: 'SKU-PART', quantity: '3' }, { lineId: 'L2', sku: 'SKU-PART', quantity: '3' }, { lineId: 'L3', sku: 'SKU-C', quantity: '1' }] },
        undefined,
      )

      expect(reservation.lines).toEqual([
        { lineId: 'L1', sku: 'SKU-PART', requested: '3', reserved: '3' },
        { lineId: 'L2', sku: 'SKU-PART', requested: '3', reserved: '1' },
        { lineId: 'L3', sku: 'SKU-C', requested: '1', reserved: '1' },
      ])
      expect(levelOf('SKU-PART')).toMatchObject({ reserved: 4, available: 0 })
    })

    it('returns the same reservation when retried with the same idempotency key, and reserves once', async () => {
      const ctx = context()
      const request = { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-KEY', quantity: '6' }] }
      const reservedBefore = levelOf('SKU-KEY')!.reserved

      const first = await inventory.reserve.run(ctx, request, undefined)
      const retried = await inventory.reserve.run(ctx, request, undefined)

      expect(retried).toEqual(first)
      expect(levelOf('SKU-KEY')!.reserved).toBe(reservedBefore + 6)
      expect(wms.reservations().filter((r) => r.reference === ctx.reference)).toHaveLength(1)
    })

    it('looks the reservation up by reference before reserving again after a lost answer', async () => {
      const ctx = context()
      const created = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-KEY', quantity: '2' }] }, undefined)

      // A later revision (another key) whose link was never settled.
      const retried = await inventory.reserve.run(
        { ...ctx, idempotencyKey: `${ctx.idempotencyKey}-v2`, mayHaveWritten: true },
        { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-KEY', quantity: '3' }] },
        undefined,
      )

      expect(retried).toEqual({ externalId: created.externalId, lines: [{ lineId: 'L1', sku: 'SKU-KEY', requested: '3', reserved: '3' }] })
      expect(wms.reservations().filter((r) => r.reference === ctx.reference)).toHaveLength(1)
    })

    it('adjusts the quantities of an existing reservation, and keeps them when the new ones do not fit', async () => {
      const ctx = context()
      wms.receive('SKU-ADJ', 10)
      const created = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-ADJ', quantity: '6' }] }, undefined)

      // Its own 6 units count as free: 10 fit.
      const grown = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-ADJ', quantity: '10' }] }, created)
      expect(grown).toEqual({ externalId: created.externalId, lines: [{ lineId: 'L1', sku: 'SKU-ADJ', requested: '10', reserved: '10' }] })
      expect(levelOf('SKU-ADJ')).toMatchObject({ reserved: 10, available: 0 })

      const failure = await failureOf(inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-ADJ', quantity: '11' }] }, created), ctx)
      expect(failure).toMatchObject({ kind: 'data', details: { missing: [{ lineId: 'L1', sku: 'SKU-ADJ', requested: '11', available: '10' }] } })
      expect(levelOf('SKU-ADJ')).toMatchObject({ reserved: 10 })

      const shrunk = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-ADJ', quantity: '4' }] }, created)
      expect(shrunk.lines[0]).toMatchObject({ reserved: '4' })
      expect(levelOf('SKU-ADJ')).toMatchObject({ reserved: 4, available: 6 })
    })

    it('refuses fractional quantities before calling the WMS', async () => {
      const failure = await failureOf(inventory.reserve.run(context(), { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-C', quantity: '2.5' }] }, undefined))
      expect(failure).toMatchObject({ kind: 'data', message: 'line L1: the WMS reserves whole units, not 2.5' })
    })
  })

  describe('inventory.findReservation and release', () => {
    it('finds the open reservation by reference, releases it once however often asked, then finds nothing', async () => {
      const ctx = context({ reference: 'ORD wms/å&x=1' })
      const created = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-C', quantity: '5' }] }, undefined)
      const reservedBefore = levelOf('SKU-C')!.reserved

      await expect(inventory.findReservation(ctx, ctx.reference)).resolves.toEqual(created)
      await expect(inventory.findReservation(ctx, 'ORD wms/å')).resolves.toBeUndefined()

      await inventory.release(ctx, created)
      await inventory.release(ctx, created)

      expect(levelOf('SKU-C')!.reserved).toBe(reservedBefore - 5)
      await expect(inventory.findReservation(ctx, ctx.reference)).resolves.toBeUndefined()
    })

    it('refuses to release a shipped reservation, as data', async () => {
      const ctx = context()
      const created = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-C', quantity: '1' }] }, undefined)
      wms.ship(created.externalId)

      const failure = await failureOf(inventory.release(ctx, created), ctx)
      expect(failure).toMatchObject({ kind: 'data', message: 'the reservation has shipped and cannot be released', details: { httpStatus: 409 } })
      // A shipped reservation cannot change either.
      const adjusted = await failureOf(inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-C', quantity: '2' }] }, created), ctx)
      expect(adjusted).toMatchObject({ kind: 'data', details: { httpStatus: 409 } })
    })

    it('a release of an unknown reservation is not_found', async () => {
      const ctx = context()
      expect(await failureOf(inventory.release(ctx, { externalId: 'RSV-999999' }), ctx)).toMatchObject({ kind: 'not_found', details: { httpStatus: 404 } })
    })
  })

  describe('classify', () => {
    const request = { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-C', quantity: '1' }] }

    it('a wrong token is auth and the message holds no token', async () => {
      const ctx = context({ apiToken: 'wrong-token' })
      const failure = await failureOf(inventory.reserve.run(ctx, request, undefined), ctx)
      expect(failure).toMatchObject({ kind: 'auth', details: { httpStatus: 401 } })
      expect(failure.message).not.toContain('wrong-token')
    })

    it('a 503 with Retry-After is transient and reserves nothing; a 429 is rate_limited', async () => {
      const ctx = context()
      const before = wms.reservations().length
      wms.faults.failNext(1, 503, { 'retry-after': '2' })
      expect(await failureOf(inventory.reserve.run(ctx, request, undefined), ctx)).toMatchObject({ kind: 'transient', details: { httpStatus: 503, retryAfterMs: 2000 } })
      expect(wms.reservations().length).toBe(before)

      wms.faults.failNext(1, 429, { 'retry-after': '7' })
      expect(await failureOf(inventory.getStock(ctx, ['SKU-C']), ctx)).toMatchObject({ kind: 'rate_limited', details: { retryAfterMs: 7000 } })
    })

    it('a 4xx for an invalid request is data; a 404 is not_found', async () => {
      const ctx = context()
      expect(await failureOf(inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-UNKNOWN', quantity: '1' }] }, undefined), ctx)).toMatchObject({
        kind: 'data',
        details: { httpStatus: 422 },
      })
      expect(await failureOf(demoWms.check(context({ baseUrl: `${wms.url}/missing` })), ctx)).toMatchObject({ kind: 'not_found', details: { connectorId: 'demo-wms', httpStatus: 404 } })
    })

    it('a timeout is unknown_outcome, and the retry finds the reservation instead of reserving twice', async () => {
      const ctx = context({ timeoutMs: 100 })
      wms.faults.delayMs(300)
      const failure = await failureOf(inventory.reserve.run(ctx, request, undefined), ctx)
      expect(failure.kind).toBe('unknown_outcome')
      wms.faults.reset()

      // The delayed request was still handled: the reservation exists once, and the retry adopts it.
      await waitFor(() => wms.reservations().some((r) => r.reference === ctx.reference), 'the delayed reservation')
      const retried = await inventory.reserve.run({ ...ctx, mayHaveWritten: true }, request, undefined)
      expect(wms.reservations().filter((r) => r.reference === ctx.reference).map((r) => r.id)).toEqual([retried.externalId])
    })

    it('a refused connection is transient', async () => {
      const ctx = context({ baseUrl: `http://127.0.0.1:${await freePort()}` })
      const failure = await failureOf(inventory.getStock(ctx, ['SKU-C']), ctx)
      expect(failure.kind).toBe('transient')
      expect(failure.message).toContain('ECONNREFUSED')
    })
  })
})

describe('events', () => {
  it('sends signed shipment and stock events in its own format, which the connector turns into fulfilment events', async () => {
    const receiver = await startWebhookReceiver({ path: '/webhooks/demo-wms' })
    const sim = await startWmsSimulator({ apiToken, stock: { 'SKU-E': 10 }, webhookUrl: receiver.url, webhookSecret, carrier: 'ZTO' })
    try {
      const ctx = context({ baseUrl: sim.url })
      const reservation = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-E', quantity: '4' }] }, undefined)
      const shipped = await fetch(`${sim.url}/reservations/${reservation.externalId}/ship`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ trackingNumber: 'ZTO123' }),
      })
      expect(shipped.status).toBe(200)
      // Shipping again ships once and sends nothing more.
      sim.ship(reservation.externalId)
      sim.deliver(reservation.externalId)
      sim.receive('SKU-E', 5)
      const other = await inventory.reserve.run(context({ baseUrl: sim.url }), { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-E', quantity: '2' }] }, undefined)
      await inventory.release(ctx, other)
      await sim.flushWebhooks()

      expect(sim.deliveries().map((delivery) => [delivery.body.type, delivery.status])).toEqual([
        ['shipment.shipped', 'delivered'],
        ['shipment.delivered', 'delivered'],
        ['stock.changed', 'delivered'],
        ['stock.changed', 'delivered'],
      ])
      expect(JSON.parse(receiver.received[0]!.body.toString('utf8'))).toMatchObject({
        type: 'shipment.shipped',
        reservation_id: reservation.externalId,
        reference: ctx.reference,
        carrier: 'ZTO',
        tracking_number: 'ZTO123',
        lines: [{ line_id: 'L1', sku: 'SKU-E', quantity: 4 }],
      })
      const events = receiver.received.map(ingest)
      expect(events).toEqual([
        { type: 'order.shipped', externalId: reservation.externalId, sourceVersion: 0, document: { carrier: 'ZTO', trackingNumber: 'ZTO123', lines: [{ sku: 'SKU-E', quantity: '4' }] } },
        { type: 'order.delivered', externalId: reservation.externalId, sourceVersion: 0, document: { at: expect.any(String) } },
        { type: 'stock.changed', externalId: '', sourceVersion: 3, document: { levels: [{ sku: 'SKU-E', available: '11' }] } },
        { type: 'stock.changed', externalId: '', sourceVersion: 4, document: { levels: [{ sku: 'SKU-E', available: '11' }] } },
      ])
      expect(new Set(receiver.received.map((delivery) => delivery.headers['webhook-id'])).size).toBe(4)
      expect(levelOf('SKU-E', sim)).toEqual({ sku: 'SKU-E', onHand: 11, reserved: 0, available: 11 })
    } finally {
      await sim.close()
      await receiver.close()
    }
  })

  it('ships and delivers by itself when asked to, and retries a failed delivery under the same webhook-id', async () => {
    const receiver = await startWebhookReceiver({ path: '/webhooks/demo-wms', statuses: [503] })
    const sim = await startWmsSimulator({ apiToken, stock: { 'SKU-E': 10 }, webhookUrl: receiver.url, webhookSecret, autoShipAfterMs: 20, autoDeliverAfterMs: 20, webhookRetryDelayMs: 10 })
    try {
      const reservation = await inventory.reserve.run(context({ baseUrl: sim.url }), { allowPartial: false, lines: [{ lineId: 'L1', sku: 'SKU-E', quantity: '1' }] }, undefined)

      await waitFor(() => sim.deliveries().filter((delivery) => delivery.status === 'delivered').length === 2, 'shipped and delivered events')

      expect(sim.reservations()[0]).toMatchObject({ id: reservation.externalId, status: 'delivered' })
      expect(sim.deliveries()[0]).toMatchObject({ attempts: 2, status: 'delivered', lastHttpStatus: 204 })
      expect(receiver.received[0]!.headers['webhook-id']).toBe(receiver.received[1]!.headers['webhook-id'])
      expect(receiver.received.slice(1).map(ingest).map((event) => [event.type, event.externalId])).toEqual([
        ['order.shipped', reservation.externalId],
        ['order.delivered', reservation.externalId],
      ])
    } finally {
      await sim.close()
      await receiver.close()
    }
  })

  it('names the order by our reference when the WMS has no reservation id, and refuses an event that names none', () => {
    const body = webhooks.bodySchema.parse({ type: 'shipment.delivered', sequence: 9, occurred_at: '2026-11-26T08:00:00.000Z', reference: 'ORD-1' })
    expect(webhooks.toEvent(body)).toEqual({ type: 'order.delivered', externalId: 'ref:ORD-1', sourceVersion: 0, document: {} })

    const nameless = webhooks.bodySchema.safeParse({ type: 'shipment.shipped', sequence: 9, occurred_at: '2026-11-26T08:00:00.000Z' })
    expect(nameless.success).toBe(false)
    expect(webhooks.bodySchema.safeParse({ type: 'shipment.lost', sequence: 9, occurred_at: 'x', reference: 'ORD-1' }).success).toBe(false)
  })
})
