/**
 * Roles end to end on the real app (PGlite): one key per role, per approver level, and integration
 * keys for two source connections. Every route the app registers is called with each of them and
 * without a key, against an expectations table kept here, apart from src/auth/route-policy.ts:
 * a route added without an entry below fails this test. Then what each reader sees: integration
 * keys only their connection's orders, changes and events; approvers orders projected for their level.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDemoCrmSender, sampleOrder } from '../../connectors/demo-crm/sender.ts'
import type { ApprovalLevel, Role } from '../../src/auth/api-keys.ts'
import { registeredRoutes, type RegisteredRoute } from '../../src/auth/auth.plugin.ts'
import { routePolicy } from '../../src/auth/route-policy.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

const A = 'admin', O = 'ops', I = 'integration', P = 'approver', V = 'viewer'

/** Who may call each route: the issue's policy, written out again so a change to either is noticed. */
const expectations: Record<string, readonly Role[] | 'public' | 'signed'> = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'POST /webhooks/:connection': 'signed',
  'GET /metrics': [A, O, V],
  'GET /api/v1/orders': [A, O, I, P, V],
  'GET /api/v1/orders/:id': [A, O, I, P, V],
  'GET /api/v1/orders/:id/timeline': [A, O, I, P, V],
  'POST /api/v1/reconciliations': [A, O],
  'GET /api/v1/reconciliations': [A, O, V],
  'GET /api/v1/reconciliations/:id': [A, O, V],
  'GET /api/v1/reconciliations/:id/discrepancies.csv': [A, O, V],
  'GET /api/v1/changes': [A, O, I, V],
  'GET /api/v1/events/:eventId': [A, O, I, V],
  'POST /api/v1/orders/:id/ack': [A, O, I],
  'GET /api/v1/reports/orders': [A, O, V],
  'GET /api/v1/reports/sync': [A, O, V],
  'GET /api/v1/approvals': [A, P],
  'POST /api/v1/orders/:id/approval': [A, P],
  'GET /api/v1/approval-rules': [A, O, V],
  'PUT /api/v1/approval-rules': [A],
  'GET /api/v1/approval-rules/versions': [A, O, V],
  'GET /api/v1/approval-rules/versions/:version': [A, O, V],
  'POST /api/v1/approval-rules/versions/:version/activate': [A],
  'POST /api/v1/approval-rules/evaluate': [A, O, V],
  'POST /api/v1/keys': [A],
  'GET /api/v1/keys': [A],
  'DELETE /api/v1/keys/:id': [A],
  'GET /api/v1/deliveries/rejected': [A, O],
  'GET /api/v1/audit': [A, O],
  'GET /api/v1/mappings': [A, O],
  'GET /api/v1/mappings/:id': [A, O],
  'GET /api/v1/mappings/:id/versions': [A, O],
  'GET /api/v1/mappings/:id/versions/:version': [A, O],
  'PUT /api/v1/mappings/:id': [A],
  'POST /api/v1/mappings/:id/activate': [A],
  'POST /api/v1/mappings/:id/preview': [A, O],
  'POST /api/v1/mappings/:id/shadow': [A],
  'POST /api/v1/events/:eventId/replay': [A, O],
  'GET /api/v1/lookups': [A, O],
  'GET /api/v1/lookups/:table': [A, O],
  'PUT /api/v1/lookups/:table': [A],
  'PATCH /api/v1/lookups/:table': [A],
  'POST /api/v1/lookups/:table/import': [A],
  'GET /api/v1/failures': [A, O],
  'GET /api/v1/failures/:id': [A, O],
  'POST /api/v1/failures/replay': [A, O],
  'POST /api/v1/failures/:id/replay': [A, O],
  'POST /api/v1/failures/:id/resolve': [A, O],
  'GET /api/v1/stats': [A, O, V],
}
/** Bull Board's pages, assets and API (it has dozens of routes, and they change with its version). */
const dashboard = { prefix: '/admin/queues', roles: [A, O] as readonly Role[] }

function expected(route: Pick<RegisteredRoute, 'method' | 'url'>) {
  const listed = expectations[`${route.method === 'HEAD' ? 'GET' : route.method} ${route.url}`]
  if (listed) return listed
  return route.url === dashboard.prefix || route.url.startsWith(`${dashboard.prefix}/`) ? dashboard.roles : undefined
}

/** Parameters that exist nowhere, so admitted calls are answered (404, 422, …) without changing anything. */
const params: Record<string, string> = { id: '00000000-0000-4000-8000-000000000000', eventId: '999999999', table: 'matrix-none', version: '1', connection: 'demo-crm' }
const concrete = (url: string) => url.replace(/:(\w+)/g, (_, name: string) => params[name] ?? 'matrix-none').replace(/\*/g, 'x')

