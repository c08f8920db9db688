/**
 * The mapping admin API under /api/v1: versions (list, read, save, activate), preview, shadow runs,
 * and replay of an event with a chosen mapping version. Reads for admin and ops; changes for admin;
 * replay for admin and ops (src/auth/route-policy.ts). Routes parse and answer; mapping-versions.ts
 * does the work.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { z } from 'zod'
import type { Principal } from '../auth/api-keys.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { errorBody } from '../shared/http-errors.ts'
import {
  activateVersion,
  getActiveVersion,
  getVersion,
  getVersions,
  listMappingsWithUses,
  MappingRefusal,
  previewMapping,
  previewRequestSchema,
  replayEvent,
  replayRequestSchema,
  saveVersion,
  shadowRequestSchema,
  shadowRun,
  versionNumberSchema,
  type MappingServiceDeps,
  type RefusalCode,
} from './mapping-versions.ts'

export type MappingRoutesOptions = MappingServiceDeps

/** Who did it, for created_by and the audit log: the key's name and id (names need not be unique). */
export const actorOf = (p: Principal | undefined) => (p ? `${p.name} (key ${p.keyId})` : 'unknown')

const statusOf: Record<RefusalCode, number> = {
  not_found: 404,
  validation_failed: 422,
  examples_failed: 422,
  shadow_required: 409,
  not_replayable: 409,
}

/** Answers with the work's result, or with the refusal's status and a stable error body. */
export async function answer<T>(reply: FastifyReply, work: () => Promise<T>, status: number | ((result: T) => number) = 200): Promise<FastifyReply> {
  try {
    const result = await work()
    return reply.code(typeof status === 'number' ? status : status(result)).send(result)
  } catch (err) {
    if (!(err instanceof MappingRefusal)) throw err
    const body = errorBody(err.code, err.message, err.details)
    return reply.code(statusOf[err.code]).send({ error: { ...body.error, ...err.data } })
  }
}

/** The request body, or undefined after answering 422 with each field's problem. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, reply: FastifyReply, what: string): T | undefined {
  const result = schema.safeParse(body ?? {})
  if (result.success) return result.data
  void reply.code(422).send(errorBody('validation_failed', `the ${what} is invalid`, issuesOf(result.error)))
  return undefined
}

/** A positive integer path parameter up to `max`, or undefined (the route answers 404). */
const positiveInt = (text: string, max = Number.MAX_SAFE_INTEGER) => {
  const n = /^[1-9]\d{0,15}$/.test(text) ? Number(text) : undefined
  return n !== undefined && n <= max ? n : undefined
}

const saveRequestSchema = z.object({
  spec: z.unknown(),
  comment: z.string().max(1000).optional(),
})

const activateRequestSchema = z.object({
  version: versionNumberSchema,
  requireCleanShadow: z.boolean().default(false),
})

export const mappingRoutes: FastifyPluginAsync<MappingRoutesOptions> = async (app, deps) => {
  app.get('/mappings', async () => ({ mappings: await listMappingsWithUses(deps) }))

  app.get<{ Params: { id: string } }>('/mappings/:id', (req, reply) => answer(reply, () => getActiveVersion(deps.db, req.params.id)))

  app.get<{ Params: { id: string } }>('/mappings/:id/versions', (req, reply) => answer(reply, () => getVersions(deps.db, req.params.id)))

  app.get<{ Params: { id: string; version: string } }>('/mappings/:id/versions/:version', async (req, reply) => {
    const version = positiveInt(req.params.version, 2_147_483_647)
    if (version === undefined) return reply.code(404).send(errorBody('not_found', `mapping "${req.params.id}" has no version ${req.params.version}`))
    return answer(reply, () => getVersion(deps.db, req.params.id, version))
  })

  app.put<{ Params: { id: string } }>('/mappings/:id', async (req, reply) => {
    const body = parseBody(saveRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    return answer(
      reply,
      async () => {
        const saved = await saveVersion(deps, { id: req.params.id, spec: body.spec, comment: body.comment, actor: actorOf(req.principal) })
        if (saved.created) req.log.info({ mappingId: saved.id, version: saved.version, active: saved.active }, 'mapping version saved')
        return saved
      },
      (saved) => (saved.created ? 201 : 200),
    )
  })

  app.post<{ Params: { id: string } }>('/mappings/:id/activate', async (req, reply) => {
    const body = parseBody(activateRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    return answer(reply, async () => {
      const activated = await activateVersion(deps, { id: req.params.id, ...body, actor: actorOf(req.principal) })
      if (activated.changed) req.log.info({ mappingId: activated.id, version: activated.version, previousVersion: activated.previousVersion }, 'mapping version activated')
      return activated
    })
  })

  app.post<{ Params: { id: string } }>('/mappings/:id/preview', async (req, reply) => {
    const body = parseBody(previewRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    return answer(reply, () => previewMapping(deps, { id: req.params.id, document: body.document, version: body.version, spec: body.spec }))
  })

  // Admin only: it stores its report, and activation may require it.
  app.post<{ Params: { id: string } }>('/mappings/:id/shadow', async (req, reply) => {
    const body = parseBody(shadowRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    return answer(reply, () => shadowRun(deps, { id: req.params.id, ...body }))
  })

  app.post<{ Params: { eventId: string } }>('/events/:eventId/replay', async (req, reply) => {
    const eventId = positiveInt(req.params.eventId)
    if (eventId === undefined) return reply.code(404).send(errorBody('not_found', `no event ${req.params.eventId}`))
    const body = parseBody(replayRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    return answer(
      reply,
      async () => {
        const { enqueued, ...replayed } = await replayEvent(deps, { eventId, mappingVersion: body.mappingVersion, actor: actorOf(req.principal) })
        req.log.info({ inboxId: eventId, mappingVersion: replayed.mappingVersion }, 'event replayed')
        if (!enqueued) req.log.warn({ inboxId: eventId }, 'enqueue after replay failed; the sweeper will pick it up')
        return replayed
      },
      202,
    )
  })
}
