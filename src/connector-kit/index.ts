/**
 * The connector kit: everything a connector may import. Connectors import nothing else from src/.
 */
export * from './connector.ts'
export * from './failure.ts'
export { failureKindForStatus, parseRetryAfter } from './http-status.ts'
export {
  createHttpClient,
  httpClientPerConnection,
  classifyHttpError,
  recordExchanges,
  withExchangeCapture,
  isSecretName,
  secretValuesOf,
  redactedMarker,
  type HttpClientOptions,
  type HttpExchange,
  type ExchangeRecordOptions,
} from './http-client.ts'
export {
  signStandardWebhook,
  verifyStandardWebhook,
  verifyWebhookSignature,
  webhookVerificationSchema,
  signedUriOf,
  type WebhookHeaders,
  type WebhookVerification,
  type SignedDelivery,
  type DeliveryVerifyResult,
} from './standard-webhooks.ts'
export { signHubSpotV3, verifyHubSpotV3, hubSpotSignedUri, hubSpotToleranceMs, bodyDeliveryId, type HubSpotRequest, type HubSpotSignatureHeaders, type HubSpotVerifyResult } from './hubspot-signatures.ts'
export { canonicalJson } from '../shared/canonical-json.ts'
export { instantOfWallClock, wallClockAt, type WallClock } from '../shared/zoned-time.ts'
export { addDecimals, compareDecimals, isDecimalString, multiplyDecimals, roundDecimal, subtractDecimals, trimDecimal } from '../shared/decimal.ts'
export * from './xml.ts'
export * from './session-cache.ts'
