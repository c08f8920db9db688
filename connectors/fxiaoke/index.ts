/**
 * Fxiaoke CRM (纷享销客) as an order source and a writeback target.
 *
 * Orders come in two ways, which give the same events (id `${_id}:${last_modified_time}`):
 * - pushed by a CRM workflow or function in the open platform's signed format (callback.ts),
 * - polled from /cgi/crm/v2/data/query, because Fxiaoke documents no change webhook (poll.ts).
 * Status, the ERP number, the invoice and the shipment go back to configured SalesOrderObj fields
 * (writeback.ts); available stock goes to a configured field of the products (stock.ts).
 * Validation here is structural; the mapping decides what the fields mean.
 */
import { z } from 'zod'
import { WebhookRejected, defineConnector, type CustomWebhookCapability, type ReceivedDelivery } from '../../src/connector-kit/index.ts'
import { UndecryptableContent, callbackBodySchema, callbackSignature, decryptContent, signaturesMatch } from './callback.ts'
import { fxiaokeClient } from './client.ts'
import { classifyFxiaokeError } from './errors.ts'
import { fetchOrderChanges, writebackFieldNames } from './poll.ts'
import { parseFxiaokeJson, parsePushContent, pushEvents } from './records.ts'
import { fxiaokeConnectorId, secretsSchema, settingsSchema, type FxiaokeSecrets, type FxiaokeSettings } from './settings.ts'
import { pushStockLevels } from './stock.ts'
import { addNote, updateOrderStatus } from './writeback.ts'

export { fxiaokeConnectorId, secretsSchema, settingsSchema, type FxiaokeSecrets, type FxiaokeSettings } from './settings.ts'

function detailsOf(error: z.ZodError, prefix: string) {
  return error.issues.map((issue) => ({ path: [prefix, ...issue.path].filter((p) => p !== '').join('.'), message: issue.message }))
}

function parseJson(text: string, what: string): unknown {
  try {
    return parseFxiaokeJson(text)
  } catch {
    throw new WebhookRejected(400, 'invalid_json', `the ${what} is not JSON`)
  }
}

/**
 * Verifies and reads one push: the envelope, the timestamp window, the signature (constant time),
 * then the content (decrypted when the connection has an EncodingAESKey) as one order or a list.
 */
export function receiveFxiaokePush(delivery: { raw: Buffer; settings: FxiaokeSettings; secrets: FxiaokeSecrets; now?: number }): ReceivedDelivery {
  const { settings, secrets } = delivery
  if (secrets.callbackToken === undefined) throw new WebhookRejected(401, 'push_not_configured', 'this connection takes no pushes (it has no callbackToken)')
  const envelope = callbackBodySchema.safeParse(parseJson(delivery.raw.toString('utf8'), 'body'))
  if (!envelope.success) throw new WebhookRejected(400, 'invalid_envelope', 'the body is not {nonce, timeStamp, content, sig}', detailsOf(envelope.error, ''))
  const { nonce, timeStamp, content, sig } = envelope.data
  const skew = Math.abs((delivery.now ?? Date.now()) - Number(timeStamp))
  if (skew > settings.callback.toleranceMs) throw new WebhookRejected(401, 'timestamp_out_of_tolerance', 'the timeStamp is too far from now')
  if (!signaturesMatch(callbackSignature(secrets.callbackToken, timeStamp, nonce, content), sig)) throw new WebhookRejected(401, 'invalid_signature', 'the signature does not match')
  let plain = content
  if (secrets.encodingAesKey !== undefined) {
    try {
      plain = decryptContent(content, secrets.encodingAesKey)
    } catch (err) {
      if (err instanceof UndecryptableContent) throw new WebhookRejected(400, 'undecryptable_content', 'the content cannot be decrypted with this connection\'s EncodingAESKey')
      throw err
    }
  }
  const orders = parsePushContent(parseJson(plain, 'content'))
  if (!orders.success) throw new WebhookRejected(422, 'invalid_order', 'the content is not a SalesOrderObj with its lines', detailsOf(orders.error, 'content'))
  return { events: pushEvents(orders.data, { lineObject: settings.objects.line, writebackFields: writebackFieldNames(settings) }) }
}

export const fxiaokePush: CustomWebhookCapability<FxiaokeSettings, FxiaokeSecrets> = {
  verification: 'custom',
  contentTypes: ['application/json'],
  receive: (delivery) => receiveFxiaokePush(delivery),
  // The platform takes exactly this body as success; anything else is a failure it retries.
  acknowledge: () => ({ contentType: 'text/plain; charset=utf-8', body: 'success' }),
  refuse: (rejection) => ({
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify({ error: { code: rejection.code, message: rejection.message, ...(rejection.details.length ? { details: rejection.details } : {}) } }),
  }),
}

export const fxiaoke = defineConnector<FxiaokeSettings, FxiaokeSecrets>({
  manifest: {
    id: fxiaokeConnectorId,
    version: '1.1.0',
    displayName: 'Fxiaoke CRM (纷享销客)',
    roles: ['crm'],
    settingsSchema,
    secretsSchema,
    // The Open API allows about 100 calls per 20 s per interface.
    limits: { concurrency: 4 },
  },
  // A push-only connection has no API credentials: nothing to call.
  check: async (ctx) => {
    if (ctx.secrets.appId !== undefined) await fxiaokeClient(ctx).login()
  },
  classify: (err, ctx) => classifyFxiaokeError(err, ctx.settings),
  customWebhooks: fxiaokePush,
  poll: {
    resource: 'SalesOrderObj',
    intervalMs: (settings) => settings.poll?.intervalMs,
    fetchChanges: fetchOrderChanges,
  },
  crm: {
    // Something to write to: status fields, or product stock fields.
    enabled: (settings) => settings.writeback !== undefined || settings.stock !== undefined,
    updateOrderStatus,
    addNote,
    pushStockLevels,
  },
})
