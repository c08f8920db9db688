import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import type { Principal } from '../../src/auth/api-keys.ts'
import { enforceRoutePolicy, registeredRoutes } from '../../src/auth/auth.plugin.ts'
import { accessFor, routePolicy } from '../../src/auth/route-policy.ts'

const keys: Record<string, Principal> = {
  'admin-key': { keyId: 'a', name: 'admin', role: 'admin', level: null, connection: null },
  'viewer-key': { keyId: 'v', name: 'viewer', role: 'viewer', level: null, connection: null },
}
const resolve = async (key: string) => keys[key]

describe('the route policy', () => {
  it('names who may call each route, HEAD like GET, Bull Board by its subtree', () => {
    expect(accessFor('GET', '/api/v1/keys')).toEqual({ roles: ['admin'] })
    expect(accessFor('HEAD', '/api/v1/stats')).toEqual(accessFor('GET', '/api/v1/stats'))
    expect(accessFor('PUT', '/admin/queues/api/queues/ingest/pause')).toEqual({ roles: ['admin', 'ops'], basicRealm: 'orderbridge ops' })
    expect(accessFor('GET', '/healthz')).toBe('public')
  })

  it('has an error for a route it does not list', () => {
    expect(accessFor('DELETE', '/api/v1/orders/:id')).toEqual(new Error('route DELETE /api/v1/orders/:id declares no roles: add it to src/auth/route-policy.ts'))
    expect(accessFor('GET', '/debug')).toBeInstanceOf(Error)
    expect(accessFor('GET', '/admin/queuesX')).toBeInstanceOf(Error)
  })

  it('admits approvers to the approvals slot and only admins to key management and mapping or lookup writes', () => {
    for (const route of ['GET /api/v1/approvals', 'POST /api/v1/orders/:id/approval']) expect(routePolicy[route]).toEqual({ roles: ['admin', 'approver'] })
    for (const route of ['POST /api/v1/keys', 'GET /api/v1/keys', 'DELETE /api/v1/keys/:id', 'PUT /api/v1/mappings/:id', 'PUT /api/v1/lookups/:table', 'PATCH /api/v1/lookups/:table']) {
      expect(routePolicy[route]).toEqual({ roles: ['admin'] })
    }
  })

  it('never lets a route under /api or /admin go without a key', () => {
    for (const [route, access] of Object.entries(routePolicy)) {
      if (/ \/(api|admin)\//.test(route)) expect(typeof access, route).toBe('object')
    }
  })
})

describe('enforceRoutePolicy', () => {
  it('refuses to register a route the policy does not list', async () => {
    const app = Fastify()
    enforceRoutePolicy(app, resolve)
    const start = async () => {
      await app.register(
        async (api) => {
          api.get('/secrets', async () => 'nope')
        },
        { prefix: '/api/v1' },
      )
      await app.ready()
    }
    await expect(start()).rejects.toThrow('route GET /api/v1/secrets declares no roles: add it to src/auth/route-policy.ts')
  })

  it('checks the key before the route runs, and records every route with its access', async () => {
    const app = Fastify()
    enforceRoutePolicy(app, resolve)
    let ran = 0
    app.get('/healthz', async () => 'ok')
    await app.register(
      async (api) => {
        api.get('/keys', { onRequest: async () => void ran++ }, async (req) => ({ role: req.principal?.role }))
      },
      { prefix: '/api/v1' },
    )
    await app.ready()
    expect(registeredRoutes(app).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /healthz', 'HEAD /healthz', 'GET /api/v1/keys', 'HEAD /api/v1/keys'])
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200)
    expect((await app.inject({ url: '/api/v1/keys' })).statusCode).toBe(401)
    expect((await app.inject({ method: 'HEAD', url: '/api/v1/keys' })).statusCode).toBe(401)
    expect((await app.inject({ url: '/api/v1/keys', headers: { authorization: 'Bearer viewer-key' } })).statusCode).toBe(403)
    expect(ran).toBe(0)
    const ok = await app.inject({ url: '/api/v1/keys', headers: { authorization: 'Bearer admin-key' } })
    expect([ok.statusCode, ok.json(), ran]).toEqual([200, { role: 'admin' }, 1])
    await app.close()
  })
})
