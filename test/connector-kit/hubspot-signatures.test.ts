/**
 * HubSpot's v3 request signatures, checked against vectors built by hand from HubSpot's documented
 * recipe ("Validating requests": base64(HMAC-SHA256(client secret, method + URI + body + timestamp)),
 * the URI with %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B decoded, timestamps in ms, at most 5
 * minutes old). The expected values were computed outside this code (Python's hmac), from the
 * decoded source strings written out below.
 */
import { describe, expect, it } from 'vitest'
import { hubSpotSignedUri, signHubSpotV3, verifyHubSpotV3, verifyWebhookSignature, type SignedDelivery } from '../../src/connector-kit/index.ts'

const secret = 'yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy'
const timestamp = 1564113600000

// Source string: POSThttps://www.example.com/webhook_uri{"example_field":"example_value"}1564113600000
const plain = { method: 'POST', uri: 'https://www.example.com/webhook_uri', body: '{"example_field":"example_value"}', signature: 'eT0ip2TKVpsIi1vb5C2Uu42eNdHL+oTE3NRZOF67O2U=' }

// As sent, every listed escape (and two that must stay: %20 and the double-encoded %253A), with a UTF-8 body.
// Source string: POSThttps://www.example.com/webhook_uri?portal=62515&name=a:b/c?d@e!f$g'h(i)j*k,l;m%20n%253A[{…"name":"Jörg"}]1564113600000
const escaped = {
  method: 'POST',
  uri: 'https://www.example.com/webhook_uri?portal=62515&name=a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29j%2Ak%2Cl%3Bm%20n%253A',
  body: '[{"eventId":1,"subscriptionType":"contact.creation","name":"Jörg"}]',
  signature: 'khUgFO+5NcHeG3zqn8asBk+MpkXIedqLKE9pmbpYK3k=',
}

const headers = (signature: string, ts: number | string = timestamp) => ({ 'x-hubspot-signature-v3': signature, 'x-hubspot-request-timestamp': String(ts) })

describe('HubSpot v3 signatures', () => {
  it('signs the documented recipe', () => {
    expect(signHubSpotV3(secret, plain, timestamp)).toEqual(headers(plain.signature))
    expect(signHubSpotV3(secret, escaped, timestamp)['x-hubspot-signature-v3']).toBe(escaped.signature)
  })

  it('decodes exactly the escapes HubSpot lists, in either case, once', () => {
    expect(hubSpotSignedUri(escaped.uri)).toBe("https://www.example.com/webhook_uri?portal=62515&name=a:b/c?d@e!f$g'h(i)j*k,l;m%20n%253A")
    expect(hubSpotSignedUri('/a%3a%2f%7E%2B')).toBe('/a:/%7E%2B')
  })

  it('verifies a request up to 5 minutes old, and the raw body as bytes', () => {
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature), { nowMs: timestamp })).toEqual({ ok: true })
    expect(verifyHubSpotV3(secret, { ...escaped, body: Buffer.from(escaped.body) }, headers(escaped.signature), { nowMs: timestamp + 300_000 })).toEqual({ ok: true })
  })

  it('refuses a request older than 5 minutes, or as far ahead', () => {
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature), { nowMs: timestamp + 300_001 })).toEqual({ ok: false, reason: 'X-HubSpot-Request-Timestamp is older than 300s' })
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature), { nowMs: timestamp - 300_001 }).ok).toBe(false)
  })

  it('refuses another secret, body, URI, method or timestamp', () => {
    const now = { nowMs: timestamp }
    const mismatch = { ok: false, reason: 'X-HubSpot-Signature-v3 does not match the request' }
    expect(verifyHubSpotV3('another-secret', plain, headers(plain.signature), now)).toEqual(mismatch)
    expect(verifyHubSpotV3(secret, { ...plain, body: `${plain.body} ` }, headers(plain.signature), now)).toEqual(mismatch)
    expect(verifyHubSpotV3(secret, { ...plain, uri: 'http://www.example.com/webhook_uri' }, headers(plain.signature), now)).toEqual(mismatch)
    expect(verifyHubSpotV3(secret, { ...plain, method: 'PUT' }, headers(plain.signature), now)).toEqual(mismatch)
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature, timestamp + 1), now)).toEqual(mismatch)
  })

  it('compares the signature text, not a lenient decoding of it', () => {
    const now = { nowMs: timestamp }
    // Node's base64 decoder would skip the "!" and the space; the text comparison does not.
    expect(verifyHubSpotV3(secret, plain, headers(`${plain.signature.slice(0, 10)}!${plain.signature.slice(10)}`), now).ok).toBe(false)
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature.replace('+', ' ')), now).ok).toBe(false)
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature.slice(0, -1)), now).ok).toBe(false)
  })

  it('says which header is missing or malformed', () => {
    expect(verifyHubSpotV3(secret, plain, { 'x-hubspot-signature-v3': plain.signature })).toEqual({ ok: false, reason: 'missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header' })
    expect(verifyHubSpotV3(secret, plain, headers(plain.signature, '2019-07-26T04:00:00Z'))).toEqual({ ok: false, reason: 'X-HubSpot-Request-Timestamp is not a Unix time in milliseconds' })
    expect(verifyHubSpotV3(secret, plain, { ...headers(plain.signature), 'x-hubspot-signature-v3': [plain.signature, plain.signature] }, { nowMs: timestamp }).ok).toBe(false)
  })
})

