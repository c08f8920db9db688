/**
 * GET /metrics: Prometheus text. It needs a key like the rest of the API (Bearer, or Basic with the
 * key as password, which Prometheus' basic_auth sends), for roles admin, ops and viewer
 * (src/auth/route-policy.ts): the counts say how much business flows through, which is not for
 * anyone on the network.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { Database } from '../db/database.ts'
import type { QueueSet } from '../queue/queues.ts'
import { renderMetrics } from './metrics.ts'

export const metricsRoutes: FastifyPluginAsync<{ db: Database; queues: QueueSet }> = async (app, deps) => {
  app.get('/metrics', async (_req, reply) => {
    const text = await renderMetrics(deps.db, deps.queues.all())
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text)
  })
}
