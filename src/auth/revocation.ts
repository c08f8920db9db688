/**
 * Key lookups cached per process, without letting a revoked key live on in any process's cache.
 *
 * A revocation token in Redis changes on every revocation. Each cached answer remembers the token
 * it was read under, and every request reads the current token first (one GET, cheaper than the
 * database lookup it saves): after a revocation no process serves an answer cached before it.
 * When the token cannot be read (Redis down or slow), nothing is cached and every request asks
 * the database, so a Redis outage costs speed, never correctness. Only positive answers are
 * cached, so a new key works at once and a flood of wrong keys cannot fill the cache.
 */
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { hashKey, type KeyResolver, type Principal } from './api-keys.ts'

export interface RevocationSignal {
  /** The current token, or undefined when it cannot be read now (then nothing may be cached). */
  current(): Promise<string | undefined>
  /** Changes the token. Every request that starts after this resolves sees the new one. */
  bump(): Promise<void>
}

/** How long a token read may take before the request asks the database instead. */
const tokenReadTimeoutMs = 250

/** The signal for one deployment; `prefix` is the queue prefix (`{orderbridge}`), so tests' keys are cleaned up with their queues. */
export function redisRevocationSignal(redis: Redis, prefix: string): RevocationSignal {
  const key = `${prefix}:api-keys:revocation`
  return {
    async current() {
      // The queue connection waits for a reconnect instead of failing; an auth check must not.
      if (redis.status !== 'ready') return undefined
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), tokenReadTimeoutMs)
      })
      try {
        const token = await Promise.race([redis.get(key), timeout])
        if (token) return token
        // No token (first start, or Redis was flushed): start a new one that no cached answer
        // carries. Until it is there, answer uncached.
        if (token === null) await Promise.race([redis.set(key, randomUUID(), 'NX'), timeout])
        return undefined
      } catch {
        return undefined
      } finally {
        clearTimeout(timer)
      }
    },
    async bump() {
      await redis.set(key, randomUUID())
    },
  }
}

export interface CachedKeyResolver extends KeyResolver {
  /** Drops this process's cached answers (after a revocation here, before the token changes). */
  clear(): void
}

/** Caches `resolve`'s positive answers for up to `ttlMs`, as long as the revocation token stays the same. */
export function cachedKeyResolver(resolve: KeyResolver, signal: RevocationSignal, ttlMs = 5_000): CachedKeyResolver {
  const cache = new Map<string, { at: number; token: string; principal: Principal }>()
  const cached = async (key: string) => {
    const token = await signal.current()
    if (token === undefined) return resolve(key)
    const hash = hashKey(key)
    const hit = cache.get(hash)
    if (hit && hit.token === token && Date.now() - hit.at < ttlMs) return hit.principal
    const principal = await resolve(key)
    if (!principal) {
      cache.delete(hash)
      return undefined
    }
    if (cache.size >= 10_000) cache.clear()
    cache.set(hash, { at: Date.now(), token, principal })
    return principal
  }
  return Object.assign(cached, { clear: () => cache.clear() })
}
