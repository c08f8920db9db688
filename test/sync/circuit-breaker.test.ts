/**
 * The circuit breaker against the real Redis on 127.0.0.1 (and a real BullMQ queue to pause), with a
 * fake clock. Two breaker instances on one Redis stand for two worker processes.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { circuitBreakerDefaults, type CircuitBreakerSettings } from '../../src/config.ts'
import type { Logger } from '../../src/connector-kit/index.ts'
import { createQueueSet, createRedis, type QueueSet } from '../../src/queue/queues.ts'
import { readChanges } from '../../src/status/change-feed.ts'
import {
  breakerKeys,
  createCircuitBreaker,
  readBreaker,
  resumeConnection,
  trustClosedMs,
  verdictOf,
  type CircuitBreaker,
  type StepEvidence,
} from '../../src/sync/circuit-breaker.ts'
import { openTestDatabase, uniqueName, type TestDatabase } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'

const transient: StepEvidence = { outcome: 'failure', kind: 'transient', message: 'remote answered HTTP 503' }
const success: StepEvidence = { outcome: 'success' }

describe('which steps count against the remote', () => {
  it.each([
    [{ outcome: 'success' }, 'success'],
    [{ outcome: 'none' }, 'neutral'],
    [{ outcome: 'failure', kind: 'transient', message: '503' }, 'failure'],
    [{ outcome: 'failure', kind: 'unknown_outcome', message: 'socket hang up' }, 'failure'],
    [{ outcome: 'failure', kind: 'transient', message: '503', retryAfterMs: 1000 }, 'neutral'],
    [{ outcome: 'failure', kind: 'rate_limited', message: '429' }, 'neutral'],
    [{ outcome: 'failure', kind: 'conflict', message: 'lease' }, 'neutral'],
    [{ outcome: 'failure', kind: 'data', message: '422' }, 'neutral'],
    [{ outcome: 'failure', kind: 'not_found', message: '404' }, 'neutral'],
    [{ outcome: 'failure', kind: 'bug', message: 'oops' }, 'neutral'],
    [{ outcome: 'failure', kind: 'auth', message: '401' }, 'halt'],
    [{ outcome: 'failure', kind: 'config', message: 'no capability' }, 'halt'],
  ] as [StepEvidence, string][])('%o is %s', (evidence, verdict) => {
    expect(verdictOf(evidence)).toBe(verdict)
  })
})

describe('a circuit breaker shared in Redis', () => {
  const prefixName = uniqueName('test_breaker')
  let queues: QueueSet
  let database: TestDatabase
  let clock = 1_700_000_000_000
  const now = () => clock
  let logs: { level: string; fields: Record<string, unknown>; msg?: string }[] = []
  const log: Logger = {
    info: (fields, msg) => logs.push({ level: 'info', fields: fields as Record<string, unknown>, msg }),
    warn: (fields, msg) => logs.push({ level: 'warn', fields: fields as Record<string, unknown>, msg }),
    error: (fields, msg) => logs.push({ level: 'error', fields: fields as Record<string, unknown>, msg }),
  }
  const others: { disconnect(): void }[] = []
  let connectionId: string
  let seq = 0

  beforeAll(async () => {
    database = await openTestDatabase('pglite')
    queues = createQueueSet({ redisUrl, prefix: prefixName, syncConnections: [...Array.from({ length: 20 }, (_, i) => `erp-${i}`), 'erp-neighbour'] })
  })
  afterAll(async () => {
    for (const o of others) o.disconnect()
    await queues?.close()
    await database?.drop()
    await deleteQueueKeys(prefixName)
  })
  beforeEach(() => {
    // A fresh connection per test keeps the tests independent on one Redis.
    connectionId = `erp-${seq++}`
    logs = []
  })
  afterEach(async () => {
    await queues.sync(connectionId).resume()
  })

  /** A breaker as one worker process would make it; `own` gives it its own Redis connection. */
  const breaker = (settings: Partial<CircuitBreakerSettings> = {}, own = false): CircuitBreaker => {
    const redis = own ? createRedis(redisUrl) : queues.redis
    if (own) others.push(redis)
    return createCircuitBreaker({
      redis,
      prefix: queues.prefix,
      connectionId,
      queue: queues.sync(connectionId),
      db: database.db,
      log,
      now,
      settings: { ...circuitBreakerDefaults, cooldownMs: 1_000, maxCooldownMs: 3_000, ...settings },
    })
  }
  const breakerChanges = async () =>
    (await readChanges(database.db, 0, 1000)).filter((c) => c.connectionId === connectionId).map((c) => ({ type: c.type, ...c.data }))

  describe('when it is closed', () => {
    it('opens after N consecutive infrastructure failures, pauses the queue, and logs, counts and publishes the transition', async () => {
      const b = breaker({ failureThreshold: 3 })
      await b.record('j1', transient)
      await b.record('j2', transient)
      await b.record('j3', success) // a success in between starts the count again
      await b.record('j4', transient)
      await b.record('j5', transient)
      expect((await b.snapshot()).state).toBe('closed')
      expect(await queues.sync(connectionId).isPaused()).toBe(false)

      const opened = await b.record('j6', transient)
      expect(opened).toMatchObject({ from: 'closed', to: 'open', openUntil: clock + 1_000, cooldownMs: 1_000 })
      expect(opened?.reason).toBe('3 consecutive failures, the last: transient: remote answered HTTP 503')
      expect(await queues.sync(connectionId).isPaused()).toBe(true)
      expect(await b.snapshot()).toMatchObject({ state: 'open', openUntil: clock + 1_000, transitions: { 'closed->open': 1 } })
      expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ connectorId: connectionId, breaker: { from: 'closed', to: 'open' } }) }))
      expect(await breakerChanges()).toEqual([expect.objectContaining({ type: 'breaker.opened', from: 'closed', to: 'open', cooldownMs: 1_000 })])
    })

    it('ignores the document’s faults, its own conflicts and a remote that says when to come back', async () => {
      const b = breaker({ failureThreshold: 2, window: 4, errorRate: 0.5 })
      for (const kind of ['data', 'not_found', 'conflict', 'rate_limited', 'bug'] as const) {
        for (let i = 0; i < 3; i++) await b.record(`${kind}-${i}`, { outcome: 'failure', kind, message: kind })
      }
      for (let i = 0; i < 3; i++) await b.record(`ra-${i}`, { ...transient, retryAfterMs: 0 })
      for (let i = 0; i < 3; i++) await b.record(`none-${i}`, { outcome: 'none' })
      expect(await b.snapshot()).toMatchObject({ state: 'closed', consecutiveFailures: 0, recent: { calls: 0, failures: 0 } })
    })

    it('opens on an error rate over the window once half the window has been seen', async () => {
      const b = breaker({ failureThreshold: 100, window: 10, errorRate: 0.5 })
      const outcomes = [transient, success, transient, success] // 2 of 4: too few calls to judge
      for (const [i, e] of outcomes.entries()) expect(await b.record(`j${i}`, e)).toBeUndefined()
      const opened = await b.record('j5', transient) // 3 of 5
      expect(opened).toMatchObject({ from: 'closed', to: 'open', reason: '3 of the last 5 calls failed, the last: transient: remote answered HTTP 503' })
    })

    it('admits every job', async () => {
      expect(await breaker().admit('j1')).toEqual({ run: true, probe: false })
    })
  })

  describe('when the cooldown is over', () => {
    const openIt = async (b: CircuitBreaker) => {
      for (let i = 0; i < circuitBreakerDefaults.failureThreshold; i++) await b.record(`f${i}`, transient)
      expect((await b.snapshot()).state).toBe('open')
    }

    it('stays open until then, refusing jobs for the rest of the cooldown', async () => {
      const b = breaker()
      await openIt(b)
      clock += 400
      await b.tick()
      expect((await b.snapshot()).state).toBe('open')
      const gate = await b.admit('j1')
      expect(gate.run).toBe(false)
      expect(gate.run === false && gate.retryInMs).toBeGreaterThanOrEqual(600)
    })

    it('half-opens, lets one probe through, and closes and resumes on its success', async () => {
      const b = breaker()
      const queue = queues.sync(connectionId)
      await openIt(b)
      clock += 1_000
      await b.tick()
      expect((await b.snapshot()).state).toBe('half_open')
      expect(await queue.isPaused()).toBe(false)
      expect(await queue.getGlobalConcurrency()).toBe(1)

      expect(await b.admit('probe')).toEqual({ run: true, probe: true })
      expect((await b.admit('other')).run).toBe(false)
      // A straggler's outcome does not decide; only the probe's does.
      expect(await b.record('other', success)).toBeUndefined()
      expect(await b.admit('probe')).toEqual({ run: true, probe: true }) // the same job, fetched again

      expect(await b.record('probe', success)).toMatchObject({ from: 'half_open', to: 'closed', reason: 'the probe succeeded' })
      expect(await queue.isPaused()).toBe(false)
      expect(await queue.getGlobalConcurrency()).toBeNull()
      expect(await b.admit('other')).toEqual({ run: true, probe: false })
      expect((await b.snapshot()).transitions).toEqual({ 'closed->open': 1, 'open->half_open': 1, 'half_open->closed': 1 })
      expect((await breakerChanges()).map((c) => c.type)).toEqual(['breaker.opened', 'breaker.closed'])
    })

    it('re-opens on a failed probe with double the cooldown, up to the maximum', async () => {
      const b = breaker({ cooldownMs: 1_000, maxCooldownMs: 3_000 })
      await openIt(b)
      const cooldowns: number[] = []
      for (let round = 0; round < 3; round++) {
        clock = (await b.snapshot()).openUntil!
        await b.tick()
        await b.admit(`probe-${round}`)
        const reopened = await b.record(`probe-${round}`, transient)
        expect(reopened).toMatchObject({ from: 'half_open', to: 'open' })
        cooldowns.push(reopened!.cooldownMs)
        expect(await queues.sync(connectionId).isPaused()).toBe(true)
      }
      expect(cooldowns).toEqual([2_000, 3_000, 3_000])
      clock = (await b.snapshot()).openUntil!
      await b.tick()
      await b.admit('probe-last')
      await b.record('probe-last', success)
      // Closed again, the next opening starts from the configured cooldown.
      await openIt(b)
      expect((await b.snapshot()).openUntil).toBe(clock + 1_000)
    })

    it('hands the probe to the next job when the probe never reached the remote', async () => {
      const b = breaker()
      await openIt(b)
      clock += 1_000
      await b.tick()
      await b.admit('skipped')
      expect((await b.admit('next')).run).toBe(false)
      expect(await b.record('skipped', { outcome: 'none' })).toBeUndefined()
      expect(await b.admit('next')).toEqual({ run: true, probe: true })
      expect((await b.snapshot()).state).toBe('half_open')
    })
  })

  describe('across worker processes', () => {
    it('shares one state: what one opens, the other sees; one of them half-opens; either may close it', async () => {
      const a = breaker({}, true)
      const b = breaker({}, true)
      for (let i = 0; i < 5; i++) await a.record(`f${i}`, transient)
      expect((await b.snapshot()).state).toBe('open')
      expect((await b.admit('j1')).run).toBe(false)

      clock += 1_000
      await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()])
      expect((await a.snapshot()).transitions['open->half_open']).toBe(1)
      expect(logs.filter((l) => l.msg?.includes('half-open'))).toHaveLength(1)

      expect(await a.admit('probe')).toEqual({ run: true, probe: true })
      expect((await b.admit('j2')).run).toBe(false)
      // The probe's job may finish in another process (stalled-job recovery): its token is the job id.
      expect(await b.admit('probe')).toEqual({ run: true, probe: true })
      await b.record('probe', success)
      expect((await a.snapshot()).state).toBe('closed')
      expect(await a.admit('j2')).toEqual({ run: true, probe: false })
    })

    it('trusts a closed breaker it has just seen for a moment: an opening elsewhere reaches it that late', async () => {
      const a = breaker({ failureThreshold: 2 }, true)
      const b = breaker({ failureThreshold: 2 }, true)
      expect(await b.admit('j0')).toEqual({ run: true, probe: false })
      await a.record('f1', transient)
      await a.record('f2', transient)
      expect((await b.snapshot()).state).toBe('open')
      expect((await b.admit('j1')).run).toBe(true) // within trustClosedMs of seeing it closed
      await new Promise((r) => setTimeout(r, trustClosedMs + 20))
      expect((await b.admit('j2')).run).toBe(false)
    })

    it('counts the successes of trusted steps together, before any failure that follows them', async () => {
      const b = breaker({ failureThreshold: 3, window: 10 })
      await b.admit('j0')
      await b.record('s1', success)
      await b.record('s2', success)
      expect((await b.snapshot()).recent.calls).toBe(0) // not one Redis call per success
      await b.record('f1', transient)
      expect(await b.snapshot()).toMatchObject({ consecutiveFailures: 1, recent: { calls: 3, failures: 1 } })
      await b.record('s3', success)
      await new Promise((r) => setTimeout(r, 100))
      expect(await b.snapshot()).toMatchObject({ consecutiveFailures: 0, recent: { calls: 4, failures: 1 } })
      await b.record('s4', success)
      await b.stop() // a stopping worker counts what it saw
      expect((await b.snapshot()).recent.calls).toBe(5)
    })

    it('lets only one of many concurrent jobs take the probe', async () => {
      const instances = [breaker({}, true), breaker({}, true), breaker({}, true)]
      for (let i = 0; i < 5; i++) await instances[0]!.record(`f${i}`, transient)
      clock += 1_000
      await instances[1]!.tick()
      const gates = await Promise.all(Array.from({ length: 30 }, (_, i) => instances[i % 3]!.admit(`job-${i}`)))
      expect(gates.filter((g) => g.run)).toHaveLength(1)
    })

    it('repairs a queue left running or left paused by a process that died mid-transition', async () => {
      const a = breaker()
      const queue = queues.sync(connectionId)
      for (let i = 0; i < 5; i++) await a.record(`f${i}`, transient)
      await queue.resume() // as if the process died between opening the breaker and pausing
      const restarted = breaker({}, true)
      await restarted.tick()
      expect(await queue.isPaused()).toBe(true)

      clock += 1_000
      await restarted.tick()
      await queue.pause() // as if it died between half-opening and resuming
      await a.tick()
      expect(await queue.isPaused()).toBe(false)
    })

    it('keeps one connection’s breaker from touching another’s', async () => {
      const a = breaker()
      for (let i = 0; i < 5; i++) await a.record(`f${i}`, transient)
      const neighbour = 'erp-neighbour'
      const other = createCircuitBreaker({ redis: queues.redis, prefix: queues.prefix, connectionId: neighbour, queue: queues.sync(neighbour), db: database.db, log, now, settings: circuitBreakerDefaults })
      expect(await other.admit('j1')).toEqual({ run: true, probe: false })
      await other.tick()
      expect(await queues.sync(neighbour).isPaused()).toBe(false)
      expect(await queues.sync(connectionId).isPaused()).toBe(true)
    })

    it('keeps its keys under the queue prefix, in one Redis Cluster slot', () => {
      expect(Object.values(breakerKeys('{orderbridge}', 'demo-erp'))).toEqual([
        '{orderbridge}:breaker:demo-erp',
        '{orderbridge}:breaker:demo-erp:window',
        '{orderbridge}:breaker:demo-erp:probe',
        '{orderbridge}:breaker:demo-erp:transitions',
      ])
    })
  })

  describe('after an auth or config failure', () => {
    it('pauses the connection until an operator resumes it, whatever the clock says', async () => {
      const b = breaker()
      const queue = queues.sync(connectionId)
      const paused = await b.record('j1', { outcome: 'failure', kind: 'auth', message: 'remote answered HTTP 401' })
      expect(paused).toMatchObject({ from: 'closed', to: 'paused', reason: 'auth: remote answered HTTP 401' })
      expect(await queue.isPaused()).toBe(true)
      expect(logs).toContainEqual(expect.objectContaining({ level: 'error', fields: expect.objectContaining({ connectorId: connectionId }) }))

      clock += 24 * 3600_000
      await b.tick()
      expect((await b.snapshot()).state).toBe('paused')
      expect(await b.admit('j2')).toEqual({ run: false, retryInMs: 30_000 })
      expect(await b.record('j3', success)).toBeUndefined()

      expect(await resumeConnection({ queues, db: database.db, log, now }, connectionId, { by: 'admin:test' })).toEqual({ from: 'paused', to: 'closed' })
      expect(await queue.isPaused()).toBe(false)
      expect(await b.snapshot()).toMatchObject({ state: 'closed', reason: 'resumed by admin:test', transitions: { 'closed->paused': 1, 'paused->closed': 1 } })
      expect(await b.admit('j2')).toEqual({ run: true, probe: false })
      expect(await breakerChanges()).toEqual([
        expect.objectContaining({ type: 'breaker.paused', reason: 'auth: remote answered HTTP 401' }),
        expect.objectContaining({ type: 'breaker.closed', from: 'paused', reason: 'resumed by admin:test' }),
      ])
    })

    it('pauses an open or half-open breaker too, and a resume also ends an open cooldown early', async () => {
      const b = breaker()
      for (let i = 0; i < 5; i++) await b.record(`f${i}`, transient)
      expect(await b.record('late', { outcome: 'failure', kind: 'config', message: 'no capability' })).toMatchObject({ from: 'open', to: 'paused' })
      await resumeConnection({ queues, db: database.db, log, now }, connectionId)
      for (let i = 0; i < 5; i++) await b.record(`g${i}`, transient)
      expect(await resumeConnection({ queues, db: database.db, log, now }, connectionId)).toEqual({ from: 'open', to: 'closed' })
      expect(await queues.sync(connectionId).isPaused()).toBe(false)
      expect(await readBreaker(queues.redis, queues.prefix, connectionId)).toMatchObject({ state: 'closed', consecutiveFailures: 0, recent: { calls: 0 } })
    })
  })
})
