/**
 * A demo CRM connection that verifies HubSpot's v3 signature instead of Standard Webhooks
 * (`webhookVerification: { scheme: hubspot-v3 }`), through the real HTTP API: a delivery signed over
 * the URL it was posted to is stored and its order goes on; the same body delivered again (signed
 * afresh, as HubSpot retries) is a duplicate; a stale timestamp, another secret, a changed body or a
 * Standard Webhooks signature is refused with 401 and a reason, and none of them reaches the inbox.
 * Behind a proxy, the configured public URL is what is signed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDemoCrmSender, sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { signHubSpotV3, signStandardWebhook } from '../../src/connector-kit/index.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

const clientSecret = '5c1e2f7a-3b4d-4e8f-9a0b-1c2d3e4f5a6b'
const publicUrl = 'https://crm-hooks.example.com/orderbridge/hubspot'

describe('HubSpot v3 signatures on a demo CRM connection', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite', {
      configure: (config) => ({
        ...config,
        connections: [
          ...config.connections,
          { id: 'hubspot-crm', connector: 'demo-crm', settings: { webhookVerification: { scheme: 'hubspot-v3' } }, secrets: { hubspotClientSecret: clientSecret }, mappings: { inbound: 'demo-crm.to-canonical.order' } },
          { id: 'hubspot-proxied', connector: 'demo-crm', settings: { webhookVerification: { scheme: 'hubspot-v3', publicUrl } }, secrets: { hubspotClientSecret: clientSecret }, mappings: { inbound: 'demo-crm.to-canonical.order' } },
        ],
      }),
    })
  })
  afterAll(() => stack?.close())

  const url = (connection: string) => `${stack.url}/webhooks/${connection}`
  const body = (n: number, id = `SO-HS-${n}`) => JSON.stringify({ type: 'order.created', data: sampleOrder(n, id) })
  async function post(connection: string, payload: string, headers: Record<string, string>, query = '') {
    const response = await fetch(`${url(connection)}${query}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: payload })
    return { status: response.status, body: (await response.json()) as { status?: string; error?: { code: string; message: string } } }
  }
  const signed = (connection: string, payload: string, options: { at?: number; secret?: string; uri?: string } = {}) =>
    signHubSpotV3(options.secret ?? clientSecret, { method: 'POST', uri: options.uri ?? url(connection), body: payload }, options.at ?? Date.now())
  const stats = async (connection: string) => (await stack.api(`/api/v1/stats?connection=${connection}`)).body as { accepted: number; duplicate: number; rejected: number }
  const orderOf = async (connection: string, externalId: string) => (await stack.api(`/api/v1/orders?connection=${connection}&externalId=${externalId}`)).body.orders[0]

  it('stores a delivery signed over the URL it was posted to, and its order goes on', async () => {
    const sender = createDemoCrmSender({ webhookUrl: url('hubspot-crm'), secret: clientSecret, signature: 'hubspot-v3', retries: 0 })
    expect((await sender.send('order.created', sampleOrder(1, 'SO-HS-1'))).status).toBe(202)
    const order = await stack.waitFor(() => orderOf('hubspot-crm', 'SO-HS-1'), 'the order from the HubSpot-signed delivery')
    expect(order).toMatchObject({ connection: 'hubspot-crm', externalId: 'SO-HS-1' })
  })

  it('answers the same body delivered again, signed afresh as HubSpot retries, as a duplicate', async () => {
    const payload = body(2)
    expect((await post('hubspot-crm', payload, signed('hubspot-crm', payload, { at: Date.now() - 60_000 }))).status).toBe(202)
    expect(await post('hubspot-crm', payload, signed('hubspot-crm', payload))).toEqual({ status: 200, body: expect.objectContaining({ status: 'duplicate' }) })
  })

  it('verifies the query string as sent, with HubSpot\'s escapes decoded', async () => {
    const payload = body(3)
    const query = '?portalId=62515&source=a%3Ab%2Fc'
    expect((await post('hubspot-crm', payload, signed('hubspot-crm', payload, { uri: `${url('hubspot-crm')}${query}` }), query)).status).toBe(202)
  })

  it('refuses with 401 and a reason: a stale timestamp, another secret, a changed body, a Standard Webhooks signature; and stores none of them', async () => {
    const before = await stats('hubspot-crm')
    const payload = body(4)
    const stale = await post('hubspot-crm', payload, signed('hubspot-crm', payload, { at: Date.now() - 301_000 }))
    expect(stale).toEqual({ status: 401, body: { error: { code: 'invalid_signature', message: 'X-HubSpot-Request-Timestamp is older than 300s' } } })
    const otherSecret = await post('hubspot-crm', payload, signed('hubspot-crm', payload, { secret: 'not-the-client-secret' }))
    expect(otherSecret).toEqual({ status: 401, body: { error: { code: 'invalid_signature', message: 'X-HubSpot-Signature-v3 does not match the request' } } })
    const changed = await post('hubspot-crm', body(5), signed('hubspot-crm', payload))
    expect(changed.status).toBe(401)
    const standard = await post('hubspot-crm', payload, { ...signStandardWebhook(testCredentials.demoWebhookSecret, 'msg_std', Math.floor(Date.now() / 1000), payload) })
    expect(standard).toEqual({ status: 401, body: { error: { code: 'invalid_signature', message: 'missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header' } } })
    // Signed for another connection's URL.
    expect((await post('hubspot-crm', payload, signed('hubspot-proxied', payload))).status).toBe(401)

    const after = await stats('hubspot-crm')
    expect(after.accepted).toBe(before.accepted)
    expect(after.rejected - before.rejected).toBe(5)
    expect(await orderOf('hubspot-crm', 'SO-HS-4')).toBeUndefined()
    const { body: rejected } = await stack.api('/api/v1/deliveries/rejected?connection=hubspot-crm&limit=5')
    expect(rejected.rejected.map((r: { code: string }) => r.code)).toEqual(Array(5).fill('invalid_signature'))
  })

  it('behind a proxy, checks the signature over the configured public URL', async () => {
    const payload = body(6)
    expect((await post('hubspot-proxied', payload, signed('hubspot-proxied', payload))).status).toBe(401)
    expect((await post('hubspot-proxied', payload, signed('hubspot-proxied', payload, { uri: publicUrl }))).status).toBe(202)
  })

  it('leaves Standard Webhooks connections as they were', async () => {
    const payload = body(7)
    const standard = await post('demo-crm', payload, { ...signStandardWebhook(testCredentials.demoWebhookSecret, 'msg_hs_std_7', Math.floor(Date.now() / 1000), payload) })
    expect(standard.status).toBe(202)
    expect((await post('demo-crm', body(8), signed('demo-crm', body(8)))).status).toBe(401)
  })
})
