import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { WebhookRejected, type OperationContext, type SyncFailure } from '../../src/connector-kit/index.ts'
import { restWms, type RestWmsSecrets, type RestWmsSettings } from './index.ts'
import { startAcmeWmsSimulator, type AcmeWmsSimulator } from './simulator.ts'
import {
  operationContext,
  sampleConnection,
  sampleSecrets,
  sampleSettings,
  testApiKey,
  testWebhookSecret,
  waitFor,
} from './test-support.ts'
import { startWebhookReceiver, type ReceivedWebhook } from '../../test/support/webhook-receiver.ts'
import { freePort } from '../../src/shared/free-port.ts'

const inventory = restWms.inventory!
const webhooks = restWms.customWebhooks!

let wms: AcmeWmsSimulator
let settings: RestWmsSettings

beforeAll(async () => {
  wms = await startAcmeWmsSimulator({
    apiKey: testApiKey,
    basicAuth: { username: 'orderbridge', password: 'basic-secret' },
    stock: {
      'SKU-LAST': 10, 'SKU-A': 5, 'SKU-B': 1, 'SKU-KEY': 100, 'SKU-DUEL': 5, 'SKU-C': 500, 'SKU-P': 4, 'SKU-Q': 10,
      'SKU-1': 1, 'SKU-2': 2, 'SKU-3': 3, 'SKU-4': 4, 'SKU-5': 5,
    },
  })
  settings = sampleSettings(wms.url)
})

afterEach(() => {
  wms.faults.reset()
})

afterAll(async () => {
  await wms.close()
})

const api = (path: string) => `${wms.url}/api/v2${path}`

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(api(path), { method: 'POST', headers: { 'x-api-key': testApiKey, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
}

function levelOf(code: string, simulator: AcmeWmsSimulator = wms) {
  return simulator.stock().find((level) => level.itemCode === code)
}

function context(overrides: Partial<OperationContext<RestWmsSettings, RestWmsSecrets>> = {}) {
  return operationContext(settings, overrides)
}

function requestsSince(count: number) {
  return wms.requests().slice(count)
}

async function failureOf(promise: Promise<unknown>, ctx = context()): Promise<SyncFailure> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail')
    },
    (err: unknown) => err,
  )
  return restWms.classify(error, ctx)
}

const one = (sku: string, quantity: string, lineId = 'L1') => ({ allowPartial: false, lines: [{ lineId, sku, quantity }] })

describe('the simulator (a third-party WMS)', () => {
  it('never oversells when 20 reservations race for the last 10 units, and names the shortage in its own words', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post('/reservations', { clientRef: `SIM-race-${i}`, items: [{ itemCode: 'SKU-LAST', qty: 1 }] })))

    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(10)
    expect(answers.filter((answer) => answer.status === 409)).toHaveLength(10)
    expect(levelOf('SKU-LAST')).toMatchObject({ onHand: 10, allocated: 10, available: 0 })
    expect(await answers.find((answer) => answer.status === 409)!.json()).toEqual({
      code: 'INSUFFICIENT_STOCK',
      message: expect.any(String),
      shortages: [{ itemCode: 'SKU-LAST', available: 0 }],
    })
  })

  it('replays the first answer for a repeated Idempotency-Key and refuses the key with another body', async () => {
    const body = { clientRef: 'SIM-key', items: [{ itemCode: 'SKU-KEY', qty: 4 }] }
    const first = await post('/reservations', body, { 'idempotency-key': 'SIM-key-1' })
    const second = await post('/reservations', body, { 'idempotency-key': 'SIM-key-1' })

    expect(first.status).toBe(201)
    expect(second.headers.get('idempotent-replayed')).toBe('true')
    const created = (await first.json()) as { data: { id: string } }
    expect(created).toMatchObject({ data: { id: expect.stringMatching(/^RES-\d+$/), clientRef: 'SIM-key', status: 'OPEN', items: [{ itemCode: 'SKU-KEY', qty: 4, allocated: 4 }] } })
    expect(await second.json()).toEqual(created)
    expect((await post('/reservations', { ...body, items: [{ itemCode: 'SKU-KEY', qty: 5 }] }, { 'idempotency-key': 'SIM-key-1' })).status).toBe(422)
    expect(levelOf('SKU-KEY')).toMatchObject({ allocated: 4 })
  })

  it('answers a second release with 409 ALREADY_RELEASED, as many WMSs do', async () => {
    const { data } = (await (await post('/reservations', { clientRef: 'SIM-rel', items: [{ itemCode: 'SKU-C', qty: 1 }] })).json()) as { data: { id: string } }
    expect((await post(`/reservations/${data.id}/release`, {})).status).toBe(200)
    const again = await post(`/reservations/${data.id}/release`, {})
    expect(again.status).toBe(409)
    expect(await again.json()).toMatchObject({ code: 'ALREADY_RELEASED' })
  })

  it('needs credentials', async () => {
    expect((await fetch(api('/inventory'))).status).toBe(401)
    expect((await fetch(api('/inventory'), { headers: { 'x-api-key': 'wrong' } })).status).toBe(401)
  })
})