describe('verifyWebhookSignature: the scheme a connection chooses', () => {
  const delivery = (extra: Partial<SignedDelivery> = {}): SignedDelivery => ({
    method: 'POST',
    url: '/webhook_uri',
    origin: 'https://www.example.com',
    headers: headers(plain.signature),
    body: Buffer.from(plain.body),
    ...extra,
  })
  const now = { nowMs: timestamp }

  it('rebuilds the URI from the request, or takes the configured public URL with the request\'s query', () => {
    expect(verifyWebhookSignature({ scheme: 'hubspot-v3' }, { hubspotClientSecret: secret }, delivery(), now)).toMatchObject({ ok: true })
    // Behind a proxy: the request arrives as http://10.0.0.5/internal/hook, HubSpot signed the public URL.
    const proxied = delivery({ url: '/internal/hook', origin: 'http://10.0.0.5' })
    expect(verifyWebhookSignature({ scheme: 'hubspot-v3' }, { hubspotClientSecret: secret }, proxied, now).ok).toBe(false)
    expect(verifyWebhookSignature({ scheme: 'hubspot-v3', publicUrl: 'https://www.example.com/webhook_uri' }, { hubspotClientSecret: secret }, proxied, now)).toMatchObject({ ok: true })
    const query = escaped.uri.slice(escaped.uri.indexOf('?'))
    const withQuery = delivery({ url: `/internal/hook${query}`, headers: headers(escaped.signature), body: Buffer.from(escaped.body) })
    expect(verifyWebhookSignature({ scheme: 'hubspot-v3', publicUrl: 'https://www.example.com/webhook_uri' }, { hubspotClientSecret: secret }, withQuery, now)).toMatchObject({ ok: true })
  })

  it('knows a HubSpot-signed delivery by its body, whenever it was signed', () => {
    const first = verifyWebhookSignature({ scheme: 'hubspot-v3' }, { hubspotClientSecret: secret }, delivery(), now)
    const resent = signHubSpotV3(secret, plain, timestamp + 60_000)
    const again = verifyWebhookSignature({ scheme: 'hubspot-v3' }, { hubspotClientSecret: secret }, delivery({ headers: resent }), { nowMs: timestamp + 60_000 })
    expect(first.ok && again.ok && first.deliveryId === again.deliveryId).toBe(true)
    expect(first).toMatchObject({ deliveryId: expect.stringMatching(/^hubspot-v3-[0-9a-f]{40}$/) })
  })

  it('refuses with a reason when the chosen scheme\'s secret is missing, or its headers are absent', () => {
    expect(verifyWebhookSignature({ scheme: 'hubspot-v3' }, { webhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, delivery(), now)).toEqual({ ok: false, reason: expect.stringContaining('no hubspotClientSecret configured') })
    expect(verifyWebhookSignature(undefined, { hubspotClientSecret: secret }, delivery(), now)).toEqual({ ok: false, reason: expect.stringContaining('no webhookSecret configured') })
    // A HubSpot-signed delivery to a Standard Webhooks connection: its headers are not there.
    expect(verifyWebhookSignature(undefined, { webhookSecret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, delivery(), now)).toEqual({ ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' })
  })
})
