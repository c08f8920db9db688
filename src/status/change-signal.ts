/**
 * Wakes long-polls of the change feed when a change they may want becomes readable. One watcher
 * per API process, whatever the number of waiting requests: it follows the feed with its own
 * cursor and hands each waiter the changes it may want (by type and connection; the waiter then
 * reads its own page, which applies every rule). On PostgreSQL it listens for the notification
 * the appenders send at commit (change-feed.ts); without LISTEN (PGlite, or the listening
 * connection lost) it polls. It watches only while someone waits, bounds the number of waiters,
 * and ends every wait at close. Reads only.
 */
import pg from 'pg'
import type { Queryable } from '../db/database.ts'
import { changeFeedChannel, headOfFeed } from './change-feed.ts'

export interface ChangeHint {
  type: string
  orderId: string | null
  connectionId: string | null
}

export type WaitOutcome = 'change' | 'timeout' | 'aborted' | 'closed'

export interface Waiter {
  /** Until a change this waiter may want is readable, `ms` pass, `abort` fires or the signal closes. */
  wait(ms: number, abort?: AbortSignal): Promise<WaitOutcome>
  release(): void
}

export interface ChangeSignal {
  /** A place among the waiters. Subscribe before reading, then wait: nothing readable after the read is missed. Throws TooManyWaiters when full. */
  subscribe(mayWant: (change: ChangeHint) => boolean): Promise<Waiter>
  readonly waiting: number
  /** Ends every wait ('closed') and stops watching; later waits end at once. */
  close(): Promise<void>
}

export class TooManyWaiters extends Error {
  readonly max: number
  constructor(max: number) {
    super(`${max} requests are already waiting for changes`)
    this.name = 'TooManyWaiters'
    this.max = max
  }
}

/** A connection that receives the appenders' notifications. */
export interface ListenSource {
  /** Calls `onNotify` for each notification of this database's feed and `onLost` once if the connection ends. */
  start(onNotify: () => void, onLost: (err: Error) => void): Promise<{ stop(): Promise<void> }>
}

export interface ChangeSignalOptions {
  /** Absent: poll. */
  listen?: ListenSource
  maxWaiters?: number
  /** How often to look when not listening. */
  pollIntervalMs?: number
  /** How often to look anyway while listening: notifications of other processes' commits can be lost with the connection. */
  listenFallbackMs?: number
  /** Retry LISTEN after losing it, meanwhile polling. */
  relistenMs?: number
  log?: { warn(obj: object, msg: string): void }
}

interface Slot {
  mayWant: (change: ChangeHint) => boolean
  /** A wake that came while no wait() was pending. */
  pending: boolean
  resolve?: (outcome: WaitOutcome) => void
}

const hintBatch = 1000

/**
 * @example
 * const signal = createChangeSignal(db, { listen: postgresListener({ url, schema }) })
 * const waiter = await signal.subscribe((c) => c.type.startsWith('order.'))
 * try { page = await read(); if (!page.changes.length) await waiter.wait(25_000, abortSignal) } finally { waiter.release() }
 */
