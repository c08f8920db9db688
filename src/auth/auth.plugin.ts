/**
 * Authentication for /api, /admin and /metrics: `Authorization: Bearer <key>`, or HTTP Basic with
 * the key as the password so a browser can open the ops pages. Which roles a route admits is
 * decided in route-policy.ts; enforceRoutePolicy attaches the check to every route as it is
 * registered. Keys are never logged: only the key's id and role.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { errorBody } from '../shared/http-errors.ts'
import type { KeyResolver, Principal, Role } from './api-keys.ts'
import { accessFor, type Access } from './route-policy.ts'

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

export function presentedKey(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization
  if (!header) return undefined
  const [scheme, value] = header.split(' ', 2)
  if (!value) return undefined
  if (scheme?.toLowerCase() === 'bearer') return value.trim()
  if (scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8')
    return decoded.slice(decoded.indexOf(':') + 1) || undefined
  }
  return undefined
}

/** An onRequest hook that admits only `allowed` roles. `basicRealm` makes browsers ask for the key. */
export function requireRoles(resolve: KeyResolver, allowed: readonly Role[], basicRealm?: string): onRequestHookHandler {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const key = presentedKey(req)
    const principal = key ? await resolve(key) : undefined
    if (!principal) {
      if (basicRealm) reply.header('www-authenticate', `Basic realm="${basicRealm}", charset="UTF-8"`)
      return reply.code(401).send(errorBody('unauthorized', key ? 'the API key is not valid' : 'send Authorization: Bearer <api key>'))
    }
    if (!allowed.includes(principal.role)) {
      return reply.code(403).send(errorBody('forbidden', `the ${principal.role} role may not use this route`))
    }
    req.principal = principal
  }
}

export interface RegisteredRoute {
  method: string
  url: string
  access: Access
}

const registries = new WeakMap<FastifyInstance, RegisteredRoute[]>()

/** Every route registered under enforceRoutePolicy, one entry per method (HEAD included), with its access. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registries.get(app) ?? []
}

/**
 * Gives every route registered on `app` (and its child plugins, registered after this) the key
 * check its entry in route-policy.ts asks for, ahead of the route's own hooks. A route with no
 * entry makes registration throw, so the app does not start.
 */
export function enforceRoutePolicy(app: FastifyInstance, resolve: KeyResolver): void {
  const registered: RegisteredRoute[] = []
  registries.set(app, registered)
  app.addHook('onRoute', (route) => {
    const methods = [route.method].flat()
    const rules = methods.map((m) => accessFor(m, route.url))
    const failed = rules.find((r) => r instanceof Error)
    if (failed) throw failed
    const [access] = rules
    if (rules.some((r) => JSON.stringify(r) !== JSON.stringify(access))) {
      throw new Error(`route ${methods.join(',')} ${route.url} has different policies per method: register one route per method`)
    }
    if (access === undefined || access instanceof Error) return
    for (const method of methods) registered.push({ method, url: route.url, access })
    if (typeof access !== 'object') return
    const own = route.onRequest === undefined ? [] : [route.onRequest].flat()
    route.onRequest = [requireRoles(resolve, access.roles, access.basicRealm), ...own]
  })
}
