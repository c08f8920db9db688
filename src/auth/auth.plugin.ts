/**
 * Authentication for /api and /admin: `Authorization: Bearer <key>`, or HTTP Basic with the key as
 * the password so a browser can open the ops pages. Each route declares the roles it admits.
 */
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { errorBody } from '../shared/http-errors.ts'
import type { Principal, Role } from './api-keys.ts'

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
export function requireRoles(resolve: (key: string) => Promise<Principal | undefined>, allowed: readonly Role[], basicRealm?: string): onRequestHookHandler {
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
