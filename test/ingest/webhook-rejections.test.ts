/**
 * Every refused delivery gets a clear answer (status, stable code, field paths) and is recorded
 * for operators; nothing refused reaches the inbox.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { signStandardWebhook } from '../../src/connector-kit/index.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

describe('webhook deliveries that are refused', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite')
  })
  afterAll(() => stack?.close())

  const now = () => Math.floor(Date.now() / 1000)
  async function post(body: string, options: { id?: string; timestamp?: number; secret?: string; contentType?: string | null; connection?: string } = {}) {
    const id = options.id ?? `msg_${Math.random().toString(36).slice(2)}`
    const headers: Record<string, string> = { ...signStandardWebhook(options.secret ?? testCredentials.demoWebhookSecret, id, options.timestamp ?? now(), body) }
    if (options.contentType !== null) headers['content-type'] = options.contentType ?? 'application/json'
    const response = await fetch(`${stack.url}/webhooks/${options.connection ?? 'demo-crm'}`, { method: 'POST', headers, body })
    return { status: response.status, body: (await response.json()) as { error: { code: string; message: string; details?: { path: string; message: string }[] } } }
  }
  const valid = (n: number) => JSON.stringify({ type: 'order.created', data: sampleOrder(n, `SO-R-${n}`) })

  it('401 for a signature made with another secret', async () => {
    const answer = await post(valid(1), { id: 'msg_bad_sig', secret: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD' })
    expect(answer).toEqual({ status: 401, body: { error: { code: 'invalid_signature', message: 'no webhook-signature entry matches' } } })
  })

  it('401 for a timestamp outside the five-minute window', async () => {
    const answer = await post(valid(2), { timestamp: now() - 301 })
    expect(answer.status).toBe(401)
    expect(answer.body.error.message).toBe('webhook-timestamp is outside the 300s tolerance')
  })

  it('401 when the signature headers are missing', async () => {
    const response = await fetch(`${stack.url}/webhooks/demo-crm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: valid(3) })
    expect(response.status).toBe(401)
  })

  it('415 for a body that is not JSON by its content type', async () => {
    const answer = await post('<order/>', { contentType: 'application/xml' })
    expect(answer.status).toBe(415)
    expect(answer.body.error.code).toBe('unsupported_media_type')
  })

  it('400 for malformed JSON', async () => {
    const answer = await post('{"type": "order.created", "data": {')
    expect(answer.status).toBe(400)
    expect(answer.body.error.code).toBe('malformed_json')
  })

  it('413 for a body over the limit', async () => {
    const answer = await post(JSON.stringify({ type: 'order.created', data: { padding: 'x'.repeat(1_100_000) } }))
    expect(answer.status).toBe(413)
    expect(answer.body.error.code).toBe('body_too_large')
  })

  it('422 naming every field that is wrong', async () => {
    const data = { ...sampleOrder(4, 'SO-R-4'), currency: 'yuan', items: [{ product_code: 'SKU-1', qty: 2, price: 199.5 }] }
    const answer = await post(JSON.stringify({ type: 'order.shipped', data }), { id: 'msg_invalid_doc' })
    expect(answer.status).toBe(422)
    expect(answer.body.error.code).toBe('validation_failed')
    expect(answer.body.error.details?.map((d) => d.path).sort()).toEqual(['data.currency', 'data.items[0].price', 'type'])
    expect(answer.body.error.details?.find((d) => d.path === 'data.items[0].price')?.message).toBe('Invalid input: expected string, received number')
  })

  it('404 for a connection that does not exist', async () => {
    const answer = await post(valid(5), { connection: 'no-such-crm' })
    expect(answer.status).toBe(404)
    expect(answer.body.error.code).toBe('unknown_connection')
  })

  it('records every refusal for operators, and none of them reached the inbox', async () => {
    const { status, body } = await stack.api('/api/v1/deliveries/rejected?limit=100')
    expect(status).toBe(200)
    const codes = body.rejected.map((r: { code: string }) => r.code).sort()
    expect(codes).toEqual(['body_too_large', 'invalid_signature', 'invalid_signature', 'invalid_signature', 'malformed_json', 'unknown_connection', 'unsupported_media_type', 'validation_failed'])
    const invalid = body.rejected.find((r: { eventId: string }) => r.eventId === 'msg_invalid_doc')
    expect(invalid).toMatchObject({ connectionId: 'demo-crm', httpStatus: 422, details: expect.arrayContaining([{ path: 'data.currency', message: expect.any(String) }]) })
    const { body: orders } = await stack.api('/api/v1/orders')
    expect(orders.orders).toEqual([])
  })

  it('the rejection list is for ops and admins only', async () => {
    const { body: viewer } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'dashboard', role: 'viewer' } })
    expect((await stack.api('/api/v1/deliveries/rejected', { key: viewer.key })).status).toBe(403)
    expect((await stack.api('/api/v1/deliveries/rejected', { key: 'obk_not_a_key' })).status).toBe(401)
  })
})
