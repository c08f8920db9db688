import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { WebhookRejected, signStandardWebhook } from '../../src/connector-kit/index.ts'
import { missingLines } from './client.ts'
import { restWmsEventToInbound } from './events.ts'
import { readFieldMap, readPath, writeFieldMap } from './field-paths.ts'
import { restWms, settingsSchema } from './index.ts'
import { addDecimal, canonicalDecimal, compareDecimal, quantityFromWms, quantityToWms, subtractDecimal } from './quantities.ts'
import { sampleConnection, sampleSecrets, sampleSettings, testWebhookSecret, type RawSettings } from './test-support.ts'

/** The issues of parsing the sample settings after `change`, as `path: message`. */
function issuesAfter(change: (raw: RawSettings) => void): string[] {
  const raw = structuredClone(sampleConnection.settings)
  change(raw)
  const result = settingsSchema.safeParse(raw)
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
}

describe('the sample configuration', () => {
  it('parses, and is the one in README.md', () => {
    expect(settingsSchema.safeParse(sampleConnection.settings).success).toBe(true)
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8')
    const block = /<!-- sample-connection -->\s*```yaml\n([\s\S]*?)```/.exec(readme)
    expect(block, 'README.md has the sample connection block').not.toBeNull()
    expect(parse(block![1]!)).toEqual(sampleConnection)
  })
})

describe('a configuration that cannot work is refused when it is loaded, with its field path', () => {
  it('a missing path', () => {
    expect(issuesAfter((raw) => delete raw.reservation.externalId)).toEqual(['reservation.externalId: Invalid input: expected string, received undefined'])
    expect(issuesAfter((raw) => delete raw.reserve.body.fields['lines[].quantity'])).toEqual([
      'reserve.body.fields.lines[].quantity: Invalid input: expected string, received undefined',
    ])
    expect(issuesAfter((raw) => delete raw.stock.answer['levels[].available'])).toEqual(['stock.answer.levels[].available: Invalid input: expected string, received undefined'])
  })

  it('a path that is not a field path, or a list field paired with a scalar', () => {
    expect(issuesAfter((raw) => (raw.reservation.externalId = 'data..id'))).toEqual([
      'reservation.externalId: must be a field path such as data.id, items[].itemCode or items[0].qty',
    ])
    expect(issuesAfter((raw) => (raw.reservation.externalId = 'items[].id'))).toContain('reservation.externalId: must name one value, without []')
    expect(issuesAfter((raw) => (raw.reserve.body.fields['lines[].quantity'] = 'lines[].qty'))).toEqual([
      'reserve.body.fields.lines[].quantity: every list field must go through the same list: lines[].qty is not in items[]',
    ])
    expect(issuesAfter((raw) => (raw.reserve.body.fields.reference = '__proto__.polluted'))).toEqual(['reserve.body.fields.reference: must not name __proto__, prototype or constructor'])
  })

  it('an unknown or typo\'d field', () => {
    expect(issuesAfter((raw) => (raw.reserve.body.fields['lines[].qty'] = 'items[].qty'))).toEqual(['reserve.body.fields: Unrecognized key: "lines[].qty"'])
  })

  it('a path template that could leave baseUrl or lacks its placeholder', () => {
    expect(issuesAfter((raw) => (raw.release.path = '//evil.example/{externalId}'))).toEqual(['release.path: must be a path that starts with a single "/"'])
    expect(issuesAfter((raw) => (raw.release.path = '/reservations/release'))).toEqual(['release.path: must contain the {externalId} placeholder'])
    expect(issuesAfter((raw) => (raw.find.path = '/reservations?ref={ref}'))).toEqual([
      'find.path: unknown placeholder {ref}; this path may use {reference}',
      'find.path: must contain the {reference} placeholder',
    ])
  })

  it('settings that contradict each other', () => {
    expect(
      issuesAfter((raw) => {
        raw.find = 'none'
        raw.reserve.idempotencyHeader = 'none'
      }),
    ).toEqual(['reserve.idempotencyHeader: a WMS with neither an idempotency key nor a lookup by reference could reserve twice when an answer is lost: configure one'])
    expect(issuesAfter((raw) => delete raw.reserve.body.fields.reference)).toEqual(['reserve.body.fields.reference: a lookup by reference needs our reference in the reservation: set it'])
    expect(issuesAfter((raw) => delete raw.reservation['lines[].reserved'])).toEqual(['reservation.lines[].reserved: partial reservations need to read what each line holds'])
    expect(issuesAfter((raw) => delete raw.reservation['lines[].sku'])).toEqual(['reservation.lines[].sku: the other lines[] fields need lines[].sku'])
    expect(issuesAfter((raw) => delete raw.webhooks['levels[].available'])).toEqual(['webhooks.levels[].available: stock events need levels[].sku and levels[].available'])
    expect(issuesAfter((raw) => (raw.insufficientStock.when = [{ field: 'code' }]))).toEqual(['insufficientStock.when.0.equals: field and equals go together'])
  })

  it('fills in defaults for a minimal configuration', () => {
    const minimal = settingsSchema.parse({
      baseUrl: 'https://wms.example.com/api',
      stock: { path: '/stock?sku={skus}', answer: { 'levels[].sku': '[].sku', 'levels[].available': '[].free' } },
      reservation: { externalId: 'id' },
      reserve: { path: '/reservations', body: { fields: { 'lines[].sku': 'lines[].sku', 'lines[].quantity': 'lines[].qty' } } },
      release: { method: 'DELETE', path: '/reservations/{externalId}' },
    })
    expect(minimal).toMatchObject({
      authentication: { type: 'bearer' },
      timeoutMs: 10_000,
      quantities: 'integer',
      stock: { method: 'GET', skuSeparator: ',', maxBatchSize: 50 },
      reserve: { method: 'POST', idempotencyHeader: 'Idempotency-Key', partial: 'unsupported', answerAt: '' },
      update: 'none',
      find: 'none',
      release: { alreadyReleased: [{ status: [404, 410] }] },
      insufficientStock: { when: [{ status: 409 }] },
      errors: [],
    })
  })
})