describe('the rest-wms connector, configured for the simulator', () => {
  it('passes its check; a wrong key is auth and the message holds no key', async () => {
    await expect(restWms.check(context())).resolves.toBeUndefined()
    const ctx = context({ secrets: sampleSecrets({ apiKey: 'wrong-key' }) })
    const failure = await failureOf(restWms.check(ctx), ctx)
    expect(failure).toMatchObject({ kind: 'auth', details: { httpStatus: 401 } })
    expect(failure.message).not.toContain('wrong-key')
  })

  it('authenticates with HTTP Basic or a bearer token when configured so', async () => {
    const basic = sampleSettings(wms.url, (raw) => {
      raw.authentication = { type: 'basic', username: 'orderbridge' }
    })
    await expect(restWms.check(operationContext(basic, { secrets: sampleSecrets({ password: 'basic-secret' }) }))).resolves.toBeUndefined()
    const bearer = sampleSettings(wms.url, (raw) => {
      raw.authentication = { type: 'bearer' }
    })
    await expect(inventory.getStock(operationContext(bearer, { secrets: sampleSecrets({ token: testApiKey }) }), ['SKU-A'])).resolves.toHaveLength(1)
    // A missing secret is a configuration problem, found before anything is sent.
    await expect(failureOf(restWms.check(operationContext(bearer)))).resolves.toMatchObject({ kind: 'config', message: 'authentication type bearer needs the secret "token"' })
  })

  describe('inventory.getStock', () => {
    it('answers decimal strings for the SKUs the WMS knows, from its own field names', async () => {
      await expect(inventory.getStock(context(), ['SKU-B', 'SKU-A', 'SKU-NOPE', 'SKU-A'])).resolves.toEqual([
        { sku: 'SKU-A', available: '5', onHand: '5', warehouse: 'WH-1' },
        { sku: 'SKU-B', available: '1', onHand: '1', warehouse: 'WH-1' },
      ])
      const before = wms.requests().length
      await expect(inventory.getStock(context(), [])).resolves.toEqual([])
      expect(wms.requests().length).toBe(before)
    })

    it('asks in batches of the configured size, one after another', async () => {
      const batched = sampleSettings(wms.url, (raw) => {
        raw.stock.maxBatchSize = 2
      })
      const before = wms.requests().length

      const levels = await inventory.getStock(operationContext(batched), ['SKU-1', 'SKU-2', 'SKU-3', 'SKU-4', 'SKU-5'])

      expect(levels.map((level) => [level.sku, level.available])).toEqual([['SKU-1', '1'], ['SKU-2', '2'], ['SKU-3', '3'], ['SKU-4', '4'], ['SKU-5', '5']])
      expect(requestsSince(before).map((request) => request.url)).toEqual([
        '/api/v2/inventory?itemCodes=SKU-1,SKU-2',
        '/api/v2/inventory?itemCodes=SKU-3,SKU-4',
        '/api/v2/inventory?itemCodes=SKU-5',
      ])
    })

    it('a batch larger than the WMS takes is refused by the WMS as data', async () => {
      const tooBig = sampleSettings(wms.url, (raw) => {
        raw.stock.maxBatchSize = 50
      })
      const skus = Array.from({ length: 21 }, (_, i) => `SKU-X${i}`)
      expect(await failureOf(inventory.getStock(operationContext(tooBig), skus))).toMatchObject({ kind: 'data', details: { httpStatus: 400 } })
    })
  })

  describe('inventory.reserve', () => {
    it('reserves every line under our idempotency key, in the WMS\'s field names, and answers per line in decimal strings', async () => {
      const ctx = context()
      const before = wms.requests().length

      const reservation = await inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: '1', sku: 'SKU-C', quantity: '2' }, { lineId: '2', sku: 'SKU-C', quantity: '3.000' }] }, undefined)

      expect(reservation).toEqual({
        externalId: expect.stringMatching(/^RES-\d+$/),
        lines: [
          { lineId: '1', sku: 'SKU-C', requested: '2', reserved: '2' },
          { lineId: '2', sku: 'SKU-C', requested: '3', reserved: '3' },
        ],
      })
      expect(requestsSince(before)).toEqual([
        {
          method: 'POST',
          url: '/api/v2/reservations',
          idempotencyKey: ctx.idempotencyKey,
          body: {
            warehouse: 'WH-1',
            clientRef: ctx.reference,
            allowBackorder: false,
            items: [{ lineRef: '1', itemCode: 'SKU-C', qty: 2 }, { lineRef: '2', itemCode: 'SKU-C', qty: 3 }],
          },
        },
      ])
      expect(wms.reservations().find((r) => r.id === reservation.externalId)).toMatchObject({ clientRef: ctx.reference, status: 'OPEN' })
    })

    it('lets exactly one of two concurrent reservations have the last units and oversells nothing', async () => {
      const [first, second] = [context(), context()]
      const request = one('SKU-DUEL', '3')

      const outcomes = await Promise.allSettled([inventory.reserve.run(first, request, undefined), inventory.reserve.run(second, request, undefined)])

      expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1)
      const lost = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')!
      expect(restWms.classify(lost.reason, first)).toMatchObject({ kind: 'data', details: { missing: [{ lineId: 'L1', sku: 'SKU-DUEL', requested: '3', available: '2' }] } })
      expect(levelOf('SKU-DUEL')).toMatchObject({ onHand: 5, allocated: 3, available: 2 })
    })

    it('returns the same reservation when retried with the same idempotency key, and reserves once', async () => {
      const ctx = context()
      const reservedBefore = levelOf('SKU-KEY')!.allocated

      const first = await inventory.reserve.run(ctx, one('SKU-KEY', '6'), undefined)
      const retried = await inventory.reserve.run(ctx, one('SKU-KEY', '6'), undefined)

      expect(retried).toEqual(first)
      expect(levelOf('SKU-KEY')!.allocated).toBe(reservedBefore + 6)
      expect(wms.reservations().filter((r) => r.clientRef === ctx.reference)).toHaveLength(1)
    })

    it('is all-or-nothing: short stock is a data failure naming each short line, and nothing is reserved', async () => {
      const ctx = context()
      const before = levelOf('SKU-P')!

      const failure = await failureOf(
        inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: '1', sku: 'SKU-P', quantity: '3' }, { lineId: '2', sku: 'SKU-P', quantity: '2' }, { lineId: '3', sku: 'SKU-Q', quantity: '1' }] }, undefined),
        ctx,
      )

      expect(failure).toMatchObject({ kind: 'data', details: { connectorId: 'rest-wms', httpStatus: 409, missing: [{ lineId: '2', sku: 'SKU-P', requested: '2', available: '1' }] } })
      expect(failure.retryable).toBe(false)
      expect(failure.message).toBe('not enough stock: SKU-P (line 2) requested 2, available 1')
      expect(levelOf('SKU-P')).toEqual(before)
      expect(wms.reservations().filter((r) => r.clientRef === ctx.reference)).toHaveLength(0)
    })

    it('asks the stock endpoint what is available when the WMS only says no', async () => {
      const terse = sampleSettings(wms.url, (raw) => {
        delete raw.insufficientStock['shortages[].sku']
        delete raw.insufficientStock['shortages[].available']
      })
      const ctx = operationContext(terse)
      const failure = await failureOf(inventory.reserve.run(ctx, { allowPartial: false, lines: [{ lineId: '1', sku: 'SKU-A', quantity: '2' }, { lineId: '2', sku: 'SKU-B', quantity: '2' }] }, undefined), ctx)
      expect(failure).toMatchObject({ kind: 'data', details: { missing: [{ lineId: '2', sku: 'SKU-B', requested: '2', available: '1' }] } })
    })

    it('reserves what there is when partial lines are allowed, through the configured field', async () => {
      const ctx = context()
      wms.receive('SKU-PART', 4)
      const before = wms.requests().length

      const reservation = await inventory.reserve.run(
        ctx,
        { allowPartial: true, lines: [{ lineId: '1', sku: 'SKU-PART', quantity: '3' }, { lineId: '2', sku: 'SKU-PART', quantity: '3' }, { lineId: '3', sku: 'SKU-C', quantity: '1' }] },
        undefined,
      )

      expect(reservation.lines).toEqual([
        { lineId: '1', sku: 'SKU-PART', requested: '3', reserved: '3' },
        { lineId: '2', sku: 'SKU-PART', requested: '3', reserved: '1' },
        { lineId: '3', sku: 'SKU-C', requested: '1', reserved: '1' },
      ])
      expect(requestsSince(before)[0]!.body).toMatchObject({ allowBackorder: true })
      expect(levelOf('SKU-PART')).toMatchObject({ allocated: 4, available: 0 })
    })

    it('refuses partial reservations as config when the WMS cannot make them, before sending anything', async () => {
      const allOrNothing = sampleSettings(wms.url, (raw) => {
        raw.reserve.partial = 'unsupported'
      })
      const before = wms.requests().length
      const failure = await failureOf(inventory.reserve.run(operationContext(allOrNothing), { ...one('SKU-C', '1'), allowPartial: true }, undefined))
      expect(failure).toMatchObject({ kind: 'config', retryable: false })
      expect(wms.requests().length).toBe(before)
    })

    it('refuses a fractional quantity for a WMS that counts whole units, before sending anything', async () => {
      const failure = await failureOf(inventory.reserve.run(context(), one('SKU-C', '2.5'), undefined))
      expect(failure).toMatchObject({ kind: 'data', message: 'line L1: the WMS takes whole units, not 2.5' })
    })

    it('adjusts an existing reservation through the update endpoint, and keeps it when the new quantities do not fit', async () => {
      const ctx = context()
      wms.receive('SKU-ADJ', 10)
      const created = await inventory.reserve.run(ctx, one('SKU-ADJ', '6'), undefined)
      const before = wms.requests().length

      // Its own 6 units count as free: 10 fit.
      const grown = await inventory.reserve.run(ctx, one('SKU-ADJ', '10'), created)
      expect(grown).toEqual({ externalId: created.externalId, lines: [{ lineId: 'L1', sku: 'SKU-ADJ', requested: '10', reserved: '10' }] })
      expect(requestsSince(before)[0]).toMatchObject({ method: 'PATCH', url: `/api/v2/reservations/${created.externalId}`, body: { items: [{ lineRef: 'L1', itemCode: 'SKU-ADJ', qty: 10 }] } })
      expect(levelOf('SKU-ADJ')).toMatchObject({ allocated: 10, available: 0 })

      const failure = await failureOf(inventory.reserve.run(ctx, one('SKU-ADJ', '11'), created), ctx)
      expect(failure).toMatchObject({ kind: 'data', details: { missing: [{ lineId: 'L1', sku: 'SKU-ADJ', requested: '11', available: '10' }] } })
      expect(levelOf('SKU-ADJ')).toMatchObject({ allocated: 10 })

      const shrunk = await inventory.reserve.run(ctx, one('SKU-ADJ', '4'), created)
      expect(shrunk.lines[0]).toMatchObject({ reserved: '4' })
      expect(levelOf('SKU-ADJ')).toMatchObject({ allocated: 4, available: 6 })
    })

    it('a WMS without an update endpoint cannot adjust: data', async () => {
      const noUpdate = sampleSettings(wms.url, (raw) => {
        raw.update = 'none'
      })
      const ctx = operationContext(noUpdate)
      const created = await inventory.reserve.run(ctx, one('SKU-C', '1'), undefined)
      expect(await failureOf(inventory.reserve.run(ctx, one('SKU-C', '2'), created), ctx)).toMatchObject({ kind: 'data' })
    })

    it('after a lost answer it looks the reservation up by reference and adopts it instead of reserving twice', async () => {
      const ctx = context()
      const created = await inventory.reserve.run(ctx, one('SKU-KEY', '2'), undefined)

      const same = await inventory.reserve.run({ ...ctx, idempotencyKey: `${ctx.idempotencyKey}-retry`, mayHaveWritten: true }, one('SKU-KEY', '2'), undefined)
      expect(same).toEqual(created)

      // A later revision whose link was never settled adjusts the one it finds.
      const changed = await inventory.reserve.run({ ...ctx, idempotencyKey: `${ctx.idempotencyKey}-v2`, mayHaveWritten: true }, one('SKU-KEY', '3'), undefined)
      expect(changed).toEqual({ externalId: created.externalId, lines: [{ lineId: 'L1', sku: 'SKU-KEY', requested: '3', reserved: '3' }] })
      expect(wms.reservations().filter((r) => r.clientRef === ctx.reference)).toHaveLength(1)
    })

    it('a timeout is unknown_outcome, and the retry finds the reservation instead of reserving twice', async () => {
      const slow = sampleSettings(wms.url, (raw) => {
        raw.timeoutMs = 100
      })
      const ctx = operationContext(slow)
      wms.faults.delayMs(300)
      const failure = await failureOf(inventory.reserve.run(ctx, one('SKU-C', '1'), undefined), ctx)
      expect(failure.kind).toBe('unknown_outcome')
      wms.faults.reset()

      await waitFor(() => wms.reservations().some((r) => r.clientRef === ctx.reference), 'the delayed reservation')
      const retried = await inventory.reserve.run({ ...ctx, settings, mayHaveWritten: true }, one('SKU-C', '1'), undefined)
      expect(wms.reservations().filter((r) => r.clientRef === ctx.reference).map((r) => r.id)).toEqual([retried.externalId])
    })

    it('an answer without the configured id path is unknown_outcome, and says which path', async () => {
      const wrongId = sampleSettings(wms.url, (raw) => {
        raw.reservation.externalId = 'reservationNumber'
        raw.find = 'none'
      })
      const failure = await failureOf(inventory.reserve.run(operationContext(wrongId), one('SKU-C', '1'), undefined))
      expect(failure.kind).toBe('unknown_outcome')
      expect(failure.message).toContain('data.reservationNumber')
    })
  })

  describe('inventory.findReservation and release', () => {
    it('finds the open reservation by reference, releases it however often asked, then finds nothing', async () => {
      const ctx = context({ reference: 'ORD rest/å&x=1' })
      const created = await inventory.reserve.run(ctx, one('SKU-C', '5'), undefined)
      const allocatedBefore = levelOf('SKU-C')!.allocated

      await expect(inventory.findReservation(ctx, ctx.reference)).resolves.toEqual({ externalId: created.externalId, lines: [{ lineId: 'L1', sku: 'SKU-C', requested: '5', reserved: '5' }] })
      await expect(inventory.findReservation(ctx, 'ORD rest/å')).resolves.toBeUndefined()

      await inventory.release(ctx, created)
      // The WMS answers 409 ALREADY_RELEASED, which the configuration counts as released.
      await inventory.release(ctx, created)

      expect(levelOf('SKU-C')!.allocated).toBe(allocatedBefore - 5)
      await expect(inventory.findReservation(ctx, ctx.reference)).resolves.toBeUndefined()
    })

    it('a release of a reservation the WMS does not know (404) counts as released', async () => {
      await expect(inventory.release(context(), { externalId: 'RES-999999' })).resolves.toBeUndefined()
    })

    it('refuses to release or change a shipped reservation, as data (a configured override)', async () => {
      const ctx = context()
      const created = await inventory.reserve.run(ctx, one('SKU-C', '1'), undefined)
      wms.ship(created.externalId)

      expect(await failureOf(inventory.release(ctx, created), ctx)).toMatchObject({ kind: 'data', message: 'the reservation has shipped or was released and cannot change', details: { httpStatus: 409 } })
      expect(await failureOf(inventory.reserve.run(ctx, one('SKU-C', '2'), created), ctx)).toMatchObject({ kind: 'data', details: { httpStatus: 409 } })
      // A retry after a lost answer adopts the shipped reservation as it is.
      await expect(inventory.reserve.run({ ...ctx, mayHaveWritten: true }, one('SKU-C', '2'), undefined)).resolves.toMatchObject({ externalId: created.externalId })
    })
  })

  describe('classify', () => {
    it('a 503 is transient and reserves nothing; a 429 with Retry-After is rate_limited', async () => {
      const ctx = context()
      const before = wms.reservations().length
      wms.faults.failNext(1, 503, undefined, { 'retry-after': '2' })
      expect(await failureOf(inventory.reserve.run(ctx, one('SKU-C', '1'), undefined), ctx)).toMatchObject({ kind: 'transient', details: { httpStatus: 503, retryAfterMs: 2000 } })
      expect(wms.reservations().length).toBe(before)

      wms.faults.failNext(1, 429, { code: 'RATE_LIMITED' }, { 'retry-after': '7' })
      expect(await failureOf(inventory.getStock(ctx, ['SKU-C']), ctx)).toMatchObject({ kind: 'rate_limited', details: { retryAfterMs: 7000 } })
    })

    it('applies configured overrides: a 409 RESERVATION_LOCKED is a conflict to retry, with its safe message', async () => {
      wms.faults.failNext(1, 409, { code: 'RESERVATION_LOCKED', message: 'internal lock 0x7f' })
      const failure = await failureOf(inventory.release(context(), { externalId: 'RES-1' }))
      expect(failure).toMatchObject({ kind: 'conflict', message: 'the WMS is working on the reservation; try again shortly', details: { httpStatus: 409 } })
    })

    it('an override with a field applies to a 2xx answer too', async () => {
      const strict = sampleSettings(wms.url, (raw) => {
        raw.errors = [{ field: 'meta.count', equals: 0, kind: 'not_found', message: 'no such items' }]
      })
      const ctx = operationContext(strict)
      expect(await failureOf(inventory.getStock(ctx, ['SKU-NOPE']), ctx)).toMatchObject({ kind: 'not_found', message: 'no such items', details: { httpStatus: 200 } })
    })

    it('a refused connection is transient', async () => {
      const ctx = operationContext(sampleSettings(`http://127.0.0.1:${await freePort()}`))
      const failure = await failureOf(inventory.getStock(ctx, ['SKU-C']), ctx)
      expect(failure.kind).toBe('transient')
      expect(failure.message).toContain('ECONNREFUSED')
    })
  })
})