export function createChangeSignal(db: Queryable, options: ChangeSignalOptions = {}): ChangeSignal {
  const maxWaiters = options.maxWaiters ?? 1000
  const pollIntervalMs = options.pollIntervalMs ?? 250
  const listenFallbackMs = options.listenFallbackMs ?? 1000
  const relistenMs = options.relistenMs ?? 5000
  const slots = new Set<Slot>()
  let closed = false
  /** The watcher's position in the feed; undefined while nobody waits. */
  let cursor: number | undefined
  let starting: Promise<void> | undefined
  let generation = 0
  let timer: NodeJS.Timeout | undefined
  let ticking = false
  let again = false
  let listening: { stop(): Promise<void> } | undefined
  let listenStarting: Promise<void> | undefined
  let relistenAt = 0

  function schedule(ms: number) {
    if (timer || closed || cursor === undefined) return
    timer = setTimeout(() => {
      timer = undefined
      void tick()
    }, ms)
    timer.unref()
  }

  const interval = () => (listening ? listenFallbackMs : pollIntervalMs)

  async function tick(): Promise<void> {
    if (ticking) {
      again = true
      return
    }
    ticking = true
    try {
      do {
        again = false
        await readAhead()
      } while (again && !closed)
    } catch (err) {
      options.log?.warn({ err }, 'reading the change feed for waiting requests failed; trying again')
    } finally {
      ticking = false
    }
    if (!listening && options.listen && Date.now() >= relistenAt) void startListening()
    if (timer) clearTimeout(timer)
    timer = undefined
    schedule(interval())
  }

  async function readAhead(): Promise<void> {
    const gen = generation
    for (;;) {
      if (cursor === undefined || gen !== generation || closed) return
      const from = cursor
      const rows = await db.query<{ seq: number; type: string; order_id: string | null; connection_id: string | null }>(
        'select seq, type, order_id, connection_id from changes where seq > $1 order by seq limit $2',
        [from, hintBatch],
      )
      if (cursor !== from || gen !== generation) return
      if (rows.length) {
        cursor = rows.at(-1)!.seq
        const hints = rows.map((r) => ({ type: r.type, orderId: r.order_id, connectionId: r.connection_id }))
        for (const slot of slots) if (hints.some(slot.mayWant)) wake(slot, 'change')
      }
      if (rows.length < hintBatch) break
    }
  }

  /** The cursor starts at the head (0: the empty feed). Until LISTEN is up, the watcher polls. */
  async function start(): Promise<void> {
    const gen = generation
    const head = await headOfFeed(db)
    if (gen !== generation || closed) return
    cursor = head
    if (options.listen && !listening) void startListening()
    schedule(interval())
  }

  async function startListening(): Promise<void> {
    if (listening || closed || !options.listen) return
    listenStarting ??= (async () => {
      try {
        const handle = await options.listen!.start(
          () => {
            if (cursor !== undefined) void tick()
          },
          (err) => {
            options.log?.warn({ err }, 'the change feed listener was lost; polling until it is back')
            listening = undefined
            relistenAt = Date.now() + relistenMs
            if (timer) clearTimeout(timer)
            timer = undefined
            schedule(pollIntervalMs)
          },
        )
        if (closed) await handle.stop()
        else listening = handle
      } catch (err) {
        relistenAt = Date.now() + relistenMs
        options.log?.warn({ err }, 'cannot listen for change feed notifications; polling')
      } finally {
        listenStarting = undefined
      }
    })()
    return listenStarting
  }

  function wake(slot: Slot, outcome: WaitOutcome) {
    if (slot.resolve) {
      const resolve = slot.resolve
      slot.resolve = undefined
      resolve(outcome)
    } else if (outcome === 'change') slot.pending = true
  }

  function stopWatching() {
    generation++
    cursor = undefined
    starting = undefined
    if (timer) clearTimeout(timer)
    timer = undefined
  }

  return {
    get waiting() {
      return slots.size
    },

    async subscribe(mayWant) {
      if (!closed && slots.size >= maxWaiters) throw new TooManyWaiters(maxWaiters)
      const slot: Slot = { mayWant, pending: false }
      const waiter: Waiter = {
        wait(ms, abort) {
          if (closed) return Promise.resolve('closed')
          if (abort?.aborted) return Promise.resolve('aborted')
          if (slot.pending) {
            slot.pending = false
            return Promise.resolve('change')
          }
          return new Promise<WaitOutcome>((resolve) => {
            const timeout = setTimeout(() => wake(slot, 'timeout'), Math.max(0, ms))
            const onAbort = () => wake(slot, 'aborted')
            abort?.addEventListener('abort', onAbort, { once: true })
            slot.resolve = (outcome) => {
              clearTimeout(timeout)
              abort?.removeEventListener('abort', onAbort)
              resolve(outcome)
            }
          })
        },
        release() {
          if (!slots.delete(slot)) return
          wake(slot, 'aborted')
          if (slots.size === 0) stopWatching()
        },
      }
      if (closed) return waiter
      slots.add(slot)
      if (cursor === undefined) {
        starting ??= start()
        await starting.catch((err: Error) => {
          waiter.release()
          throw err
        })
      }
      return waiter
    },

    async close() {
      closed = true
      for (const slot of slots) wake(slot, 'closed')
      slots.clear()
      stopWatching()
      // Not waiting for a LISTEN connection still being made: it stops itself once made (startListening).
      const handle = listening
      listening = undefined
      await handle?.stop()
    },
  }
}

/**
 * LISTEN on its own connection to a PostgreSQL server (a pooled connection cannot stay listening).
 * `schema` is the one the appenders write to: its name is the notification's payload.
 */
export function postgresListener(options: { url: string; schema?: string }): ListenSource {
  return {
    async start(onNotify, onLost) {
      const client = new pg.Client({ connectionString: options.url, connectionTimeoutMillis: 10_000, ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}) })
      let stopping = false
      let lost = false
      const lose = (err: Error) => {
        if (stopping || lost) return
        lost = true
        onLost(err)
        void client.end().catch(() => {})
      }
      client.on('error', lose)
      client.on('end', () => lose(new Error('the listening connection ended')))
      await client.connect()
      try {
        const [row] = (await client.query<{ schema: string | null }>('select current_schema() as schema')).rows
        const schema = row?.schema ?? ''
        client.on('notification', (n) => {
          if (n.channel === changeFeedChannel && (n.payload ?? '') === schema) onNotify()
        })
        await client.query(`listen ${changeFeedChannel}`)
      } catch (err) {
        stopping = true
        await client.end().catch(() => {})
        throw err
      }
      return {
        async stop() {
          stopping = true
          await client.end().catch(() => {})
        },
      }
    },
  }
}
