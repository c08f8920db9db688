/**
 * Who may call each route: the one place that says so. buildApp (app.ts) looks every route up here
 * as it is registered, attaches the key check, and refuses to start when a route is not listed, so
 * a route cannot be added without deciding who may call it. Route files declare no roles.
 *
 * Admitting a role is not the whole story for two of them: integration keys see only orders,
 * changes and events of their own connection (status.routes.ts filters and answers 404 on the
 * others), and approvers see orders projected for their level (projection.ts).
 */
import type { Role } from './api-keys.ts'

/** A key with one of these roles, sent as `Authorization: Bearer` (or HTTP Basic with the key as password). */
export interface KeyAccess {
  roles: readonly Role[]
  /** Set for pages a browser opens: a 401 then asks for Basic credentials. */
  basicRealm?: string
}

/** `public`: anyone (health probes). `signed`: no key, the handler verifies the sender's signature. */
export type Access = KeyAccess | 'public' | 'signed'

const admin: KeyAccess = { roles: ['admin'] }
const ops: KeyAccess = { roles: ['admin', 'ops'] }
const dashboards: KeyAccess = { roles: ['admin', 'ops', 'viewer'] }
/** Order reads: integration keys scoped to their connection, approvers projected for their level. */
const orderReaders: KeyAccess = { roles: ['admin', 'ops', 'integration', 'approver', 'viewer'] }
/** Changes and events: like order reads, but not for approvers (the feed carries amounts unprojected). */
const feedReaders: KeyAccess = { roles: ['admin', 'ops', 'integration', 'viewer'] }
const approvers: KeyAccess = { roles: ['admin', 'approver'] }

/** `METHOD /path` as registered (Fastify's `:param` syntax, prefix included) → who may call it. HEAD follows GET. */
export const routePolicy: Readonly<Record<string, Access>> = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'POST /webhooks/:connection': 'signed',
  'GET /metrics': dashboards,

  // Orders and what happened to them (status.routes.ts)
  'GET /api/v1/orders': orderReaders,
  'GET /api/v1/orders/:id': orderReaders,
  'GET /api/v1/orders/:id/timeline': orderReaders,

  // Reconciliation (src/reconciliation/reconciliation.routes.ts)
  'POST /api/v1/reconciliations': ops,
  'GET /api/v1/reconciliations': dashboards,
  'GET /api/v1/reconciliations/:id': dashboards,
  'GET /api/v1/reconciliations/:id/discrepancies.csv': dashboards,
  'GET /api/v1/changes': feedReaders,
  'GET /api/v1/events/:eventId': feedReaders,
  // A system that pulls orders says it took one; integration keys for their own connection only
  'POST /api/v1/orders/:id/ack': { roles: ['admin', 'ops', 'integration'] },

  // Reports (src/reports/reports.routes.ts): amounts unprojected, so not for approvers
  'GET /api/v1/reports/orders': dashboards,
  'GET /api/v1/reports/sync': dashboards,

  // Approvals (src/approvals/approvals.routes.ts): an approver key sees and decides its own level only
  'GET /api/v1/approvals': approvers,
  'POST /api/v1/orders/:id/approval': approvers,

  // Approval rules (src/approvals/approval-rules.routes.ts; its approvalRuleRouteAccess says the same)
  'GET /api/v1/approval-rules': dashboards,
  'PUT /api/v1/approval-rules': admin,
  'GET /api/v1/approval-rules/versions': dashboards,
  'GET /api/v1/approval-rules/versions/:version': dashboards,
  'POST /api/v1/approval-rules/versions/:version/activate': admin,
  'POST /api/v1/approval-rules/evaluate': dashboards,

  // Keys, refused deliveries, audit (admin.routes.ts)
  'POST /api/v1/keys': admin,
  'GET /api/v1/keys': admin,
  'DELETE /api/v1/keys/:id': admin,
  'GET /api/v1/deliveries/rejected': ops,
  'GET /api/v1/audit': ops,

  // Mappings (mapping.routes.ts): ops read, preview and replay; admins change
  'GET /api/v1/mappings': ops,
  'GET /api/v1/mappings/:id': ops,
  'GET /api/v1/mappings/:id/versions': ops,
  'GET /api/v1/mappings/:id/versions/:version': ops,
  'PUT /api/v1/mappings/:id': admin,
  'POST /api/v1/mappings/:id/activate': admin,
  'POST /api/v1/mappings/:id/preview': ops,
  'POST /api/v1/mappings/:id/shadow': admin,
  'POST /api/v1/events/:eventId/replay': ops,

  // Lookup tables (lookup.routes.ts): ops read; admins change
  'GET /api/v1/lookups': ops,
  'GET /api/v1/lookups/:table': ops,
  'PUT /api/v1/lookups/:table': admin,
  'PATCH /api/v1/lookups/:table': admin,
  'POST /api/v1/lookups/:table/import': admin,

  // Failures (failures.routes.ts): ops list, replay and resolve; counters for dashboards too
  'GET /api/v1/failures': ops,
  'GET /api/v1/failures/:id': ops,
  'POST /api/v1/failures/replay': ops,
  'POST /api/v1/failures/:id/replay': ops,
  'POST /api/v1/failures/:id/resolve': ops,
  'GET /api/v1/stats': dashboards,
}

/** Subtrees served by third-party plugins whose routes we do not list one by one. */
export const subtreePolicy: readonly { prefix: string; access: KeyAccess }[] = [
  // Bull Board: pages, static assets and its JSON API (which can retry, clean and pause queues)
  { prefix: '/admin/queues', access: { roles: ['admin', 'ops'], basicRealm: 'orderbridge ops' } },
]

/** Paths under these prefixes always need a key. */
const keyedPrefixes = ['/api/', '/admin/']

const under = (url: string, prefix: string) => url === prefix || url.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)

/** The access rule for a registered route, or an Error saying what is wrong with it. */
export function accessFor(method: string, url: string): Access | Error {
  const m = method.toUpperCase()
  const listed = routePolicy[`${m === 'HEAD' ? 'GET' : m} ${url}`]
  const access = listed ?? subtreePolicy.find((s) => under(url, s.prefix))?.access
  if (!access) return new Error(`route ${m} ${url} declares no roles: add it to src/auth/route-policy.ts`)
  if (typeof access === 'string' && keyedPrefixes.some((p) => under(url, p))) {
    return new Error(`route ${m} ${url} is under ${keyedPrefixes.join(' or ')} and must need a key, not be ${access}`)
  }
  return access
}
