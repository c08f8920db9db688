import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConnectorContext, Logger } from '../../src/connector-kit/index.ts'
import { demoWms, secretsSchema, settingsSchema, type DemoWmsSecrets, type DemoWmsSettings } from './index.ts'
import { startWmsSimulator, type WmsSimulator } from './simulator.ts'

const apiToken = 'test-wms-token'
const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }

let wms: WmsSimulator

beforeAll(async () => {
  wms = await startWmsSimulator({ apiToken, stock: { 'SKU-LAST': 10, 'SKU-ODD': 25, 'SKU-A': 5, 'SKU-B': 1, 'SKU-KEY': 100 } })
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

function levelOf(sku: string) {
  return wms.stock().find((level) => level.sku === sku)
}

describe('reservations', () => {
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
    const created = (await first.json()) as { id: string }
    expect(await second.json()).toEqual({ id: created.id, reference: 'ORD-key', lines: [{ sku: 'SKU-KEY', quantity: 4 }] })
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
})

describe('stock', () => {
  it('answers one SKU, 404s an unknown one and needs the token', async () => {
    const headers = { authorization: `Bearer ${apiToken}` }
    const one = await fetch(`${wms.url}/stock/SKU-A`, { headers })
    expect(await one.json()).toEqual({ sku: 'SKU-A', onHand: 5, reserved: 0, available: 5 })
    expect((await fetch(`${wms.url}/stock/SKU-NOPE`, { headers })).status).toBe(404)
    expect((await fetch(`${wms.url}/stock`)).status).toBe(401)
    const all = (await (await fetch(`${wms.url}/stock`, { headers })).json()) as { sku: string }[]
    expect(all.map((level) => level.sku)).toEqual(['SKU-A', 'SKU-B', 'SKU-KEY', 'SKU-LAST', 'SKU-ODD'])
  })

  it('starts with SKU-100 … SKU-109 at 1000 each by default', async () => {
    const defaults = await startWmsSimulator({ apiToken })
    try {
      expect(defaults.stock()).toEqual(Array.from({ length: 10 }, (_, i) => ({ sku: `SKU-${100 + i}`, onHand: 1000, reserved: 0, available: 1000 })))
    } finally {
      await defaults.close()
    }
  })
})

describe('the demo-wms connector', () => {
  function context(baseUrl: string, token = apiToken): ConnectorContext<DemoWmsSettings, DemoWmsSecrets> {
    return { connectionId: 'demo-wms', settings: settingsSchema.parse({ baseUrl }), secrets: secretsSchema.parse({ apiToken: token }), log: noopLogger }
  }

  it('passes its check against the simulator', async () => {
    await expect(demoWms.check(context(wms.url))).resolves.toBeUndefined()
  })

  it('classifies an answer through the kit', async () => {
    const ctx = context(wms.url)
    const error = await demoWms.check(context(`${wms.url}/missing`)).then(
      () => { throw new Error('expected the check to fail') },
      (err: unknown) => err,
    )
    expect(demoWms.classify(error, ctx)).toMatchObject({ kind: 'not_found', details: { connectorId: 'demo-wms', httpStatus: 404 } })
  })
})
