/**
 * POST /webhooks/:connection — verify the signature on the raw body, parse, validate, commit to the
 * inbox, then answer. Nothing is acknowledged before it is durable, and every refusal is recorded.
 * Calls no connector I/O: a connector contributes its body schema here, or, for a vendor's own
 * delivery format (`customWebhooks`, e.g. Salesforce's SOAP outbound messages), a synchronous
 * `receive()` that verifies and parses the raw body, and the answers the vendor expects.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { verifyWebhookSignature, WebhookRejected, type CustomWebhookCapability, type ReceivedDelivery, type WebhookVerification } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { errorBody } from '../shared/http-errors.ts'
import type { InboxWriter } from './inbox-writer.ts'
import { recordRejection, type Rejection } from './rejections.ts'

export interface IngestDeps {
  db: Database
  connections: ConnectionRegistry
  inbox: InboxWriter
  bodyLimit: number
}

const jsonContentType = /^application\/([\w.+-]*\+)?json\b/i

export const ingestRoutes: FastifyPluginAsync<IngestDeps> = async (app, deps) => {
  // The signature covers the exact bytes, so the body is kept raw and parsed here, after verifying.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.bodyLimit }, (_req, body, done) => done(null, body))

  async function reject(reply: FastifyReply, r: Rejection) {
    await recordRejection(deps.db, r)
    reply.log.info({ connectionId: r.connectionId, eventId: r.eventId, code: r.code }, 'webhook rejected')
    return reply.code(r.httpStatus).send(errorBody(r.code, r.message, r.details))
  }

  /** A refusal in the vendor's own words (e.g. a SOAP fault), recorded like every other one. */
  async function refuseCustom(reply: FastifyReply, custom: CustomWebhookCapability<unknown, unknown>, r: Rejection) {
    await recordRejection(deps.db, r)
    reply.log.info({ connectionId: r.connectionId, code: r.code }, 'webhook rejected')
    const status = r.httpStatus === 401 || r.httpStatus === 415 || r.httpStatus === 422 ? r.httpStatus : 400
    const answer = custom.refuse(new WebhookRejected(status, r.code, r.message, r.details ?? []))
    return reply.code(r.httpStatus).header('content-type', answer.contentType).send(answer.body)
  }

  /**
   * A delivery in a vendor's own format: the connector verifies and parses it, every event it holds
   * is committed to the inbox (each under its own event id, so a redelivered event is a duplicate and
   * a delivery mixing new and old events stores only the new ones), and only then is it acknowledged.
   */
  async function receiveCustom(req: FastifyRequest, reply: FastifyReply, connection: Connection, custom: CustomWebhookCapability<unknown, unknown>) {
    const connectionId = connection.id
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    const contentType = req.headers['content-type'] ?? ''
    const mediaType = contentType.split(';')[0]!.trim().toLowerCase()
    if (!custom.contentTypes.some((t) => t.toLowerCase() === mediaType)) {
      return refuseCustom(reply, custom, { connectionId, httpStatus: 415, code: 'unsupported_media_type', message: `expected ${custom.contentTypes.join(' or ')}, got ${contentType || 'no content-type'}` })
    }
    const headers = Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]))
    let delivery: ReceivedDelivery
    try {
      delivery = custom.receive({ raw, headers, settings: connection.settings, secrets: connection.secrets })
    } catch (err) {
      if (!(err instanceof WebhookRejected)) throw err
      // The body is kept only for a document refused after the delivery was verified, so it can be fixed and resent.
      const body = err.status === 422 ? raw.toString('utf8') : undefined
      return refuseCustom(reply, custom, { connectionId, httpStatus: err.status, code: err.code, message: err.message, details: [...err.details], ...(body !== undefined ? { body } : {}) })
    }
    // Written together, the events join one group-commit batch; the answer waits for all of them.
    const outcomes = await Promise.all(
      delivery.events.map(({ eventId, type, externalId, sourceVersion, document }) => deps.inbox.write({ connectionId, eventId, type, externalId, sourceVersion, document })),
    )
    const duplicates = outcomes.filter((o) => o.duplicate).length
    req.log.info({ connectionId, events: outcomes.length, accepted: outcomes.length - duplicates, duplicates }, 'webhook accepted')
    const answer = custom.acknowledge(delivery)
    return reply.code(200).header('content-type', answer.contentType).send(answer.body)
  }

  app.setErrorHandler(async (err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    const connectionId = (req.params as { connection?: string }).connection ?? ''
    if (err.statusCode === 413) {
      const rejection = { connectionId, httpStatus: 413, code: 'body_too_large', message: `the body is larger than ${deps.bodyLimit} bytes` }
      const custom = deps.connections.get(connectionId)?.connector.customWebhooks
      // WebhookRejected has no 413; the vendor's refusal body (e.g. a SOAP fault, which Salesforce
      // shows in its outbound message queue) goes out with the 413 status all the same.
      if (custom) return refuseCustom(reply, custom, rejection)
      return reject(reply, rejection)
    }
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send(errorBody(err.code ?? 'bad_request', err.message))
    req.log.error({ err }, 'webhook ingest failed')
    return reply.code(503).send(errorBody('unavailable', 'the delivery could not be stored; retry it'))
  })

  app.post<{ Params: { connection: string } }>('/webhooks/:connection', async (req, reply) => {
    const connectionId = req.params.connection
    const connection = deps.connections.get(connectionId)
    const custom = connection?.connector.customWebhooks
    if (connection && custom) return receiveCustom(req, reply, connection, custom)
    const webhooks = connection?.connector.webhooks
    if (!connection || !webhooks) {
      return reject(reply, { connectionId, httpStatus: 404, code: 'unknown_connection', message: `no connection "${connectionId}" accepts webhooks` })
    }
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    // Standard Webhooks unless the connection's settings choose another scheme (HubSpot's v3 signature).
    const { webhookVerification } = connection.settings as { webhookVerification?: WebhookVerification }
    const verified = verifyWebhookSignature(webhookVerification, connection.secrets as { webhookSecret?: string; hubspotClientSecret?: string }, {
      method: req.method,
      url: req.url,
      origin: `${req.protocol}://${req.host}`,
      headers: req.headers,
      body: raw,
    })
    if (!verified.ok) {
      const claimed = typeof req.headers['webhook-id'] === 'string' ? req.headers['webhook-id'] : undefined
      return reject(reply, { connectionId, eventId: claimed, httpStatus: 401, code: 'invalid_signature', message: verified.reason })
    }
    const eventId = verified.deliveryId

    const contentType = req.headers['content-type'] ?? ''
    if (!jsonContentType.test(contentType)) {
      return reject(reply, { connectionId, eventId, httpStatus: 415, code: 'unsupported_media_type', message: `expected application/json, got ${contentType || 'no content-type'}` })
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(raw.toString('utf8'))
    } catch (err) {
      return reject(reply, { connectionId, eventId, httpStatus: 400, code: 'malformed_json', message: `the body is not valid JSON: ${(err as Error).message}`, body: raw.toString('utf8') })
    }
    const body = webhooks.bodySchema.safeParse(parsed)
    if (!body.success) {
      return reject(reply, { connectionId, eventId, httpStatus: 422, code: 'validation_failed', message: 'the document does not match what this connection accepts', details: issuesOf(body.error), body: raw.toString('utf8') })
    }
    const event = webhooks.toEvent(body.data)
    const outcome = await deps.inbox.write({ connectionId, eventId, ...event })
    req.log.info({ connectionId, eventId, inboxId: outcome.inboxId, duplicate: outcome.duplicate }, 'webhook accepted')
    return reply
      .code(outcome.duplicate ? 200 : 202)
      .send({ eventId: String(outcome.inboxId), status: outcome.duplicate ? 'duplicate' : 'accepted' })
  })
}
