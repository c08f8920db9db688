import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SessionCache, SessionExpired, sessionKey, SyncFailure, withSession, type SessionGrant } from '../../src/connector-kit/index.ts'

/** A login that hands out token-1, token-2, … and counts its calls. */
function fakeLogin(ttlMs?: number, delayMs = 0) {
  let calls = 0
  const login = async (): Promise<SessionGrant<string>> => {
    calls += 1
    const token = `token-${calls}`
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    return ttlMs === undefined ? { value: token } : { value: token, ttlMs }
  }
  return { login, calls: () => calls }
}

describe('SessionCache', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('lets concurrent callers share one login', async () => {
    const cache = new SessionCache<string>()
    const { login, calls } = fakeLogin(60_000, 50)
    const all = Promise.all(Array.from({ length: 10 }, () => cache.get('erp', login)))
    await vi.advanceTimersByTimeAsync(50)
    expect(await all).toEqual(Array(10).fill('token-1'))
    expect(calls()).toBe(1)
  })

  it('reuses the session until its expiry minus the margin, then logs in again', async () => {
    const cache = new SessionCache<string>({ marginMs: 10_000 })
    const { login, calls } = fakeLogin(60_000)
    expect(await cache.get('erp', login)).toBe('token-1')
    await vi.advanceTimersByTimeAsync(49_999)
    expect(await cache.get('erp', login)).toBe('token-1')
    await vi.advanceTimersByTimeAsync(1)
    expect(await cache.get('erp', login)).toBe('token-2')
    expect(calls()).toBe(2)
  })

  it('uses the default TTL when the login does not say, and at most half the lifetime as margin', async () => {
    const cache = new SessionCache<string>({ defaultTtlMs: 1_000, marginMs: 60_000 })
    const { login } = fakeLogin()
    expect(await cache.get('erp', login)).toBe('token-1')
    await vi.advanceTimersByTimeAsync(499)
    expect(await cache.get('erp', login)).toBe('token-1')
    await vi.advanceTimersByTimeAsync(1)
    expect(await cache.get('erp', login)).toBe('token-2')
  })

  it('keeps keys apart', async () => {
    const cache = new SessionCache<string>()
    const { login } = fakeLogin(60_000)
    expect(await cache.get('a', login)).toBe('token-1')
    expect(await cache.get('b', login)).toBe('token-2')
    expect(await cache.get('a', login)).toBe('token-1')
  })

  it('logs in again after invalidate()', async () => {
    const cache = new SessionCache<string>()
    const { login } = fakeLogin(60_000)
    expect(await cache.get('erp', login)).toBe('token-1')
    cache.invalidate('erp')
    expect(await cache.get('erp', login)).toBe('token-2')
  })

  it('does not drop a fresh session for a caller whose old one was refused', async () => {
    const cache = new SessionCache<string>()
    const { login } = fakeLogin(60_000)
    const old = await cache.get('erp', login)
    cache.invalidate('erp', old)
    const fresh = await cache.get('erp', login)
    cache.invalidate('erp', old) // a second caller that also held the old token
    expect(await cache.get('erp', login)).toBe(fresh)
  })

  it('shares a failed login with every waiter and tries again on the next call', async () => {
    const cache = new SessionCache<string>()
    let calls = 0
    const login = async (): Promise<SessionGrant<string>> => {
      calls += 1
      if (calls === 1) throw new Error('login refused')
      return { value: 'token-2' }
    }
    const results = await Promise.allSettled([cache.get('erp', login), cache.get('erp', login)])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(calls).toBe(1)
    expect(await cache.get('erp', login)).toBe('token-2')
  })

  it('does not store a login that was invalidated while it ran', async () => {
    const cache = new SessionCache<string>()
    const { login } = fakeLogin(60_000, 100)
    const first = cache.get('erp', login)
    cache.invalidate('erp')
    await vi.advanceTimersByTimeAsync(100)
    expect(await first).toBe('token-1')
    const second = cache.get('erp', login)
    await vi.advanceTimersByTimeAsync(100)
    expect(await second).toBe('token-2')
  })
})

describe('sessionKey', () => {
  it('changes with the secrets, ignores key order and does not contain them', () => {
    const a = sessionKey('kingdee', { user: 'u', password: 'hunter2' })
    expect(a).toBe(sessionKey('kingdee', { password: 'hunter2', user: 'u' }))
    expect(a).not.toBe(sessionKey('kingdee', { user: 'u', password: 'hunter3' }))
    expect(a).not.toContain('hunter2')
    expect(a.startsWith('kingdee:')).toBe(true)
  })
})

describe('withSession', () => {
  it('calls with the cached session', async () => {
    const cache = new SessionCache<string>()
    const { login, calls } = fakeLogin(60_000)
    expect(await withSession(cache, 'erp', login, async (token) => `used ${token}`)).toBe('used token-1')
    expect(await withSession(cache, 'erp', login, async (token) => `used ${token}`)).toBe('used token-1')
    expect(calls()).toBe(1)
  })

  it('logs in again and retries once when the call says the session expired', async () => {
    const cache = new SessionCache<string>()
    const { login, calls } = fakeLogin(60_000)
    await cache.get('erp', login)
    const seen: string[] = []
    const result = await withSession(cache, 'erp', login, async (token) => {
      seen.push(token)
      if (token === 'token-1') throw new SessionExpired()
      return 'ok'
    })
    expect(result).toBe('ok')
    expect(seen).toEqual(['token-1', 'token-2'])
    expect(calls()).toBe(2)
  })

  it('recognises the caller’s own expired-session errors', async () => {
    const cache = new SessionCache<string>()
    const { login } = fakeLogin(60_000)
    const invalidSession = Object.assign(new Error('INVALID_SESSION_ID'), { status: 401 })
    let attempts = 0
    const result = await withSession(
      cache,
      'sf',
      login,
      async () => {
        attempts += 1
        if (attempts === 1) throw invalidSession
        return attempts
      },
      { isExpired: (err) => (err as { status?: number }).status === 401 },
    )
    expect(result).toBe(2)
  })

  it('turns a fresh session that is refused too into an auth failure', async () => {
    const cache = new SessionCache<string>()
    const { login, calls } = fakeLogin(60_000)
    const failure = await withSession(cache, 'erp', login, async () => {
      throw new SessionExpired()
    }, { connectorId: 'kingdee' }).catch((err: unknown) => err)
    expect(failure).toBeInstanceOf(SyncFailure)
    expect((failure as SyncFailure).kind).toBe('auth')
    expect((failure as SyncFailure).details.connectorId).toBe('kingdee')
    expect(calls()).toBe(2)
    // Not left cached: the next call logs in again.
    await cache.get('erp', login)
    expect(calls()).toBe(3)
  })

  it('passes other errors through without retrying', async () => {
    const cache = new SessionCache<string>()
    const { login } = fakeLogin(60_000)
    let attempts = 0
    const boom = new Error('HTTP 500')
    await expect(
      withSession(cache, 'erp', login, async () => {
        attempts += 1
        throw boom
      }),
    ).rejects.toBe(boom)
    expect(attempts).toBe(1)
  })

  it('shares one re-login among concurrent calls whose session expired', async () => {
    const cache = new SessionCache<string>()
    const { login, calls } = fakeLogin(60_000)
    await cache.get('erp', login)
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        withSession(cache, 'erp', login, async (token) => {
          if (token === 'token-1') throw new SessionExpired()
          return token
        }),
      ),
    )
    expect(results).toEqual(Array(5).fill('token-2'))
    expect(calls()).toBe(2)
  })
})
