import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'

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
