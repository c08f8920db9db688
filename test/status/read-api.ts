/**
 * The read routes (status and reports) on their own Fastify app, over real HTTP on an ephemeral
 * port, with the real route policy and a key table instead of the api_keys table: long-polls,
 * disconnects and shutdown are tested without the workers. Also seeds orders and their history
 * straight into the database.
 */
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Principal } from '../../src/auth/api-keys.ts'
import { enforceRoutePolicy } from '../../src/auth/auth.plugin.ts'
import type { Database, Queryable } from '../../src/db/database.ts'
import { reportRoutes } from '../../src/reports/reports.routes.ts'
import { statusRoutes, type StatusRoutesOptions } from '../../src/status/status.routes.ts'

const principal = (name: string, role: Principal['role'], extra: Partial<Principal> = {}): Principal => ({ keyId: name, name, role, level: null, connection: null, ...extra })

/** Keys by name: send the name as the bearer key. */
export const keys: Record<string, Principal> = {
  admin: principal('admin', 'admin'),
  ops: principal('ops', 'ops'),
  viewer: principal('viewer', 'viewer'),
  'erp-key': principal('erp-key', 'integration', { connection: 'erp' }),
  'crm-a-key': principal('crm-a-key', 'integration', { connection: 'crm-a' }),
  'approver-key': principal('approver-key', 'approver', { level: 'finance' }),
}

/** Connections the acknowledgement accepts. */
export const configuredConnections = ['crm-a', 'crm-b', 'erp', 'wms']

export interface Answer {
  status: number
  headers: Headers
  body: any
  text: string
  ms: number
}

export interface ReadApi {
  app: FastifyInstance
  url: string
  call(path: string, init?: { key?: string; method?: string; body?: unknown; headers?: Record<string, string>; signal?: AbortSignal }): Promise<Answer>
  close(): Promise<void>
}

export async function startReadApi(db: Database, options: Partial<StatusRoutesOptions> = {}): Promise<ReadApi> {
  const app = Fastify({ return503OnClosing: true })
  enforceRoutePolicy(app, async (key) => keys[key])
  await app.register(
    async (api) => {
      await api.register(statusRoutes, { db, connections: { get: (id) => (configuredConnections.includes(id) ? ({ id } as never) : undefined) }, ...options })
      await api.register(reportRoutes, { db })
    },
    { prefix: '/api/v1' },
  )
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    app,
    url,
    async call(path, init = {}) {
      const started = performance.now()
      const response = await fetch(`${url}${path}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${init.key ?? 'admin'}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      })
      const text = await response.text()
      const json = response.headers.get('content-type')?.includes('json') && text ? JSON.parse(text) : undefined
      return { status: response.status, headers: response.headers, body: json, text, ms: performance.now() - started }
    },
    close: () => app.close(),
  }
}

export interface SeedOrder {
  connection?: string
  externalId?: string
  state?: string
  currency?: string
  total?: string
  paid?: string
  paymentState?: string
  customer?: string
  createdAt?: Date
  links?: { connection: string; operation: string; status: string }[]
}

export async function seedOrder(db: Queryable, o: SeedOrder = {}): Promise<string> {
  const id = randomUUID()
  const externalId = o.externalId ?? `SO-${id.slice(0, 8)}`
  const document = { externalId, customer: { externalId: o.customer ?? 'ACC-1', name: 'A customer' }, currency: o.currency ?? 'CNY', total: o.total ?? '100.00', lines: [] }
  await db.query(
    `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total, payment_state, amount_paid, created_at, updated_at)
     values ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $10)`,
    [id, o.connection ?? 'crm-a', externalId, o.state ?? 'received', JSON.stringify(document), o.currency ?? 'CNY', o.total ?? '100.00', o.paymentState ?? 'not_invoiced', o.paid ?? '0', o.createdAt ?? new Date()],
  )
  for (const l of o.links ?? []) {
    await db.query('insert into links (order_id, connection_id, operation, status) values ($1, $2, $3, $4)', [id, l.connection, l.operation, l.status])
  }
  return id
}
