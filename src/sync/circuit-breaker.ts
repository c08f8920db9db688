/**
 * A circuit breaker per connection, with its state in Redis so that every worker process sees and
 * drives the same breaker, and a restart finds it where it was.
 *
 * - closed: steps run; their evidence about the remote is counted. N consecutive infrastructure
 *   failures, or an error rate over the last calls, open it.
 * - open: the connection's queue is paused (for all workers) until `openUntil`.
 * - half_open: the first worker to find the cooldown over lets the queue run again, one job at a
 *   time across all workers; the first job admitted holds the probe token. Its success closes the
 *   breaker; its failure opens it again for twice the cooldown (up to `maxCooldownMs`).
 * - paused: an auth or config failure stopped the connection; only `resumeConnection()` (an
 *   operator) closes it again, since no amount of waiting fixes a credential.
 *
 * Every transition is made by one Lua script, so exactly one process wins it; that process logs it,
 * and the script counts it. A process that has just seen the breaker closed trusts that for
 * `trustClosedMs`, so a healthy connection's steps cost no Redis call each. This module decides nothing about retrying a job: `sync.worker.ts` does,
 * and reports each step's evidence here.
 */
import { createHash } from 'node:crypto'
import type { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { CircuitBreakerSettings } from '../config.ts'
import type { FailureKind, Logger } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import type { QueueSet } from '../queue/queues.ts'
import { appendChanges } from '../status/change-feed.ts'

export const breakerStates = ['closed', 'open', 'half_open', 'paused'] as const
export type BreakerState = (typeof breakerStates)[number]

/** What one step showed about the remote. */
export type StepEvidence =
  | { outcome: 'success' }
  | { outcome: 'failure'; kind: FailureKind; message: string; retryAfterMs?: number }
  /** The step did not reach the remote (skipped, nothing to cancel, failed before calling). */
  | { outcome: 'none' }

type Verdict = 'success' | 'failure' | 'halt' | 'neutral'

/**
 * Only the remote's health counts. `data`, `not_found` and `bug` are the document's or our fault,
 * `conflict` is our own lease, and a `rate_limited` answer or any failure that carries Retry-After is
 * the remote steering its load on purpose: the worker honours that job by job, and opening the
 * breaker on it would turn "come back in 1 s" into a 30 s outage.
 */
export function verdictOf(evidence: StepEvidence): Verdict {
  if (evidence.outcome === 'success') return 'success'
  if (evidence.outcome === 'none') return 'neutral'
  if (evidence.kind === 'auth' || evidence.kind === 'config') return 'halt'
  if ((evidence.kind === 'transient' || evidence.kind === 'unknown_outcome') && evidence.retryAfterMs === undefined) return 'failure'
  return 'neutral'
}

export interface Transition {
  connectionId: string
  from: BreakerState
  to: BreakerState
  reason: string
  /** When an open breaker becomes due for a probe (epoch ms); 0 unless `to` is open. */
  openUntil: number
  /** The cooldown of this opening; 0 unless `to` is open. */
  cooldownMs: number
}

export type Admission = { run: true; probe: boolean } | { run: false; retryInMs: number }

export interface BreakerSnapshot {
  connectionId: string
  state: BreakerState
  reason: string | null
  /** When the breaker entered its state (epoch ms); null if it never left `closed`. */
  since: number | null
  openUntil: number | null
  consecutiveFailures: number
  /** The error-rate window: recent counted calls and how many of them failed. */
  recent: { calls: number; failures: number }
  /** How often each transition happened, e.g. `{ 'closed->open': 2 }`. */
  transitions: Record<string, number>
}

export interface CircuitBreaker {
  readonly connectionId: string
  /** May this job run now? A job refused is put back by the caller, without using an attempt. */
  admit(jobId: string): Promise<Admission>
  /** Counts one step's evidence; never throws (the breaker must not fail a step that succeeded). */
  record(jobId: string, evidence: StepEvidence): Promise<Transition | undefined>
  /** Half-opens a breaker whose cooldown is over, and brings the queue in line with the state. */
  tick(): Promise<void>
  snapshot(): Promise<BreakerSnapshot>
  /** Runs `tick()` every `everyMs` (and once at once, which also repairs after a restart). */
  start(everyMs?: number): void
  stop(): Promise<void>
}

export interface BreakerContext {
  redis: Redis
  /** The queue prefix (a hash tag, e.g. `{orderbridge}`); the breaker's keys share its slot. */
  prefix: string
  connectionId: string
  /** The connection's sync queue, which the breaker pauses and resumes. */
  queue: Queue
  db: Database
  log: Logger
}

/**
 * A process trusts a closed breaker it saw this recently (milliseconds): while the remote is healthy
 * a step is admitted without a Redis call, and successes are counted together every
 * `successFlushMs`. So an opening made by another process reaches this one's running steps up to
 * this late; the queue pause that comes with it stops new jobs at once.
 */
export const trustClosedMs = 250
/**
 * Short, because a failure is counted at once and another process's successes only when it
 * flushes: the error rate over the window leans towards failures by what this leaves out.
 */
const successFlushMs = 10
/** How long a probe may hold its token; a crashed probe's token expires and another job probes. */
export const probeTtlMs = 60_000
/** Jobs that meet a paused connection look again this late (the queue is paused meanwhile anyway). */
const pausedRecheckMs = 30_000

export function breakerKeys(prefix: string, connectionId: string) {
  const base = `${prefix}:breaker:${connectionId}`
  return { state: base, window: `${base}:window`, probe: `${base}:probe`, transitions: `${base}:transitions` }
}

// Shared by the scripts: KEYS = state, window, probe, transitions; ARGV[1] = now (ms).
const luaPrelude = `
local stateKey, windowKey, probeKey, countKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local state = redis.call('HGET', stateKey, 'state') or 'closed'
local function count(from, to)
  redis.call('HINCRBY', countKey, from .. '->' .. to, 1)
end
local function open(from, why, ms)
  redis.call('HSET', stateKey, 'state', 'open', 'since', now, 'reason', why, 'openUntil', now + ms, 'cooldownMs', ms, 'failures', 0)
  redis.call('HDEL', stateKey, 'resumePending')
  redis.call('DEL', windowKey, probeKey)
  count(from, 'open')
  return {from, 'open', why, now + ms, ms}
end
local function close(from, why)
  redis.call('HSET', stateKey, 'state', 'closed', 'since', now, 'reason', why, 'failures', 0, 'resumePending', 1)
  redis.call('HDEL', stateKey, 'openUntil', 'cooldownMs')
  redis.call('DEL', windowKey, probeKey)
  count(from, 'closed')
  return {from, 'closed', why, 0, 0}
end
`

/** ARGV: now, jobId, verdict, reason, failureThreshold, errorRate, window, cooldownMs, maxCooldownMs, earlier successes. */
const recordScript = script(`${luaPrelude}
local jobId, verdict, reason = ARGV[2], ARGV[3], ARGV[4]
local threshold, errorRate, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, maxCooldown = tonumber(ARGV[8]), tonumber(ARGV[9])
-- Successes the process counted by itself since its last call (see trustClosedMs): they came first.
local earlier = tonumber(ARGV[10] or 0)
if state == 'closed' and earlier > 0 then
  redis.call('HSET', stateKey, 'failures', 0)
  for _ = 1, math.min(earlier, window) do redis.call('LPUSH', windowKey, 0) end
  redis.call('LTRIM', windowKey, 0, window - 1)
end
if verdict == 'halt' then
  if state == 'paused' then return false end
  redis.call('HSET', stateKey, 'state', 'paused', 'since', now, 'reason', reason, 'failures', 0)
  redis.call('HDEL', stateKey, 'resumePending', 'openUntil', 'cooldownMs')
  redis.call('DEL', windowKey, probeKey)
  count(state, 'paused')
  return {state, 'paused', reason, 0, 0}
end
if state == 'half_open' then
  -- Only the probe speaks for the remote now; stragglers from before the opening are ignored.
  if redis.call('GET', probeKey) ~= jobId then return false end
  if verdict == 'success' then return close('half_open', 'the probe succeeded') end
  if verdict == 'failure' then
    local previous = tonumber(redis.call('HGET', stateKey, 'cooldownMs') or cooldown)
    return open('half_open', 'the probe failed: ' .. reason, math.min(math.max(previous, cooldown) * 2, maxCooldown))
  end
  -- Inconclusive (the job never reached the remote): let the next job probe.
  redis.call('DEL', probeKey)
  return false
end
if state ~= 'closed' or verdict == 'neutral' then return false end
if verdict == 'success' then
  redis.call('HSET', stateKey, 'failures', 0)
  redis.call('LPUSH', windowKey, 0)
  redis.call('LTRIM', windowKey, 0, window - 1)
  return false
end
local failures = redis.call('HINCRBY', stateKey, 'failures', 1)
redis.call('LPUSH', windowKey, 1)
redis.call('LTRIM', windowKey, 0, window - 1)
if failures >= threshold then return open('closed', failures .. ' consecutive failures, the last: ' .. reason, cooldown) end
local recent = redis.call('LRANGE', windowKey, 0, -1)
if #recent >= math.ceil(window / 2) then
  local failed = 0
  for _, v in ipairs(recent) do if v == '1' then failed = failed + 1 end end
  if failed / #recent >= errorRate then
    return open('closed', failed .. ' of the last ' .. #recent .. ' calls failed, the last: ' .. reason, cooldown)
  end
end
return false
`)

/** ARGV: now. The one process that finds the cooldown over moves the breaker to half_open. */
const halfOpenScript = script(`${luaPrelude}
if state ~= 'open' then return false end
if now < tonumber(redis.call('HGET', stateKey, 'openUntil') or 0) then return false end
local why = 'the cooldown is over; one probe may run'
redis.call('HSET', stateKey, 'state', 'half_open', 'since', now, 'reason', why)
redis.call('DEL', probeKey)
count('open', 'half_open')
return {'open', 'half_open', why, 0, 0}
`)

/** ARGV: now, jobId, probeTtlMs. Returns {1, isProbe} to run, or {0, retryInMs} (-1: paused). */
const admitScript = script(`${luaPrelude}
local jobId, ttl = ARGV[2], tonumber(ARGV[3])
if state == 'closed' then return {1, 0} end
if state == 'half_open' then
  local holder = redis.call('GET', probeKey)
  if holder == jobId then
    redis.call('PEXPIRE', probeKey, ttl)
    return {1, 1}
  end
  if not holder and redis.call('SET', probeKey, jobId, 'PX', ttl, 'NX') then return {1, 1} end
  return {0, math.max(redis.call('PTTL', probeKey), 0)}
end
if state == 'open' then return {0, math.max(tonumber(redis.call('HGET', stateKey, 'openUntil') or now) - now, 0)} end
return {0, -1}
`)

/** ARGV: now, reason. Closes the breaker from any state and asks for the queue to be resumed. */
const resumeScript = script(`${luaPrelude}
if state == 'closed' then
  redis.call('HSET', stateKey, 'resumePending', 1)
  return false
end
return close(state, ARGV[2])
`)

/**
 * The breaker of one connection, as one worker process sees it. Several instances (processes) on
 * the same Redis and prefix share one state.
 *
 * @example
 * const breaker = createCircuitBreaker({ redis, prefix, connectionId: 'demo-erp', queue, db, log, settings })
 * breaker.start()
 * const gate = await breaker.admit(job.id)
 * // … run the step if gate.run, then:
 * await breaker.record(job.id, { outcome: 'success' })
 */
export function createCircuitBreaker(ctx: BreakerContext & { settings: CircuitBreakerSettings; now?: () => number }): CircuitBreaker {
  const keys = breakerKeys(ctx.prefix, ctx.connectionId)
  const keyList = [keys.state, keys.window, keys.probe, keys.transitions]
  const now = ctx.now ?? Date.now
  const { settings } = ctx
  let timer: NodeJS.Timeout | undefined
  let ticking: Promise<void> | undefined
  // Real time, not `now`: tests move that clock by hand, and trust must still run out.
  let closedSeenAt = Number.NEGATIVE_INFINITY
  const trusted = () => performance.now() - closedSeenAt < trustClosedMs
  /** Successes seen while trusting the breaker closed, not yet counted in Redis. */
  let uncounted = 0
  let flushTimer: NodeJS.Timeout | undefined
  const takeUncounted = () => {
    clearTimeout(flushTimer)
    flushTimer = undefined
    const n = uncounted
    uncounted = 0
    return n
  }
  const recordArgs = (jobId: string, verdict: Verdict, reason: string, earlier: number) => [
    now(),
    jobId,
    verdict,
    reason,
    settings.failureThreshold,
    settings.errorRate,
    settings.window,
    settings.cooldownMs,
    settings.maxCooldownMs,
    earlier,
  ]
  const flush = async () => {
    const earlier = takeUncounted()
    if (earlier) await evalScript(ctx.redis, recordScript, keyList, recordArgs('', 'neutral', '', earlier)).catch((err) => ctx.log.warn({ err, connectorId: ctx.connectionId }, 'circuit breaker could not count successes'))
  }

  const breaker: CircuitBreaker = {
    connectionId: ctx.connectionId,

    async admit(jobId) {
      if (trusted()) return { run: true, probe: false }
      try {
        const [run, value] = (await evalScript(ctx.redis, admitScript, keyList, [now(), jobId, probeTtlMs])) as [number, number]
        if (run === 1 && value === 0) closedSeenAt = performance.now() // only a closed breaker admits without a probe
        if (run === 1) return { run: true, probe: value === 1 }
        if (value < 0) return { run: false, retryInMs: pausedRecheckMs }
        // A little jitter, so jobs sent back together do not all come back in the same instant.
        return { run: false, retryInMs: Math.max(Math.min(value, 1_000), 100) + Math.floor(Math.random() * 100) }
      } catch (err) {
        // Without Redis the queue cannot move either; running beats losing the step to a breaker error.
        ctx.log.warn({ err, connectorId: ctx.connectionId }, 'circuit breaker unavailable; admitting the job')
        return { run: true, probe: false }
      }
    },

    async record(jobId, evidence) {
      const verdict = verdictOf(evidence)
      if (trusted() && (verdict === 'success' || verdict === 'neutral')) {
        if (verdict === 'success' && uncounted++ === 0) flushTimer = setTimeout(() => void flush(), successFlushMs)
        return undefined
      }
      if (verdict === 'neutral') {
        // The cheap path for most neutral steps: only a half-open breaker's probe needs to hear of it.
        const state = await ctx.redis.hget(keys.state, 'state').catch(() => null)
        if (state !== 'half_open') return undefined
      }
      const reason = evidence.outcome === 'failure' ? `${evidence.kind}: ${evidence.message}` : evidence.outcome
      try {
        const raw = await evalScript(ctx.redis, recordScript, keyList, recordArgs(jobId, verdict, reason, takeUncounted()))
        const transition = toTransition(ctx.connectionId, raw)
        if (transition && transition.to !== 'closed') closedSeenAt = Number.NEGATIVE_INFINITY
        if (transition) await settle(ctx, transition)
        return transition
      } catch (err) {
        ctx.log.warn({ err, connectorId: ctx.connectionId }, 'circuit breaker could not record a step')
        return undefined
      }
    },

    async tick() {
      const transition = toTransition(ctx.connectionId, await evalScript(ctx.redis, halfOpenScript, keyList, [now()]))
      if (transition) await settle(ctx, transition)
      else await reconcileQueue(ctx)
    },

    snapshot: () => readBreaker(ctx.redis, ctx.prefix, ctx.connectionId),

    start(everyMs = Math.min(1_000, Math.max(50, Math.floor(settings.cooldownMs / 4)))) {
      const run = () => {
        ticking ??= breaker
          .tick()
          .catch((err) => ctx.log.warn({ err, connectorId: ctx.connectionId }, 'circuit breaker check failed; will try again'))
          .finally(() => (ticking = undefined))
      }
      run()
      timer = setInterval(run, everyMs)
    },

    async stop() {
      clearInterval(timer)
      await ticking
      await flush()
    },
  }
  return breaker
}

/** The breaker of a connection as stored in Redis (for status pages and the failures API). */
export async function readBreaker(redis: Redis, prefix: string, connectionId: string): Promise<BreakerSnapshot> {
  const keys = breakerKeys(prefix, connectionId)
  const [hash, recent, transitions] = await Promise.all([redis.hgetall(keys.state), redis.lrange(keys.window, 0, -1), redis.hgetall(keys.transitions)])
  const number = (value: string | undefined) => (value === undefined ? null : Number(value))
  const state = breakerStates.find((s) => s === hash.state) ?? 'closed'
  return {
    connectionId,
    state,
    reason: hash.reason ?? null,
    since: number(hash.since),
    openUntil: state === 'open' ? number(hash.openUntil) : null,
    consecutiveFailures: Number(hash.failures ?? 0),
    recent: { calls: recent.length, failures: recent.filter((v) => v === '1').length },
    transitions: Object.fromEntries(Object.entries(transitions).map(([k, v]) => [k, Number(v)])),
  }
}

/**
 * Closes a connection's breaker from any state (an operator fixed the credentials or the
 * configuration, or wants to stop waiting out a cooldown) and resumes its queue. Jobs that already
 * ended as needs-attention stay there; replay them.
 *
 * @example
 * await resumeConnection({ queues, db, log }, 'demo-erp', { by: 'admin:alice' })
 */
export async function resumeConnection(
  deps: { queues: QueueSet; db: Database; log: Logger; now?: () => number },
  connectionId: string,
  options: { by?: string } = {},
): Promise<{ from: BreakerState; to: 'closed' }> {
  const ctx: BreakerContext = { redis: deps.queues.redis, prefix: deps.queues.prefix, connectionId, queue: deps.queues.sync(connectionId), db: deps.db, log: deps.log }
  const keys = breakerKeys(ctx.prefix, connectionId)
  const reason = options.by ? `resumed by ${options.by}` : 'resumed by an operator'
  const raw = await evalScript(ctx.redis, resumeScript, [keys.state, keys.window, keys.probe, keys.transitions], [(deps.now ?? Date.now)(), reason])
  const transition = toTransition(connectionId, raw)
  if (transition) await settle(ctx, transition)
  else await reconcileQueue(ctx)
  return { from: transition?.from ?? 'closed', to: 'closed' }
}

const feedTypes: Partial<Record<BreakerState, string>> = { open: 'breaker.opened', closed: 'breaker.closed', paused: 'breaker.paused' }

/** The queue first: stopping the calls is what the transition is for; the record can follow. */
async function settle(ctx: BreakerContext, transition: Transition): Promise<void> {
  await reconcileQueue(ctx)
  await announce(ctx, transition)
}

/** Logs the transition and, for the ones ops act on, adds it to the change feed. */
async function announce(ctx: BreakerContext, t: Transition): Promise<void> {
  const fields = { connectorId: t.connectionId, breaker: { from: t.from, to: t.to }, reason: t.reason, ...(t.to === 'open' ? { cooldownMs: t.cooldownMs, openUntil: new Date(t.openUntil).toISOString() } : {}) }
  if (t.to === 'paused') ctx.log.error(fields, 'connection paused until an operator resumes it')
  else if (t.to === 'open') ctx.log.warn(fields, 'circuit breaker opened; the connection queue is paused')
  else ctx.log.info(fields, t.to === 'closed' ? 'circuit breaker closed' : 'circuit breaker half-open; one probe may run')
  const type = feedTypes[t.to]
  if (!type) return
  const data = { from: t.from, to: t.to, reason: t.reason, ...(t.to === 'open' ? { cooldownMs: t.cooldownMs, openUntil: new Date(t.openUntil).toISOString() } : {}) }
  await ctx.db
    .transaction((tx) => appendChanges(tx, [{ type, connectionId: t.connectionId, data }]))
    .catch((err) => ctx.log.warn({ err, connectorId: t.connectionId }, 'could not add a breaker transition to the change feed'))
}

/**
 * Brings the queue in line with the breaker. Run after each transition and on every tick, so a
 * process that died between winning a transition and pausing or resuming is made good by another.
 * A queue paused by hand (e.g. in Bull Board) while the breaker is closed is left alone: only a
 * `resumePending` mark, set when the breaker closes, resumes it.
 */
async function reconcileQueue(ctx: BreakerContext): Promise<void> {
  const keys = breakerKeys(ctx.prefix, ctx.connectionId)
  const [state, resumePending] = await ctx.redis.hmget(keys.state, 'state', 'resumePending')
  const paused = await ctx.queue.isPaused()
  if (state === 'open' || state === 'paused') {
    if (!paused) await ctx.queue.pause()
  } else if (state === 'half_open') {
    // One job at a time across all workers, so the probe runs alone.
    if ((await ctx.queue.getGlobalConcurrency()) !== 1) await ctx.queue.setGlobalConcurrency(1)
    if (paused) await ctx.queue.resume()
  } else if (resumePending) {
    await ctx.queue.removeGlobalConcurrency()
    if (paused) await ctx.queue.resume()
    await ctx.redis.hdel(keys.state, 'resumePending')
  }
}

function toTransition(connectionId: string, raw: unknown): Transition | undefined {
  if (!Array.isArray(raw)) return undefined
  const [from, to, reason, openUntil, cooldownMs] = raw as [BreakerState, BreakerState, string, number, number]
  return { connectionId, from, to, reason, openUntil: Number(openUntil), cooldownMs: Number(cooldownMs) }
}

interface Script {
  source: string
  sha: string
}

function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

async function evalScript(redis: Redis, s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...args)
  } catch (err) {
    // After a restart or FLUSHALL Redis forgets scripts: send the source once, then the hash works.
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    return redis.eval(s.source, keys.length, ...keys, ...args)
  }
}
