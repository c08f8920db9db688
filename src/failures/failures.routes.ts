/**
 * The failures API under /api/v1: list what needs a person, replay an item (optionally with an
 * edited outbound document), replay all that match a filter (dry run first), resolve an item with
 * a reason; and the counters. Failures are for admin and ops; the counters for viewers too
 * (src/auth/route-policy.ts).
 * Routes parse and answer; failure-actions.ts and the repository do the work.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { failureKinds } from '../connector-kit/index.ts'
import { actorOf, answer, parseBody } from '../mapping/mapping.routes.ts'
import { versionNumberSchema } from '../mapping/mapping-versions.ts'
import { errorBody } from '../shared/http-errors.ts'
import { parseQuery } from '../status/status.routes.ts'
import { bulkReplay, dryRunBulkReplay, replayFailure, resolveFailure, type FailureDeps } from './failure-actions.ts'
import { counters } from './counters.ts'
import { decodeCursor, failureStatuses, findFailure, listFailures, type FailureCursor } from './failures.repository.ts'

export type FailureRoutesOptions = FailureDeps

const cursorSchema = z.string().transform((text, ctx): FailureCursor => {
  const cursor = decodeCursor(text)
  if (!cursor) ctx.addIssue({ code: 'custom', message: 'not the `next` of an earlier page' })
  return cursor ?? { atMicros: 0, id: '' }
})

const filterFields = {
  connection: z.string().min(1).optional(),
  kind: z.enum(failureKinds).optional(),
  since: z.coerce.date().optional().describe('ISO 8601 date or date-time: items that reached their status since then'),
}

const listQuery = z.object({
  ...filterFields,
  status: z.enum(failureStatuses).optional().describe('unset: dead and needs_attention; resolved: resolved links and dismissed events'),
  after: cursorSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
})

const replayBody = z.object({
  document: z.record(z.string(), z.unknown()).optional().describe('links: the outbound document to send instead of the mapping output, this once'),
  reason: z.string().max(1000).optional(),
  mappingVersion: z.union([z.literal('original'), z.literal('active'), versionNumberSchema]).optional().describe('events: the mapping version (default active)'),
})

const bulkBody = z.object({
  ...filterFields,
  status: z.enum(['dead', 'needs_attention']).optional(),
  reason: z.string().max(1000).optional(),
  // Replaying everything is never the default: without dryRun: false, the answer is the count.
  dryRun: z.boolean().default(true),
})

const resolveBody = z.object({ reason: z.string().trim().min(1).max(1000) })

const statsQuery = z.object({
  since: z.coerce.date().optional(),
  connection: z.string().min(1).optional(),
})

export const failureRoutes: FastifyPluginAsync<FailureRoutesOptions> = async (app, deps) => {
  app.get('/failures', async (req, reply) => {
    const q = parseQuery(listQuery, req, reply)
    if (!q) return reply
    return listFailures(deps.db, q)
  })

  app.get<{ Params: { id: string } }>('/failures/:id', async (req, reply) => {
    const failure = await findFailure(deps.db, req.params.id)
    return failure ?? reply.code(404).send(errorBody('not_found', `no failure ${req.params.id}`))
  })

  app.post('/failures/replay', async (req, reply) => {
    const body = parseBody(bulkBody, req.body, reply, 'request')
    if (!body) return reply
    const { dryRun, reason, ...filter } = body
    if (dryRun) return answer(reply, () => dryRunBulkReplay(deps, filter))
    return answer(
      reply,
      async () => {
        const result = await bulkReplay(deps, filter, { reason, actor: actorOf(req.principal) })
        req.log.info({ ...filter, replayed: result.replayed }, 'failures replayed in bulk')
        return result
      },
      202,
    )
  })

  app.post<{ Params: { id: string } }>('/failures/:id/replay', async (req, reply) => {
    const body = parseBody(replayBody, req.body, reply, 'request')
    if (!body) return reply
    return answer(
      reply,
      async () => {
        const { enqueued, ...replayed } = await replayFailure(deps, req.params.id, { ...body, actor: actorOf(req.principal) })
        req.log.info({ failureId: replayed.id, edited: body.document !== undefined }, 'failure replayed')
        if (!enqueued) req.log.warn({ failureId: replayed.id }, 'enqueue after replay failed; the sweeper will pick it up')
        return replayed
      },
      202,
    )
  })

  app.post<{ Params: { id: string } }>('/failures/:id/resolve', async (req, reply) => {
    const body = parseBody(resolveBody, req.body, reply, 'request')
    if (!body) return reply
    return answer(reply, async () => {
      const resolved = await resolveFailure(deps, req.params.id, { reason: body.reason, actor: actorOf(req.principal) })
      req.log.info({ failureId: resolved.id, status: resolved.status }, 'failure resolved')
      return resolved
    })
  })

  app.get('/stats', async (req, reply) => {
    const q = parseQuery(statsQuery, req, reply)
    if (!q) return reply
    return { since: q.since?.toISOString() ?? null, connection: q.connection ?? null, ...(await counters(deps.db, q)) }
  })
}
