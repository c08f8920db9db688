import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

/**
 * HubSpot's v3 request signatures ("Validating requests" in HubSpot's developer docs), for sources
 * that sign the way HubSpot does instead of with Standard Webhooks:
 *
 * - `X-HubSpot-Request-Timestamp`: Unix time in milliseconds; a request older than 5 minutes is refused.
 * - `X-HubSpot-Signature-v3`: base64(HMAC-SHA256(client secret, method + URI + body + timestamp)),
 *   where the URI is the full URL HubSpot called (scheme, host, path, query) with these escapes
 *   decoded: %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B. Nothing else is decoded.
 *
 * The client secret is used as it is (its UTF-8 bytes), not base64-decoded. Pure: no I/O, no clock
 * unless none is given.
 */
export type HubSpotSignatureHeaders = {
  'x-hubspot-signature-v3': string
  'x-hubspot-request-timestamp': string
}

/** HubSpot's rule: a request whose timestamp is older than this is refused. */
export const hubSpotToleranceMs = 300_000

/** The escapes HubSpot decodes before it signs (its table); every other escape stays as sent. */
const decodedEscapes: Readonly<Record<string, string>> = {
  '3A': ':',
  '2F': '/',
  '3F': '?',
  '40': '@',
  '21': '!',
  '24': '$',
  '27': "'",
  '28': '(',
  '29': ')',
  '2A': '*',
  '2C': ',',
  '3B': ';',
}

/**
 * The URI as HubSpot signs it: the listed escapes decoded (hex digits in either case), in one pass,
 * so `%253A` stays `%253A`.
 */
export function hubSpotSignedUri(uri: string): string {
  return uri.replace(/%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)/gi, (_escape, hex: string) => decodedEscapes[hex.toUpperCase()]!)
}

export interface HubSpotRequest {
  /** The HTTP method, upper case as sent (`POST`). */
  method: string
  /** The full URL HubSpot called, e.g. `https://orderbridge.example.com/webhooks/crm?portal=1`, as sent (still escaped). */
  uri: string
  /** The raw body bytes. */
  body: Buffer | string
}

function signature(clientSecret: string, request: HubSpotRequest, timestamp: string): string {
  return createHmac('sha256', clientSecret).update(`${request.method}${hubSpotSignedUri(request.uri)}`, 'utf8').update(request.body).update(timestamp, 'utf8').digest('base64')
}

/** The headers HubSpot would send with this request at `timestampMs`: for tests and simulators. */
export function signHubSpotV3(clientSecret: string, request: HubSpotRequest, timestampMs: number): HubSpotSignatureHeaders {
  const timestamp = String(timestampMs)
  return { 'x-hubspot-signature-v3': signature(clientSecret, request, timestamp), 'x-hubspot-request-timestamp': timestamp }
}

export type HubSpotVerifyResult = { ok: true } | { ok: false; reason: string }

const headerValue = (value: string | string[] | undefined) => (Array.isArray(value) ? undefined : value)

/**
 * Checks the timestamp (not older than 5 minutes, nor further ahead than that: a clock that far off
 * is refused rather than trusted) and the signature, comparing in constant time.
 *
 * @example
 * const result = verifyHubSpotV3(secrets.hubspotClientSecret, { method: 'POST', uri: 'https://ob.example.com/webhooks/crm', body: raw }, req.headers)
 * if (!result.ok) reply.code(401).send({ error: result.reason })
 */
export function verifyHubSpotV3(
  clientSecret: string,
  request: HubSpotRequest,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  options: { nowMs?: number; toleranceMs?: number } = {},
): HubSpotVerifyResult {
  const given = headerValue(headers['x-hubspot-signature-v3'])
  const timestamp = headerValue(headers['x-hubspot-request-timestamp'])
  if (!given || !timestamp) return { ok: false, reason: 'missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header' }
  if (!/^\d{1,16}$/.test(timestamp)) return { ok: false, reason: 'X-HubSpot-Request-Timestamp is not a Unix time in milliseconds' }
  const now = options.nowMs ?? Date.now()
  const tolerance = options.toleranceMs ?? hubSpotToleranceMs
  const age = now - Number(timestamp)
  if (age > tolerance) return { ok: false, reason: `X-HubSpot-Request-Timestamp is older than ${tolerance / 1000}s` }
  if (-age > tolerance) return { ok: false, reason: `X-HubSpot-Request-Timestamp is more than ${tolerance / 1000}s ahead of this server's clock` }
  if (!clientSecret) return { ok: false, reason: 'no client secret to verify X-HubSpot-Signature-v3 with' }
  // The base64 text is compared, not its decoding: Node's decoder skips stray characters.
  const expected = Buffer.from(signature(clientSecret, request, timestamp), 'utf8')
  const received = Buffer.from(given.trim(), 'utf8')
  if (received.length === expected.length && timingSafeEqual(received, expected)) return { ok: true }
  return { ok: false, reason: 'X-HubSpot-Signature-v3 does not match the request' }
}

/**
 * A delivery id for the inbox when the sender sends none (HubSpot's signature headers carry no id,
 * and a retry is signed afresh): the body's SHA-256, so the same body delivered again is a duplicate.
 */
export function bodyDeliveryId(prefix: string, body: Buffer | string): string {
  return `${prefix}-${createHash('sha256').update(body).digest('hex').slice(0, 40)}`
}
