/**
 * Group commit for sync steps: the settling transactions of steps that finish at about the same
 * time run as one. Their orders are locked in one statement (in id order, so groups never deadlock
 * each other), each step applies its outcome, and their history is written in one statement
 * before the one commit. Per step that saves a begin, a commit, the lock's and the history's
 * round trips, and a turn at the change feed's lock. While one group commits the next gathers, so
 * groups grow with load and a lone step waits for no one.
 *
 * If a group's transaction fails (one step's error, a deadlock with another writer), each of its
 * steps is settled again in a transaction of its own, so one step's error is its own. The work
 * each step gets is fresh on every try.
 */
import type { Database, Queryable } from '../db/database.ts'
import { newUnitOfWork, type UnitOfWork } from '../orders/lifecycle.ts'
import { lockOrders, recordHistory, type OrderRow } from '../orders/order.repository.ts'

/** A step's part of the transaction: `locked` is its order under row lock (undefined if it is gone). */
export type Settle = (tx: Queryable, locked: OrderRow | undefined, work: UnitOfWork) => Promise<void>

interface Member {
  orderId: string
  settle: Settle
  resolve(work: UnitOfWork): void
  reject(err: unknown): void
}

const maxGroup = 64
// As the inbox writer: one group committing while the next is sent keeps both sides busy.
const maxInFlight = 2

const groups = new WeakMap<Database, (orderId: string, settle: Settle) => Promise<UnitOfWork>>()

/** Runs `settle` in a transaction shared with other steps finishing now; resolves with its committed work. */
export function settleTogether(db: Database, orderId: string, settle: Settle): Promise<UnitOfWork> {
  let group = groups.get(db)
  if (!group) groups.set(db, (group = createGroup(db)))
  return group(orderId, settle)
}

function createGroup(db: Database): (orderId: string, settle: Settle) => Promise<UnitOfWork> {
  let queue: Member[] = []
  let inFlight = 0
  let scheduled = false

  // setImmediate lets the steps finishing in this turn of the event loop join the group.
  function schedule(): void {
    if (scheduled || inFlight >= maxInFlight) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      if (!queue.length || inFlight >= maxInFlight) return
      const members = take()
      inFlight++
      void commit(db, members).finally(() => {
        inFlight--
        if (queue.length) schedule()
      })
    })
  }

  /** The next group: one step per order, so each sees its order as the one before it left it, committed. */
  function take(): Member[] {
    const members: Member[] = []
    const orders = new Set<string>()
    const rest: Member[] = []
    for (const member of queue) {
      if (members.length < maxGroup && !orders.has(member.orderId)) {
        members.push(member)
        orders.add(member.orderId)
      } else rest.push(member)
    }
    queue = rest
    return members
  }

  return (orderId, settle) =>
    new Promise<UnitOfWork>((resolve, reject) => {
      queue.push({ orderId, settle, resolve, reject })
      schedule()
    })
}

async function commit(db: Database, members: Member[]): Promise<void> {
  if (members.length > 1) {
    try {
      const works = await db.transaction((tx) => settleAll(tx, members))
      members.forEach((member, i) => member.resolve(works[i]!))
      return
    } catch {
      // Settled one by one below: the error belongs to one of them, and that one reports it.
    }
  }
  await Promise.all(
    members.map(async (member) => {
      try {
        const [work] = await db.transaction((tx) => settleAll(tx, [member]))
        member.resolve(work!)
      } catch (err) {
        member.reject(err)
      }
    }),
  )
}

async function settleAll(tx: Queryable, members: readonly Member[]): Promise<UnitOfWork[]> {
  const locked = await lockOrders(tx, members.map((m) => m.orderId))
  const works: UnitOfWork[] = []
  for (const member of members) {
    const work = newUnitOfWork()
    await member.settle(tx, locked.get(member.orderId), work)
    works.push(work)
  }
  await recordHistory(
    tx,
    works.flatMap((w) => w.events),
    works.flatMap((w) => w.changes),
  )
  return works
}
