import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { bodyDeliveryId, verifyHubSpotV3 } from './hubspot-signatures.ts'

/**
 * Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over `id.timestamp.body`, keyed with the
 * base64-decoded secret after its `whsec_` prefix, sent as a space-separated list of `v1,<sig>`.
 */
export interface WebhookHeaders {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

export const defaultToleranceSeconds = 300

// Importing the key is most of an HMAC's cost on a small body; a connection has one or two secrets.
const keys = new Map<string, KeyObject>()

function secretKey(secret: string): KeyObject {
  let key = keys.get(secret)
  if (!key) {
    const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret
    const bytes = Buffer.from(encoded, 'base64')
    if (bytes.length === 0) throw new Error('webhook secret is empty')
    key = createSecretKey(bytes)
    if (keys.size >= 1000) keys.clear()
    keys.set(secret, key)
  }
  return key
}

function sign(key: KeyObject, id: string, timestamp: string, body: Buffer | string): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest()
}

export function signStandardWebhook(secret: string, id: string, timestampSeconds: number, body: Buffer | string): WebhookHeaders {
  const timestamp = String(timestampSeconds)
  return {
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': `v1,${sign(secretKey(secret), id, timestamp, body).toString('base64')}`,
  }
}

export type VerifyResult = { ok: true } | { ok: false; reason: string }

/** Checks the signature in constant time and the timestamp against a tolerance window. */
export function verifyStandardWebhook(
  secret: string,
  headers: Partial<Record<keyof WebhookHeaders, string | string[] | undefined>>,
  body: Buffer,
  options: { nowSeconds?: number; toleranceSeconds?: number } = {},
): VerifyResult {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const signatures = headers['webhook-signature']
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') {
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' }
  }
  if (!/^\d+$/.test(timestamp)) return { ok: false, reason: 'webhook-timestamp is not a Unix time in seconds' }
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000)
  const tolerance = options.toleranceSeconds ?? defaultToleranceSeconds
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    return { ok: false, reason: `webhook-timestamp is outside the ${tolerance}s tolerance` }
  }
  const expected = sign(secretKey(secret), id, timestamp, body)
  for (const entry of signatures.split(' ')) {
    const [version, value] = entry.split(',', 2)
    if (version !== 'v1' || !value) continue
    const given = Buffer.from(value, 'base64')
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true }
  }
  return { ok: false, reason: 'no webhook-signature entry matches' }
}

// ---------------------------------------------------------------------------------------------
// Which scheme a connection verifies with: Standard Webhooks, or HubSpot's v3 signature.

/**
 * The `webhookVerification` setting of a connection whose connector takes `webhooks`: which signature
 * its deliveries carry. Standard Webhooks (the default) uses the secret `webhookSecret`; HubSpot's v3
 * signature (hubspot-signatures.ts) uses the secret `hubspotClientSecret`. A connector offers the
 * choice by putting this schema in its settings schema under `webhookVerification`.
 *
 * @example
 * export const settingsSchema = z.object({ baseUrl: z.url(), webhookVerification: webhookVerificationSchema.optional() })
 */
export const webhookVerificationSchema = z.discriminatedUnion('scheme', [
  z.object({ scheme: z.literal('standard-webhooks') }).describe('Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature; secret webhookSecret'),
  z
    .object({
      scheme: z.literal('hubspot-v3'),
      publicUrl: z
        .url({ protocol: /^https?$/ })
        .refine((url) => !url.includes('?') && !url.includes('#'), 'the URL without a query string: the query of each request is appended as it arrives')
        .optional()
        .describe(
          'The URL the sender posts to, as configured there (e.g. https://orderbridge.example.com/webhooks/hubspot-crm): HubSpot signs the URL it called. Needed behind a proxy or TLS terminator; without it the URL is rebuilt from the request (its protocol and Host header).',
        ),
    })
    .describe('HubSpot v3: X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp (ms, at most 5 minutes old); secret hubspotClientSecret'),
])
export type WebhookVerification = z.infer<typeof webhookVerificationSchema>

/** One delivery as the ingest route received it, before anything was parsed. */
export interface SignedDelivery {
  method: string
  /** The path and query as received (`/webhooks/crm?x=1`), still escaped. */
  url: string
  /** `protocol://host` as this server saw it, for a URI rebuilt without `publicUrl`. */
  origin: string
  headers: Readonly<Record<string, string | string[] | undefined>>
  body: Buffer
}

/** Verified: the id the inbox deduplicates the delivery by. Refused: why, safe to answer the sender. */
export type DeliveryVerifyResult = { ok: true; deliveryId: string } | { ok: false; reason: string }

/** The URI a HubSpot-style sender signed: the configured public URL with the request's query, or the request's own URL. */
export function signedUriOf(choice: Extract<WebhookVerification, { scheme: 'hubspot-v3' }>, delivery: Pick<SignedDelivery, 'url' | 'origin'>): string {
  if (!choice.publicUrl) return `${delivery.origin}${delivery.url}`
  const query = delivery.url.indexOf('?')
  return query === -1 ? choice.publicUrl : `${choice.publicUrl}${delivery.url.slice(query)}`
}

/**
 * Verifies a delivery with the scheme the connection's settings choose (`webhookVerification`; Standard
 * Webhooks when unset). A Standard Webhooks delivery is known by its `webhook-id`; a HubSpot-signed
 * one, which carries no id, by its body's hash.
 */
export function verifyWebhookSignature(
  choice: WebhookVerification | undefined,
  secrets: { webhookSecret?: string | undefined; hubspotClientSecret?: string | undefined },
  delivery: SignedDelivery,
  options: { nowMs?: number } = {},
): DeliveryVerifyResult {
  if (choice?.scheme === 'hubspot-v3') {
    if (!secrets.hubspotClientSecret) return { ok: false, reason: 'this connection verifies HubSpot v3 signatures but has no hubspotClientSecret configured, so no delivery can be verified' }
    const verified = verifyHubSpotV3(secrets.hubspotClientSecret, { method: delivery.method, uri: signedUriOf(choice, delivery), body: delivery.body }, delivery.headers, options.nowMs !== undefined ? { nowMs: options.nowMs } : {})
    return verified.ok ? { ok: true, deliveryId: bodyDeliveryId('hubspot-v3', delivery.body) } : verified
  }
  if (!secrets.webhookSecret) return { ok: false, reason: 'this connection has no webhookSecret configured, so no delivery can be verified' }
  const verified = verifyStandardWebhook(secrets.webhookSecret, delivery.headers as Record<string, string>, delivery.body, options.nowMs !== undefined ? { nowSeconds: Math.floor(options.nowMs / 1000) } : {})
  return verified.ok ? { ok: true, deliveryId: delivery.headers['webhook-id'] as string } : verified
}
