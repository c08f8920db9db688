/**
 * Sessions and access tokens for vendors that make you log in first (Kingdee's session cookie, SAP's
 * CSRF token and cookie, Tryton's session, Fxiaoke's corpAccessToken, Salesforce's OAuth token):
 * one login per key at a time (concurrent callers share it), the session reused until shortly before
 * it expires, and dropped when the remote says it is no longer valid so the next call logs in again.
 *
 * The cache lives in this process's memory only: each worker process logs in for itself, nothing
 * goes to Redis or the database, and a restart logs in again. That is deliberate: a session is cheap
 * to get again and must not be stored next to the queue. Vendors that allow one session per user
 * at a time should get their own user per worker process, or a short TTL.
 *
 * It does not retry logins (a failed login rejects every caller waiting for it, and the next call
 * tries again) and does not classify errors: the connector's `classify()` does.
 */
import { createHash } from 'node:crypto'
import { SyncFailure } from './failure.ts'

/** What a login answers. */
export interface SessionGrant<T> {
  value: T
  /** How long the vendor says the session lives (e.g. `expires_in * 1000`); default: the cache's `defaultTtlMs`. */
  ttlMs?: number
}

export interface SessionCacheOptions {
  /** A session is renewed this long before it expires (default 60 s, at most half its lifetime). */
  marginMs?: number
  /** Lifetime of a session whose login did not say (default 10 minutes). */
  defaultTtlMs?: number
  /** The clock, for tests. Default `Date.now`. */
  now?: () => number
}

interface Entry<T> {
  /** Set while a login runs; every caller in the meantime awaits the same promise. */
  pending?: Promise<T>
  value?: T
  /** When the session is renewed: the expiry minus the margin. */
  renewAt: number
}

/**
 * @example
 * const sessions = new SessionCache<string>()
 * const token = await sessions.get(sessionKey(ctx.connectionId, ctx.secrets), () => login(ctx))
 * // after the remote refused the token as expired:
 * sessions.invalidate(key, token)
 */
export class SessionCache<T> {
  readonly #entries = new Map<string, Entry<T>>()
  readonly #marginMs: number
  readonly #defaultTtlMs: number
  readonly #now: () => number

  constructor(options: SessionCacheOptions = {}) {
    this.#marginMs = options.marginMs ?? 60_000
    this.#defaultTtlMs = options.defaultTtlMs ?? 10 * 60_000
    this.#now = options.now ?? Date.now
  }

  /**
   * The session for `key`: the cached one while it is fresh, else the result of `login()`. While a
   * login runs, other callers for the same key wait for it instead of logging in too.
   */
  get(key: string, login: () => Promise<SessionGrant<T>>): Promise<T> {
    const entry = this.#entries.get(key)
    if (entry?.pending) return entry.pending
    if (entry && entry.value !== undefined && this.#now() < entry.renewAt) return Promise.resolve(entry.value)
    return this.#login(key, login)
  }

  #login(key: string, login: () => Promise<SessionGrant<T>>): Promise<T> {
    const entry: Entry<T> = { renewAt: 0 }
    const pending = Promise.resolve()
      .then(login)
      .then(
        (grant) => {
          const ttl = Math.max(0, grant.ttlMs ?? this.#defaultTtlMs)
          const margin = Math.min(this.#marginMs, ttl / 2)
          // Stored only if nobody invalidated the login while it ran.
          if (this.#entries.get(key) === entry) {
            entry.value = grant.value
            entry.renewAt = this.#now() + ttl - margin
            entry.pending = undefined
          }
          return grant.value
        },
        (err: unknown) => {
          // No negative caching: the next call logs in again.
          if (this.#entries.get(key) === entry) this.#entries.delete(key)
          throw err
        },
      )
    entry.pending = pending
    this.#sweep()
    this.#entries.set(key, entry)
    return pending
  }

  /**
   * Drops the session for `key` so the next `get` logs in again. With `stale`, only when the cached
   * session is that value: a caller whose old token was refused does not throw away the fresh
   * session another caller has just got. A login in flight is never dropped by a `stale` value.
   */
  invalidate(key: string, stale?: T): void {
    const entry = this.#entries.get(key)
    if (!entry) return
    if (stale !== undefined && (entry.pending !== undefined || entry.value !== stale)) return
    this.#entries.delete(key)
  }

  /** Forgets every session (e.g. when a connection's secrets change). */
  clear(): void {
    this.#entries.clear()
  }

  /** How many keys hold a session or a login in flight. */
  get size(): number {
    return this.#entries.size
  }

  // Keys change with the secrets; expired sessions are dropped so old keys do not pile up.
  #sweep(): void {
    if (this.#entries.size < 64) return
    const now = this.#now()
    for (const [key, entry] of this.#entries) {
      if (entry.pending === undefined && entry.renewAt <= now) this.#entries.delete(key)
    }
  }
}

/**
 * A cache key for a connection's session that changes when its credentials change, without holding
 * them: `<connectionId>:<sha256 of the secrets>`.
 */
export function sessionKey(connectionId: string, secrets: unknown): string {
  const digest = createHash('sha256').update(stableJson(secrets)).digest('base64url').slice(0, 22)
  return `${connectionId}:${digest}`
}

function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined'
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`
  const record = value as Record<string, unknown>
  return `{${Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${stableJson(record[key])}`)
    .join(',')}}`
}

/**
 * Thrown by a call (or recognised by `isExpired`) when the remote says the session is no longer
 * valid, e.g. Salesforce's `INVALID_SESSION_ID`, Kingdee's "session lost" answer, Fxiaoke's expired
 * corpAccessToken. `withSession` then logs in again and repeats the call once.
 */
export class SessionExpired extends Error {
  constructor(message = 'the remote session expired', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SessionExpired'
  }
}

export interface WithSessionOptions {
  /** Recognises a session-expired error besides `SessionExpired` (e.g. an HTTP 401 with a known code). */
  isExpired?(err: unknown): boolean
  /** Named in the `auth` failure when even a fresh session is refused. */
  connectorId?: string
}

/**
 * Runs `call` with the session for `key`. When the call fails because the session expired (it threw
 * `SessionExpired`, or `options.isExpired` says so), the session is invalidated, a new one is got
 * and the call runs once more. If the fresh session is refused too, the result is an `auth`
 * SyncFailure: logging in works but the session is not accepted, which no retry fixes.
 *
 * Only use it for calls the remote refused *before* doing anything (an expired session is such a
 * refusal), since the call runs twice.
 *
 * @example
 * const order = await withSession(sessions, sessionKey(ctx.connectionId, ctx.secrets), () => login(ctx), (sid) => client.save(sid, doc), {
 *   isExpired: (err) => isKingdeeSessionLost(err),
 *   connectorId: 'kingdee',
 * })
 */
export async function withSession<T, R>(
  cache: SessionCache<T>,
  key: string,
  login: () => Promise<SessionGrant<T>>,
  call: (session: T) => Promise<R>,
  options: WithSessionOptions = {},
): Promise<R> {
  const expired = (err: unknown) => err instanceof SessionExpired || options.isExpired?.(err) === true
  const session = await cache.get(key, login)
  try {
    return await call(session)
  } catch (err) {
    if (!expired(err)) throw err
    cache.invalidate(key, session)
  }
  const fresh = await cache.get(key, login)
  try {
    return await call(fresh)
  } catch (err) {
    if (!expired(err)) throw err
    cache.invalidate(key, fresh)
    throw new SyncFailure('auth', 'the remote refused a freshly opened session', options.connectorId ? { connectorId: options.connectorId } : {}, { cause: err })
  }
}
