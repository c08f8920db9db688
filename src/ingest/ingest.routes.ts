/**
 * POST /webhooks/:connection — verify the signature on the raw body, parse, validate, commit to the
 * inbox, then answer. Nothing is acknowledged before it is durable, and every refusal is recorded.
 * Calls no connector I/O: a connector only contributes its body schema here.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { verifyStandardWebhook } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
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

  app.setErrorHandler(async (err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    const connectionId = (req.params as { connection?: string }).connection ?? ''
    if (err.statusCode === 413) {
      return reject(reply, { connectionId, httpStatus: 413, code: 'body_too_large', message: `the body is larger than ${deps.bodyLimit} bytes` })
    }
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send(errorBody(err.code ?? 'bad_request', err.message))
    req.log.error({ err }, 'webhook ingest failed')
    return reply.code(503).send(errorBody('unavailable', 'the delivery could not be stored; retry it'))
  })

  app.post<{ Params: { connection: string } }>('/webhooks/:connection', async (req, reply) => {
    const connectionId = req.params.connection
    const connection = deps.connections.get(connectionId)
    const webhooks = connection?.connector.webhooks
    if (!connection || !webhooks) {
      return reject(reply, { connectionId, httpStatus: 404, code: 'unknown_connection', message: `no connection "${connectionId}" accepts webhooks` })
    }
    const eventId = typeof req.headers['webhook-id'] === 'string' ? req.headers['webhook-id'] : undefined
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
    const { webhookSecret } = connection.secrets as { webhookSecret: string }
    const verified = verifyStandardWebhook(webhookSecret, req.headers as Record<string, string>, raw)
    if (!verified.ok) return reject(reply, { connectionId, eventId, httpStatus: 401, code: 'invalid_signature', message: verified.reason })

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
    const outcome = await deps.inbox.write({ connectionId, eventId: eventId!, ...event })
    req.log.info({ connectionId, eventId, inboxId: outcome.inboxId, duplicate: outcome.duplicate }, 'webhook accepted')
    return reply
      .code(outcome.duplicate ? 200 : 202)
      .send({ eventId: String(outcome.inboxId), status: outcome.duplicate ? 'duplicate' : 'accepted' })
  })
}
