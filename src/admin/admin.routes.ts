/**
 * Admin and ops routes under /api/v1: API keys (create, list, revoke), refused deliveries and the
 * audit log. Who may call each is in src/auth/route-policy.ts. A key is shown once, in the answer
 * that creates it, and never logged, listed or audited: only its id.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { createApiKey, LastAdminKey, listApiKeys, newApiKeySchema, revokeApiKey } from '../auth/api-keys.ts'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Database } from '../db/database.ts'
import { listRejections } from '../ingest/rejections.ts'
import { actorOf, parseBody } from '../mapping/mapping.routes.ts'
import { errorBody } from '../shared/http-errors.ts'
import { parseQuery } from '../status/status.routes.ts'
import { listAudit, recordAudit } from './audit-log.ts'

export interface AdminRoutesOptions {
  db: Database
  connections: ConnectionRegistry
  /**
   * Tells every process that a key was revoked, so none keeps accepting it from a cache. Resolves
   * once a request anywhere will be refused; rejects when that cannot be promised.
   */
  keyRevoked(): Promise<void>
}

const rejectedQuery = z.object({
  connection: z.string().optional(),
  before: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
})

const auditQuery = z.object({
  subject: z.string().min(1).optional().describe('kind:id, e.g. mapping:demo-crm.to-canonical.order'),
  before: z.coerce.number().int().positive().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
})

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, deps) => {
  const keyRequest = newApiKeySchema((id) => deps.connections.get(id) !== undefined)

  app.post('/keys', async (req, reply) => {
    const body = parseBody(keyRequest, req.body, reply, 'key description')
    if (!body) return reply
    const created = await deps.db.transaction(async (tx) => {
      const { key, ...described } = await createApiKey(tx, body)
      await recordAudit(tx, { actor: actorOf(req.principal), action: 'key.created', subject: `key:${described.id}`, after: { name: described.name, role: described.role, level: described.level, connection: described.connection } })
      return { key, described }
    })
    req.log.info({ keyId: created.described.id, role: created.described.role }, 'api key created')
    // The key itself is shown once, here, and never again.
    const { id, name, role, level, connection, createdAt } = created.described
    return reply.code(201).send({ id, name, role, level, connection, createdAt, key: created.key })
  })

  app.get('/keys', async () => ({ keys: await listApiKeys(deps.db) }))

  app.delete<{ Params: { id: string } }>('/keys/:id', async (req, reply) => {
    let revoked
    try {
      revoked = await deps.db.transaction(async (tx) => {
        const result = await revokeApiKey(tx, req.params.id)
        if (result?.changed) await recordAudit(tx, { actor: actorOf(req.principal), action: 'key.revoked', subject: `key:${result.key.id}`, before: { revokedAt: null }, after: { revokedAt: result.key.revokedAt } })
        return result
      })
    } catch (err) {
      if (err instanceof LastAdminKey) return reply.code(409).send(errorBody('last_admin_key', err.message))
      throw err
    }
    if (!revoked) return reply.code(404).send(errorBody('not_found', `no key ${req.params.id}`))
    if (revoked.changed) req.log.info({ keyId: revoked.key.id, role: revoked.key.role }, 'api key revoked')
    // Also when it was revoked before: a retry after a 503 below must be able to finish the job.
    try {
      await deps.keyRevoked()
    } catch (err) {
      req.log.warn({ err, keyId: revoked.key.id }, 'could not tell the other processes about a revoked key')
      return reply
        .code(503)
        .send(errorBody('revocation_not_propagated', 'the key is revoked, but other API processes may accept it for a few more seconds; repeat the request to make sure they do not'))
    }
    return revoked.key
  })

  app.get('/deliveries/rejected', async (req, reply) => {
    const q = parseQuery(rejectedQuery, req, reply)
    if (!q) return reply
    const rejected = await listRejections(deps.db, { connectionId: q.connection, before: q.before, limit: q.limit })
    return { rejected, next: rejected.length === q.limit ? rejected.at(-1)!.id : null }
  })

  app.get('/audit', async (req, reply) => {
    const q = parseQuery(auditQuery, req, reply)
    if (!q) return reply
    const entries = await listAudit(deps.db, { subject: q.subject, before: q.before, limit: q.limit })
    return { entries, next: entries.length === q.limit ? entries.at(-1)!.id : null }
  })
}