describe('field maps', () => {
  it('write our fields into the WMS\'s names, lists included, and read them back', () => {
    const map = { reference: 'order.clientRef', 'lines[].sku': 'order.items[].itemCode', 'lines[].quantity': 'order.items[].qty' }
    const body = writeFieldMap(map, { reference: 'ORD-1', lines: [{ sku: 'A', quantity: 2 }, { sku: 'B', quantity: 3 }] })
    expect(body).toEqual({ order: { clientRef: 'ORD-1', items: [{ itemCode: 'A', qty: 2 }, { itemCode: 'B', qty: 3 }] } })
    expect(readFieldMap(map, body)).toEqual({ reference: 'ORD-1', lines: [{ sku: 'A', quantity: 2 }, { sku: 'B', quantity: 3 }] })
  })

  it('read from a list answer and by index, never through the prototype', () => {
    expect(readFieldMap({ 'levels[].sku': '[].code' }, [{ code: 'A' }, { code: 'B' }])).toEqual({ levels: [{ sku: 'A' }, { sku: 'B' }] })
    expect(readPath({ data: [{ id: 7 }] }, 'data[0].id')).toBe(7)
    expect(readPath({}, 'constructor')).toBeUndefined()
  })
})

describe('quantities', () => {
  it('are exact decimal strings both ways', () => {
    expect(canonicalDecimal('003.500')).toBe('3.5')
    expect(quantityFromWms(2.5)).toBe('2.5')
    expect(quantityFromWms('10.000')).toBe('10')
    expect(quantityFromWms(1e21)).toBeUndefined()
    expect(quantityFromWms(true)).toBeUndefined()
    expect(quantityToWms('3.000', 'integer')).toEqual({ value: 3 })
    expect(quantityToWms('2.5', 'integer')).toEqual({ problem: 'the WMS takes whole units, not 2.5' })
    expect(quantityToWms('2.5', 'number')).toEqual({ value: 2.5 })
    expect(quantityToWms('0.12345678901234567', 'number')).toEqual({ problem: '0.12345678901234567 cannot be sent exactly as a JSON number' })
    expect(quantityToWms('2.50', 'string')).toEqual({ value: '2.5' })
    expect(compareDecimal('0.1', '0.10')).toBe(0)
    expect(addDecimal('0.1', '0.2')).toBe('0.3')
    expect(subtractDecimal('1', '1.25')).toBe('-0.25')
  })

  it('a SKU short on several lines is filled in line order', () => {
    const request = { allowPartial: false, lines: [{ lineId: '1', sku: 'A', quantity: '2' }, { lineId: '2', sku: 'A', quantity: '2' }, { lineId: '3', sku: 'B', quantity: '1' }] }
    expect(missingLines(request, new Map([['A', '3']]), 'fine')).toEqual([{ lineId: '2', sku: 'A', requested: '2', available: '1' }])
    expect(missingLines(request, new Map([['A', '3']]), 'none')).toEqual([
      { lineId: '2', sku: 'A', requested: '2', available: '1' },
      { lineId: '3', sku: 'B', requested: '1', available: '0' },
    ])
  })
})