interface Caller {
  name: string
  role: Role
  key: string
}

describe('roles (pglite)', () => {
  let stack: TestStack
  let routes: readonly RegisteredRoute[]
  const callers: Caller[] = []
  const keyOf = (name: string) => callers.find((c) => c.name === name)!.key
  const orders: Record<string, { id: string; eventId: string }> = {}

  async function call(method: string, path: string, key?: string, body?: unknown) {
    const response = await fetch(`${stack.url}${path}`, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text }
  }

  beforeAll(async () => {
    // A second source connection, so integration keys of two connections have orders of their own.
    stack = await startTestStack('pglite', {
      configure: (config) => ({
        ...config,
        connections: [...config.connections, { id: 'other-crm', connector: 'demo-crm', settings: {}, secrets: { webhookSecret: testCredentials.demoWebhookSecret }, mappings: { inbound: 'demo-crm.to-canonical.order' } }],
      }),
    })
    // Restarted to hold the app itself: its routes are what the matrix calls.
    await stack.stop()
    routes = registeredRoutes((await stack.start()).app!)

    callers.push({ name: 'admin', role: 'admin', key: testCredentials.adminKey })
    const wanted: [string, Role, { level?: ApprovalLevel; connection?: string }][] = [
      ['ops', 'ops', {}],
      ['viewer', 'viewer', {}],
      ['integration demo-crm', 'integration', { connection: 'demo-crm' }],
      ['integration other-crm', 'integration', { connection: 'other-crm' }],
      ['approver sales_manager', 'approver', { level: 'sales_manager' }],
      ['approver finance', 'approver', { level: 'finance' }],
      ['approver warehouse', 'approver', { level: 'warehouse' }],
    ]
    for (const [name, role, extra] of wanted) {
      const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name, role, ...extra } })
      expect(created.status, name).toBe(201)
      callers.push({ name, role, key: created.body.key })
    }

    const other = createDemoCrmSender({ webhookUrl: `${stack.url}/webhooks/other-crm`, secret: testCredentials.demoWebhookSecret, retries: 0 })
    for (const [connection, sender, externalId] of [['demo-crm', stack.crm, 'SO-MINE'], ['other-crm', other, 'SO-OTHER']] as const) {
      const sent = await sender.send('order.created', sampleOrder(4, externalId))
      expect(sent.status).toBe(202)
      const eventId = (sent.body as { eventId: string }).eventId
      const order = await stack.waitFor(async () => (await stack.api(`/api/v1/orders?connection=${connection}&externalId=${externalId}`)).body.orders[0], `${externalId} stored`)
      orders[connection] = { id: order.id, eventId }
    }
  }, 90_000)
  afterAll(() => stack?.close())

  describe('what integration keys see', () => {
    it('lists only the orders of their own connection', async () => {
      const mine = await call('GET', '/api/v1/orders', keyOf('integration demo-crm'))
      expect(mine.body.orders.map((o: { externalId: string }) => o.externalId)).toEqual(['SO-MINE'])
      const theirs = await call('GET', '/api/v1/orders?connection=demo-crm', keyOf('integration other-crm'))
      expect(theirs.body.orders).toEqual([])
      const all = await call('GET', '/api/v1/orders', keyOf('admin'))
      expect(all.body.orders.map((o: { externalId: string }) => o.externalId).sort()).toEqual(['SO-MINE', 'SO-OTHER'])
    })

    it('reads its own order and event, and gets 404 for another connection’s', async () => {
      const key = keyOf('integration demo-crm')
      expect((await call('GET', `/api/v1/orders/${orders['demo-crm']!.id}`, key)).body).toMatchObject({ externalId: 'SO-MINE', total: expect.any(String) })
      expect((await call('GET', `/api/v1/events/${orders['demo-crm']!.eventId}`, key)).body).toMatchObject({ status: 'processed', orderId: orders['demo-crm']!.id })
      const order = await call('GET', `/api/v1/orders/${orders['other-crm']!.id}`, key)
      expect([order.status, order.body.error.code]).toEqual([404, 'not_found'])
      expect((await call('GET', `/api/v1/events/${orders['other-crm']!.eventId}`, key)).status).toBe(404)
    })

    it('follows the change feed with only its connection’s changes, and the same cursor', async () => {
      const all = await call('GET', '/api/v1/changes?limit=1000', keyOf('admin'))
      const mine = await call('GET', '/api/v1/changes?limit=1000', keyOf('integration demo-crm'))
      const otherOrder = orders['other-crm']!.id
      expect(all.body.changes.some((c: { orderId: string | null }) => c.orderId === otherOrder)).toBe(true)
      expect(mine.body.changes.length).toBeGreaterThan(0)
      for (const change of mine.body.changes) expect(change.orderId === orders['demo-crm']!.id || change.connectionId === 'demo-crm', JSON.stringify(change)).toBe(true)
      expect([mine.body.next, mine.body.head]).toEqual([all.body.next, all.body.head])
    })
  })

  describe('what approvers see', () => {
    const read = async (caller: string) => (await call('GET', `/api/v1/orders/${orders['demo-crm']!.id}`, keyOf(caller))).body

    it('shows the warehouse lines and quantities, and no price, amount or total', async () => {
      const full = await read('admin')
      const seen = await read('approver warehouse')
      expect(seen).toMatchObject({ id: full.id, state: full.state, externalId: 'SO-MINE' })
      expect(seen.document.lines).toEqual(full.document.lines.map((l: { sku: string; quantity: string }) => ({ sku: l.sku, quantity: l.quantity })))
      expect(seen).not.toHaveProperty('total')
      expect(seen.document).not.toHaveProperty('total')
      for (const price of [full.total, ...full.document.lines.flatMap((l: { unitPrice: string; lineTotal: string }) => [l.unitPrice, l.lineTotal])]) {
        expect(JSON.stringify(seen)).not.toContain(`"${price}"`)
      }
      const list = (await call('GET', '/api/v1/orders?connection=demo-crm', keyOf('approver warehouse'))).body
      expect(list.orders[0]).not.toHaveProperty('total')
      expect(list.orders[0].document.lines[0]).not.toHaveProperty('unitPrice')
    })

    it('shows finance and sales managers the amounts', async () => {
      const full = await read('admin')
      expect(await read('approver finance')).toEqual(full)
      expect(await read('approver sales_manager')).toMatchObject({ total: full.total, document: { lines: full.document.lines } })
    })
  })

  // Last: admitted calls reach Bull Board's API, which can pause every queue.
  describe('who may call each route', () => {
    it('has an expectation for every registered route', () => {
      expect(routes.length).toBeGreaterThan(40)
      expect(routes.filter((r) => expected(r) === undefined).map((r) => `${r.method} ${r.url}`)).toEqual([])
    })

    it('lists no route in the policy that the app does not have', () => {
      const have = new Set(routes.map((r) => `${r.method} ${r.url}`))
      expect(Object.keys(routePolicy).filter((r) => !have.has(r))).toEqual([])
    })

    it('answers public routes without a key and checks signed ones by signature', async () => {
      expect((await call('GET', '/healthz')).status).toBe(200)
      const unsigned = await call('POST', '/webhooks/demo-crm', undefined, { type: 'order.created', data: {} })
      expect([unsigned.status, unsigned.body.error.code]).toEqual([401, 'invalid_signature'])
    })

    it('answers 401 without a valid key, 403 to roles not admitted and neither to roles admitted', { timeout: 120_000 }, async () => {
      const wrong: string[] = []
      for (const route of routes) {
        const admits = expected(route)
        if (!Array.isArray(admits)) continue
        const path = concrete(route.url)
        const body = ['POST', 'PUT', 'PATCH'].includes(route.method) ? {} : undefined
        const outcomes = await Promise.all([
          call(route.method, path).then((r) => ({ who: 'no key', status: r.status, want: 401 })),
          call(route.method, path, 'obk_not_a_key_at_all').then((r) => ({ who: 'an unknown key', status: r.status, want: 401 })),
          ...callers.map(async (c) => ({ who: c.name, status: (await call(route.method, path, c.key, body)).status, want: admits.includes(c.role) ? 'admitted' : 403 })),
        ])
        for (const o of outcomes) {
          const ok = o.want === 'admitted' ? o.status !== 401 && o.status !== 403 : o.status === o.want
          if (!ok) wrong.push(`${route.method} ${route.url} as ${o.who}: ${o.status}, expected ${o.want}`)
        }
      }
      expect(wrong).toEqual([])
    })

    it('asks a browser for Basic credentials on the dashboard and takes the key as the password', async () => {
      const asked = await call('GET', '/admin/queues')
      expect(asked.headers.get('www-authenticate')).toMatch(/^Basic realm="orderbridge ops"/)
      const basic = (key: string) => fetch(`${stack.url}/admin/queues/api/queues`, { headers: { authorization: `Basic ${Buffer.from(`someone:${key}`).toString('base64')}` } })
      expect((await basic(keyOf('ops'))).status).toBe(200)
      expect((await basic(keyOf('viewer'))).status).toBe(403)
    })
  })
})
