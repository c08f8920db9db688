/**
 * Admin and ops routes under /api/v1: API keys (admin), refused deliveries and the audit log (admin, ops).
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { createApiKey, newApiKeySchema, type Principal } from '../auth/api-keys.ts'
import { requireRoles } from '../auth/auth.plugin.ts'
import type { Database } from '../db/database.ts'
import { listRejections } from '../ingest/rejections.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { errorBody } from '../shared/http-errors.ts'
import { parseQuery } from '../status/status.routes.ts'
import { listAudit } from './audit-log.ts'

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

export const adminRoutes: FastifyPluginAsync<{ db: Database; resolveKey: (key: string) => Promise<Principal | undefined> }> = async (app, { db, resolveKey }) => {
  app.post('/api-keys', { onRequest: requireRoles(resolveKey, ['admin']) }, async (req, reply) => {
    const body = newApiKeySchema.safeParse(req.body)
    if (!body.success) return reply.code(422).send(errorBody('validation_failed', 'the key description is invalid', issuesOf(body.error)))
    const created = await createApiKey(db, body.data)
    req.log.info({ keyId: created.id, role: body.data.role }, 'api key created')
    // The key itself is shown once, here, and never again.
    return reply.code(201).send({ id: created.id, key: created.key, name: body.data.name, role: body.data.role, scope: body.data.scope ?? null })
  })

  app.get('/deliveries/rejected', { onRequest: requireRoles(resolveKey, ['admin', 'ops']) }, async (req, reply) => {
    const q = parseQuery(rejectedQuery, req, reply)
    if (!q) return reply
    const rejected = await listRejections(db, { connectionId: q.connection, before: q.before, limit: q.limit })
    return { rejected, next: rejected.length === q.limit ? rejected.at(-1)!.id : null }
  })

  app.get('/audit', { onRequest: requireRoles(resolveKey, ['admin', 'ops']) }, async (req, reply) => {
    const q = parseQuery(auditQuery, req, reply)
    if (!q) return reply
    const entries = await listAudit(db, { subject: q.subject, before: q.before, limit: q.limit })
    return { entries, next: entries.length === q.limit ? entries.at(-1)!.id : null }
  })
}