describe('events', () => {
  /** What orderbridge's ingest does with a delivery to a custom-webhooks connection. */
  function receive(delivery: ReceivedWebhook, secrets = sampleSecrets()) {
    return webhooks.receive({ raw: delivery.body, headers: delivery.headers as Record<string, string>, settings, secrets })
  }

  it('reads the simulator\'s signed shipment and stock events through the configured paths', async () => {
    const receiver = await startWebhookReceiver({ path: '/webhooks/acme-wms' })
    const sim = await startAcmeWmsSimulator({ apiKey: testApiKey, stock: { 'SKU-E': 10 }, webhookUrl: receiver.url, webhookSecret: testWebhookSecret, carrier: 'SF Express' })
    try {
      const simSettings = sampleSettings(sim.url)
      const ctx = operationContext(simSettings)
      const reservation = await inventory.reserve.run(ctx, one('SKU-E', '4', '1'), undefined)
      const shipped = await fetch(`${sim.url}/api/v2/reservations/${reservation.externalId}/ship`, {
        method: 'POST',
        headers: { 'x-api-key': testApiKey, 'content-type': 'application/json' },
        body: JSON.stringify({ trackingNo: 'SF123' }),
      })
      expect(shipped.status).toBe(200)
      sim.ship(reservation.externalId) // shipping again sends nothing more
      sim.deliver(reservation.externalId)
      sim.receive('SKU-E', 5)
      await sim.flushWebhooks()

      expect(JSON.parse(receiver.received[0]!.body.toString('utf8'))).toMatchObject({
        eventType: 'SHIPMENT_DISPATCHED',
        payload: { reservationId: reservation.externalId, clientRef: ctx.reference, carrierName: 'SF Express', trackingNo: 'SF123', items: [{ lineRef: '1', itemCode: 'SKU-E', qty: 4 }] },
      })
      const events = receiver.received.map((delivery) => receive(delivery).events)
      expect(events).toEqual([
        [{ type: 'order.shipped', externalId: reservation.externalId, sourceVersion: 0, document: { carrier: 'SF Express', trackingNumber: 'SF123', lines: [{ sku: 'SKU-E', quantity: '4' }] }, eventId: receiver.received[0]!.headers['webhook-id'] }],
        [{ type: 'order.delivered', externalId: reservation.externalId, sourceVersion: 0, document: { at: expect.any(String) }, eventId: receiver.received[1]!.headers['webhook-id'] }],
        [{ type: 'stock.changed', externalId: '', sourceVersion: 3, document: { levels: [{ sku: 'SKU-E', available: '11' }] }, eventId: receiver.received[2]!.headers['webhook-id'] }],
      ])
      expect(webhooks.acknowledge({ events: events[0]! })).toEqual({ contentType: 'application/json', body: '{"status":"accepted","events":1}' })
    } finally {
      await sim.close()
      await receiver.close()
    }
  })

  it('refuses a delivery with a bad signature or without a secret (401), and says so in orderbridge\'s error format', async () => {
    const receiver = await startWebhookReceiver({ path: '/webhooks/acme-wms' })
    const sim = await startAcmeWmsSimulator({ apiKey: testApiKey, stock: { 'SKU-E': 1 }, webhookUrl: receiver.url, webhookSecret: 'whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==' })
    try {
      sim.receive('SKU-E', 1)
      await sim.flushWebhooks()
      const delivery = receiver.received[0]!
      const rejection = (() => {
        try {
          receive(delivery)
        } catch (err) {
          return err
        }
        throw new Error('expected a rejection')
      })()
      expect(rejection).toBeInstanceOf(WebhookRejected)
      expect(rejection).toMatchObject({ status: 401, code: 'invalid_signature' })
      expect(JSON.parse(webhooks.refuse(rejection as WebhookRejected).body)).toEqual({ error: { code: 'invalid_signature', message: 'no webhook-signature entry matches' } })
      expect(() => receive(delivery, sampleSecrets({ webhookSecret: undefined }))).toThrow(expect.objectContaining({ status: 401 }))
    } finally {
      await sim.close()
      await receiver.close()
    }
  })
})

describeConnectorConformance('rest-wms', async () => {
  const sim = await startAcmeWmsSimulator({ apiKey: testApiKey })
  return {
    connector: restWms,
    // The sample configuration as a connections file holds it, pointed at this simulator.
    ctx: { settings: { ...sampleConnection.settings, baseUrl: `${sim.url}/api/v2` }, secrets: { apiKey: testApiKey, webhookSecret: testWebhookSecret } },
    sampleReservation: () => ({ allowPartial: false, lines: [{ lineId: '1', sku: 'SKU-100', quantity: '2' }, { lineId: '2', sku: 'SKU-101', quantity: '1' }] }),
    faults: { failNext: (status, headers) => sim.faults.failNext(1, status, undefined, headers) },
    reset: () => sim.faults.reset(),
    close: () => sim.close(),
  }
})
