/**
 * API keys: random, shown once, stored as a SHA-256 hash (they are high-entropy, so a slow hash
 * adds nothing). Each carries a role and, for integration keys, the one connection it may use.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { z } from 'zod'
import type { Queryable } from '../db/database.ts'

export const roles = ['admin', 'ops', 'integration', 'approver', 'viewer'] as const
export type Role = (typeof roles)[number]

export interface Principal {
  keyId: string
  name: string
  role: Role
  scope: string | null
}

export const newApiKeySchema = z.object({
  name: z.string().min(1).max(100),
  role: z.enum(roles),
  scope: z.string().min(1).optional().describe('integration: the connection id; approver: the approval level'),
})

export const hashKey = (key: string) => createHash('sha256').update(key).digest('hex')

export function generateKey(): string {
  return `obk_${randomBytes(24).toString('base64url')}`
}

export async function createApiKey(db: Queryable, input: z.infer<typeof newApiKeySchema>, key = generateKey()): Promise<{ id: string; key: string }> {
  const id = randomUUID()
  await db.query('insert into api_keys (id, name, key_hash, role, scope) values ($1, $2, $3, $4, $5)', [id, input.name, hashKey(key), input.role, input.scope ?? null])
  return { id, key }
}

/** Makes sure `key` is an admin key (the bootstrap key from the environment or the data folder). */
export async function ensureAdminKey(db: Queryable, key: string): Promise<void> {
  await db.query(
    `insert into api_keys (id, name, key_hash, role) values ($1, 'bootstrap admin', $2, 'admin') on conflict (key_hash) do nothing`,
    [randomUUID(), hashKey(key)],
  )
}

/**
 * Resolves a presented key. Lookups are cached briefly per process, so a revoked key stops working
 * within `cacheMs` everywhere without a database query on every request.
 */
export function createKeyResolver(db: Queryable, cacheMs = 5_000): (key: string) => Promise<Principal | undefined> {
  const cache = new Map<string, { at: number; principal: Principal | undefined }>()
  return async (key) => {
    const hash = hashKey(key)
    const hit = cache.get(hash)
    if (hit && Date.now() - hit.at < cacheMs) return hit.principal
    const [row] = await db.query<{ id: string; name: string; role: Role; scope: string | null }>(
      'select id, name, role, scope from api_keys where key_hash = $1 and revoked_at is null',
      [hash],
    )
    const principal = row && { keyId: row.id, name: row.name, role: row.role, scope: row.scope }
    if (cache.size > 10_000) cache.clear()
    cache.set(hash, { at: Date.now(), principal })
    return principal
  }
}
