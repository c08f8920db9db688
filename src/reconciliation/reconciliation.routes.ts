/**
 * The reconciliation API under /api/v1: ask for a run (it runs in the worker), follow it with its
 * counts per drift kind and its discrepancies page by page, download them as CSV, and list recent
 * runs. Who may call each route is in src/auth/route-policy.ts (POST: admin, ops; GET: + viewer).
 * Routes parse and answer; the service and the repository do the work.
 */
import { Readable } from 'node:stream'
import { Queue } from 'bullmq'
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Database } from '../db/database.ts'
import { actorOf, parseBody } from '../mapping/mapping.routes.ts'
import type { QueueSet } from '../queue/queues.ts'
import { errorBody } from '../shared/http-errors.ts'
import { parseQuery } from '../status/status.routes.ts'
import { findRun, listDiscrepancies, listRuns, type DiscrepancyRow } from './reconciliation.repository.ts'
import { driftKinds, reconciliationSettingsSchema, runRequestSchema, type ReconciliationJob, type ReconciliationSettings } from './reconciliation.schemas.ts'
import { reconciliationQueueName, requestRun, RunRefused, runView } from './reconciliation.service.ts'

export interface ReconciliationRoutesOptions {
  db: Database
  queues: Pick<QueueSet, 'redis' | 'prefix'>
  connections: ConnectionRegistry
  /** The configuration's `reconciliation` section (window, tolerance, policy); defaults when absent. */
  settings?: ReconciliationSettings
}

const runIdSchema = z.string().regex(/^[1-9]\d{0,15}$/).transform(Number)

const runQuery = z.object({
  after: z.coerce.number().int().min(0).optional().describe('discrepancy id: the `next` of the previous page'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  kind: z.enum(driftKinds).optional(),
  connection: z.string().min(1).optional(),
  orderId: z.uuid().optional(),
})

const listQuery = z.object({
  before: z.coerce.number().int().min(1).optional().describe('run id: the `next` of the previous page'),
  limit: z.coerce.number().int().min(1).max(200).default(20),
})

const csvColumns = ['id', 'run_id', 'kind', 'connection_id', 'order_id', 'external_id', 'action', 'detail', 'repaired_at', 'created_at', 'expected', 'actual'] as const

/** RFC 4180 quoting; a text cell a spreadsheet would run as a formula is prefixed with `'`. */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return ''
  let text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : JSON.stringify(value)
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

function csvRow(d: DiscrepancyRow): string {
  const cells = [d.id, d.runId, d.kind, d.connectionId, d.orderId, d.externalId, d.action, d.detail, d.repairedAt, d.createdAt, d.expected, d.actual]
  return `${cells.map(csvCell).join(',')}\r\n`
}

export const reconciliationRoutes: FastifyPluginAsync<ReconciliationRoutesOptions> = async (app, deps) => {
  const settings = deps.settings ?? reconciliationSettingsSchema.parse({})
  const queue = new Queue<ReconciliationJob>(reconciliationQueueName, { connection: deps.queues.redis, prefix: deps.queues.prefix })
  app.addHook('onClose', async () => {
    await queue.close()
  })

  app.post('/reconciliations', async (req, reply) => {
    const body = parseBody(runRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    try {
      const run = await requestRun({ db: deps.db, connections: deps.connections, settings, queue }, body, { trigger: 'api', requestedBy: actorOf(req.principal) })
      req.log.info({ runId: run.id, connections: run.connections }, 'reconciliation run requested')
      return reply.code(202).send(runView(run))
    } catch (err) {
      if (err instanceof RunRefused) return reply.code(422).send(errorBody('validation_failed', err.message, err.details))
      throw err
    }
  })

  app.get('/reconciliations', async (req, reply) => {
    const q = parseQuery(listQuery, req, reply)
    if (!q) return reply
    const runs = await listRuns(deps.db, q)
    return { runs: runs.map(runView), next: runs.length === q.limit ? runs.at(-1)!.id : null }
  })

  app.get<{ Params: { id: string } }>('/reconciliations/:id', async (req, reply) => {
    const id = runIdSchema.safeParse(req.params.id)
    const q = parseQuery(runQuery, req, reply)
    if (!q) return reply
    const run = id.success ? await findRun(deps.db, id.data) : undefined
    if (!run) return reply.code(404).send(errorBody('not_found', `no reconciliation run ${req.params.id}`))
    const discrepancies = await listDiscrepancies(deps.db, run.id, q)
    return { ...runView(run), discrepancyPage: { items: discrepancies, next: discrepancies.length === q.limit ? discrepancies.at(-1)!.id : null } }
  })

  app.get<{ Params: { id: string } }>('/reconciliations/:id/discrepancies.csv', async (req, reply) => {
    const id = runIdSchema.safeParse(req.params.id)
    const run = id.success ? await findRun(deps.db, id.data) : undefined
    if (!run) return reply.code(404).send(errorBody('not_found', `no reconciliation run ${req.params.id}`))
    const db = deps.db
    // Streamed a page at a time, so a run with 100,000 discrepancies never sits in memory.
    async function* lines() {
      yield `${csvColumns.join(',')}\r\n`
      let after = 0
      for (;;) {
        const page = await listDiscrepancies(db, run!.id, { after, limit: 1000 })
        for (const d of page) yield csvRow(d)
        if (page.length < 1000) return
        after = page.at(-1)!.id
      }
    }
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="reconciliation-${run.id}-discrepancies.csv"`)
      .send(Readable.from(lines()))
  })
}
