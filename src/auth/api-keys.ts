/**
 * API keys: random, shown once, stored as a SHA-256 hash (they are high-entropy, so a slow hash
 * adds nothing). Each carries a role; approver keys also carry their approval level, integration
 * keys the one connection they may see. Nothing here logs or returns a key after creating it.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { z } from 'zod'
import type { Queryable } from '../db/database.ts'

export const roles = ['admin', 'ops', 'integration', 'approver', 'viewer'] as const
export type Role = (typeof roles)[number]

/** What an approver approves, and so what part of an order they see (see projection.ts). */
export const approvalLevels = ['sales_manager', 'finance', 'warehouse'] as const
export type ApprovalLevel = (typeof approvalLevels)[number]

export interface Principal {
  keyId: string
  name: string
  role: Role
  /** Approver keys only. */
  level: ApprovalLevel | null
  /** Integration keys only: the connection whose orders, changes and events the key may read. */
  connection: string | null
}

export type KeyResolver = (key: string) => Promise<Principal | undefined>

const keyFields = ['name', 'role', 'level', 'connection']

/**
 * The body of `POST /api/v1/keys`. `isConnection` says whether a connection id is configured.
 * Unknown fields are refused, each at its own path, rather than ignored: a misspelt `conection`
 * (or the old `scope`) is not silently lost.
 */
export function newApiKeySchema(isConnection: (id: string) => boolean) {
  return z
    .looseObject({
      name: z.string().trim().min(1).max(100),
      role: z.enum(roles),
      level: z.enum(approvalLevels).nullish(),
      connection: z.string().min(1).nullish(),
    })
    .superRefine((k, ctx) => {
      for (const field of Object.keys(k)) {
        if (!keyFields.includes(field)) ctx.addIssue({ code: 'custom', path: [field], message: `not a field of a key (${keyFields.join(', ')})` })
      }
      if (k.role === 'approver' && k.level == null) {
        ctx.addIssue({ code: 'custom', path: ['level'], message: `required for an approver key: one of ${approvalLevels.join(', ')}` })
      }
      if (k.role !== 'approver' && k.level != null) ctx.addIssue({ code: 'custom', path: ['level'], message: `only approver keys have a level, not ${k.role} keys` })
      if (k.role === 'integration' && k.connection == null) ctx.addIssue({ code: 'custom', path: ['connection'], message: 'required for an integration key: the connection it may see' })
      if (k.role !== 'integration' && k.connection != null) ctx.addIssue({ code: 'custom', path: ['connection'], message: `only integration keys have a connection, not ${k.role} keys` })
      if (k.role === 'integration' && k.connection != null && !isConnection(k.connection)) {
        ctx.addIssue({ code: 'custom', path: ['connection'], message: `no connection "${k.connection}" is configured` })
      }
    })
    .transform((k) => ({ name: k.name, role: k.role, level: k.level ?? null, connection: k.connection ?? null }))
}
export type NewApiKey = z.output<ReturnType<typeof newApiKeySchema>>

/** A key as the API shows it: never the key, never its hash. */
export interface ApiKeyView {
  id: string
  name: string
  role: Role
  level: ApprovalLevel | null
  connection: string | null
  createdAt: string
  revokedAt: string | null
  /** To the minute: see createKeyResolver. */
  lastUsedAt: string | null
}

export const hashKey = (key: string) => createHash('sha256').update(key).digest('hex')

export function generateKey(): string {
  return `obk_${randomBytes(24).toString('base64url')}`
}

const keyColumns = 'id, name, role, level, connection_id, created_at, revoked_at, last_used_at'

interface KeyRow {
  id: string
  name: string
  role: Role
  level: ApprovalLevel | null
  connection_id: string | null
  created_at: Date
  revoked_at: Date | null
  last_used_at: Date | null
}

const toView = (r: KeyRow): ApiKeyView => ({
  id: r.id,
  name: r.name,
  role: r.role,
  level: r.level,
  connection: r.connection_id,
  createdAt: r.created_at.toISOString(),
  revokedAt: r.revoked_at?.toISOString() ?? null,
  lastUsedAt: r.last_used_at?.toISOString() ?? null,
})

/** Stores a new key; the returned `key` is the only time anyone sees it. */
export async function createApiKey(db: Queryable, input: NewApiKey, key = generateKey()): Promise<ApiKeyView & { key: string }> {
  const [row] = await db.query<KeyRow>(
    `insert into api_keys (id, name, key_hash, role, level, connection_id) values ($1, $2, $3, $4, $5, $6) returning ${keyColumns}`,
    [randomUUID(), input.name, hashKey(key), input.role, input.level, input.connection],
  )
  return { ...toView(row!), key }
}

/** Every key, oldest first, revoked ones included (with `revokedAt`). */
export async function listApiKeys(db: Queryable): Promise<ApiKeyView[]> {
  return (await db.query<KeyRow>(`select ${keyColumns} from api_keys order by created_at, id`)).map(toView)
}

export class LastAdminKey extends Error {}

/**
 * Marks a key revoked. Revoking a revoked key changes nothing (`changed: false`). Refuses to revoke
 * the last admin key, which would leave nobody able to manage keys. Run it in a transaction.
 */
export async function revokeApiKey(tx: Queryable, id: string): Promise<{ key: ApiKeyView; changed: boolean } | undefined> {
  // Locking every live admin key serialises concurrent revocations of the last two admins.
  const admins = await tx.query<{ id: string }>(`select id from api_keys where role = 'admin' and revoked_at is null for update`)
  const [current] = await tx.query<KeyRow>(`select ${keyColumns} from api_keys where id = $1 for update`, [id])
  if (!current) return undefined
  if (current.revoked_at) return { key: toView(current), changed: false }
  if (current.role === 'admin' && admins.length <= 1) throw new LastAdminKey('this is the last admin key: create another admin key before revoking it')
  const [row] = await tx.query<KeyRow>(`update api_keys set revoked_at = now() where id = $1 returning ${keyColumns}`, [id])
  return { key: toView(row!), changed: true }
}

/** Makes sure `key` is an admin key (the bootstrap key from the environment or the data folder). */
export async function ensureAdminKey(db: Queryable, key: string): Promise<void> {
  await db.query(
    `insert into api_keys (id, name, key_hash, role) values ($1, 'bootstrap admin', $2, 'admin') on conflict (key_hash) do nothing`,
    [randomUUID(), hashKey(key)],
  )
}

/** How stale `last_used_at` may get: writing it on every request would cost a write per request. */
const lastUsedResolutionMs = 60_000

/**
 * Resolves a presented key against the database, every time: a revoked key fails on its next
 * lookup. Caching belongs in front of it (see revocation.ts), where revocations can reach it.
 */
export function createKeyResolver(db: Queryable): KeyResolver {
  return async (key) => {
    const [row] = await db.query<{ id: string; name: string; role: Role; level: ApprovalLevel | null; connection_id: string | null; last_used_at: Date | null }>(
      'select id, name, role, level, connection_id, last_used_at from api_keys where key_hash = $1 and revoked_at is null',
      [hashKey(key)],
    )
    if (!row) return undefined
    if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > lastUsedResolutionMs) {
      await db.query('update api_keys set last_used_at = now() where id = $1', [row.id])
    }
    return { keyId: row.id, name: row.name, role: row.role, level: row.level, connection: row.connection_id }
  }
}