describe('webhook events read through the configured mapping', () => {
  const mapping = sampleSettings('http://127.0.0.1:1').webhooks!

  function rejectionOf(run: () => unknown): WebhookRejected {
    try {
      run()
    } catch (err) {
      if (err instanceof WebhookRejected) return err
      throw err
    }
    throw new Error('expected a rejection')
  }

  it('names the order by our reference (ref:) when the body has no reservation id', () => {
    expect(restWmsEventToInbound(mapping, { eventType: 'SHIPMENT_DELIVERED', payload: { clientRef: 'ORD-1' } })).toEqual({
      type: 'order.delivered',
      externalId: 'ref:ORD-1',
      sourceVersion: 0,
      document: {},
    })
    expect(restWmsEventToInbound(mapping, { eventType: 'SHIPMENT_DISPATCHED', payload: { reservationId: 42, trackingNo: 'T1' } })).toEqual({
      type: 'order.shipped',
      externalId: '42',
      sourceVersion: 0,
      document: { trackingNumber: 'T1' },
    })
  })

  it('refuses what it cannot read, naming the WMS\'s field path', () => {
    expect(rejectionOf(() => restWmsEventToInbound(mapping, { eventType: 'SHIPMENT_DISPATCHED', payload: {} }))).toMatchObject({
      status: 422,
      details: [{ path: 'payload.reservationId', message: 'needs payload.reservationId or payload.clientRef' }],
    })
    expect(rejectionOf(() => restWmsEventToInbound(mapping, { eventType: 'INVENTORY_CHANGED', seq: 3, payload: { items: [{ itemCode: 'A', available: 'lots' }] } }))).toMatchObject({
      details: [{ path: 'payload.items[0].available', message: 'must be a decimal quantity' }],
    })
    expect(rejectionOf(() => restWmsEventToInbound(mapping, { eventType: 'INVENTORY_CHANGED', seq: -1, payload: { items: [{ itemCode: 'A', available: 1 }] } }))).toMatchObject({
      details: [{ path: 'seq' }],
    })
    expect(rejectionOf(() => restWmsEventToInbound(mapping, { payload: {} }))).toMatchObject({ details: [{ path: 'eventType', message: 'must name the event type' }] })
  })

  it('refuses an unmapped event type, or acknowledges it without an event when told to ignore it', () => {
    expect(rejectionOf(() => restWmsEventToInbound(mapping, { eventType: 'RESERVATION_CREATED' }))).toMatchObject({
      details: [{ path: 'eventType', message: 'must be one of SHIPMENT_DISPATCHED, SHIPMENT_DELIVERED, INVENTORY_CHANGED' }],
    })
    expect(restWmsEventToInbound({ ...mapping, unknownTypes: 'ignore' }, { eventType: 'RESERVATION_CREATED' })).toBeUndefined()
  })

  it('clamps oversold stock to 0 and takes the sequence as the version', () => {
    expect(restWmsEventToInbound(mapping, { eventType: 'INVENTORY_CHANGED', seq: '17', payload: { items: [{ itemCode: 'A', available: -2 }, { itemCode: 'B', available: '1.50' }] } })).toEqual({
      type: 'stock.changed',
      externalId: '',
      sourceVersion: 17,
      document: { levels: [{ sku: 'A', available: '0' }, { sku: 'B', available: '1.5' }] },
    })
  })

  it('a signed delivery becomes one event under its webhook-id; a JSON error is 400', () => {
    const settings = sampleSettings('http://127.0.0.1:1')
    const raw = Buffer.from(JSON.stringify({ eventType: 'SHIPMENT_DELIVERED', payload: { reservationId: 'RES-1', deliveredAt: '2026-11-27T10:00:00Z' } }))
    const headers = signStandardWebhook(testWebhookSecret, 'msg_1', Math.floor(Date.now() / 1000), raw)
    expect(restWms.customWebhooks!.receive({ raw, headers: { ...headers }, settings, secrets: sampleSecrets() })).toEqual({
      events: [{ type: 'order.delivered', externalId: 'RES-1', sourceVersion: 0, document: { at: '2026-11-27T10:00:00Z' }, eventId: 'msg_1' }],
    })
    const bad = Buffer.from('{not json')
    const badHeaders = signStandardWebhook(testWebhookSecret, 'msg_2', Math.floor(Date.now() / 1000), bad)
    expect(rejectionOf(() => restWms.customWebhooks!.receive({ raw: bad, headers: { ...badHeaders }, settings, secrets: sampleSecrets() }))).toMatchObject({ status: 400, code: 'malformed_json' })
    const stale = signStandardWebhook(testWebhookSecret, 'msg_3', Math.floor(Date.now() / 1000) - 3600, raw)
    expect(rejectionOf(() => restWms.customWebhooks!.receive({ raw, headers: { ...stale }, settings, secrets: sampleSecrets() }))).toMatchObject({ status: 401 })
  })
})
