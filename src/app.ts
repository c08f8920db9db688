/**
 * Builds the HTTP application from its dependencies; never listens. /webhooks, /api/v1 and /admin
 * are separate encapsulated plugins, each with its own body parsing. Who may call each route is
 * decided in one table (src/auth/route-policy.ts): a route missing from it stops the app at start.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import type { Logger } from 'pino'
import { adminRoutes } from './admin/admin.routes.ts'
import { approvalRoutes } from './approvals/approvals.routes.ts'
import { approvalRuleRoutes } from './approvals/approval-rules.routes.ts'
import { failureRoutes } from './failures/failures.routes.ts'
import type { KeyResolver } from './auth/api-keys.ts'
import { enforceRoutePolicy } from './auth/auth.plugin.ts'
import { cachedKeyResolver, redisRevocationSignal } from './auth/revocation.ts'
import type { ConnectionRegistry } from './connections/connection-registry.ts'
import type { Database } from './db/database.ts'
import type { InboxWriter } from './ingest/inbox-writer.ts'
import { ingestRoutes } from './ingest/ingest.routes.ts'
import { lookupRoutes } from './mapping/lookup.routes.ts'
import type { MappingCatalog } from './mapping/mapping-catalog.ts'
import { mappingRoutes } from './mapping/mapping.routes.ts'
import { metricsRoutes } from './observability/metrics.routes.ts'
import type { Lifecycle } from './orders/lifecycle.ts'
import { reconciliationRoutes } from './reconciliation/reconciliation.routes.ts'
import type { ReconciliationSettings } from './reconciliation/reconciliation.schemas.ts'
import type { QueueSet } from './queue/queues.ts'
import { reportRoutes } from './reports/reports.routes.ts'
import { errorBody } from './shared/http-errors.ts'
import type { ListenSource } from './status/change-signal.ts'
import { statusRoutes } from './status/status.routes.ts'

export interface AppDeps {
  db: Database
  queues: QueueSet
  connections: ConnectionRegistry
  mappings: MappingCatalog
  inbox: InboxWriter
  /** Looks keys up uncached (createKeyResolver): the app caches in front of it and drops the cache on revocation. */
  resolveKey: KeyResolver
  lifecycle: Lifecycle
  /** PostgreSQL: where change-feed long-polls hear of new changes (LISTEN); absent, they poll. */
  listen?: ListenSource
  /** The configuration's `reconciliation` section; defaults when absent. */
  reconciliation?: ReconciliationSettings
  bodyLimit: number
  logger: Logger
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // Routes log what matters with ids; a line per request would double the log volume of ingest.
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, logController: new Fastify.LogController({ disableRequestLogging: true }), requestIdHeader: 'x-request-id', return503OnClosing: true })

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, req, reply) => {
    if (err.statusCode && err.statusCode < 500) return reply.code(err.statusCode).send(errorBody(err.code ?? 'bad_request', err.message))
    req.log.error({ err }, 'request failed')
    return reply.code(500).send(errorBody('internal', 'internal error; see the server log for this request id'))
  })
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)))

  // Before any route: every route registered from here on gets the key check its policy asks for.
  const revocations = redisRevocationSignal(deps.queues.redis, deps.queues.prefix)
  const resolveKey = cachedKeyResolver(deps.resolveKey, revocations)
  enforceRoutePolicy(app, resolveKey)
  const keyRevoked = async () => {
    resolveKey.clear()
    await revocations.bump()
  }

  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const [database, redis] = await Promise.all([
      deps.db.query('select 1').then(() => 'ok', (err: Error) => `down: ${err.message}`),
      deps.queues.redis.ping().then(() => 'ok', (err: Error) => `down: ${err.message}`),
    ])
    const ready = database === 'ok' && redis === 'ok'
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: { database, redis } })
  })

  await app.register(ingestRoutes, { db: deps.db, connections: deps.connections, inbox: deps.inbox, bodyLimit: deps.bodyLimit })

  await app.register(
    async (api) => {
      await api.register(statusRoutes, { db: deps.db, connections: deps.connections, ...(deps.listen ? { listen: deps.listen } : {}) })
      await api.register(reportRoutes, { db: deps.db })
      await api.register(approvalRoutes, { db: deps.db, lifecycle: deps.lifecycle })
      await api.register(reconciliationRoutes, { db: deps.db, queues: deps.queues, connections: deps.connections, ...(deps.reconciliation ? { settings: deps.reconciliation } : {}) })
      await api.register(approvalRuleRoutes, { db: deps.db })
      await api.register(adminRoutes, { db: deps.db, connections: deps.connections, keyRevoked })
      await api.register(mappingRoutes, { db: deps.db, catalog: deps.mappings, connections: deps.connections, queues: deps.queues })
      await api.register(lookupRoutes, { db: deps.db, catalog: deps.mappings })
      await api.register(failureRoutes, { db: deps.db, catalog: deps.mappings, connections: deps.connections, queues: deps.queues })
    },
    { prefix: '/api/v1' },
  )

  await app.register(metricsRoutes, { db: deps.db, queues: deps.queues })

  await app.register(async (admin) => {
    const board = new FastifyAdapter()
    createBullBoard({ queues: deps.queues.all().map((q) => new BullMQAdapter(q)), serverAdapter: board })
    board.setBasePath('/admin/queues')
    await admin.register(board.registerPlugin(), { prefix: '/admin/queues' })
  })

  return app
}
