/**
 * Group commit for sync steps: the settling transactions of steps that finish at about the same
 * time run as one. Their orders are locked in one statement (in id order, so groups never deadlock
 * each other), each step applies its outcome, and their history is written in one statement
 * before the one commit, after their links, which are settled in one statement too. Per step that
 * saves a begin, a commit, the lock's, the link's and the history's round trips, and a turn at the
 * change feed's lock. A group holds one step per order, so each sees its order as the step before
 * it left it, committed.
 *
 * If a group's transaction fails (one step's error, a deadlock with another writer), each of its
 * steps is settled again in a transaction of its own (src/shared/batcher.ts). The work each step
 * gets is fresh on every try.
 */
import type { Database, Queryable } from '../db/database.ts'
import { newUnitOfWork, type UnitOfWork } from '../orders/lifecycle.ts'
import { lockOrders, recordHistory, type OrderRow } from '../orders/order.repository.ts'
import { batcherPer, createBatcher } from '../shared/batcher.ts'
import { writeLinkSettles, type LinkSettle } from './link-settles.ts'

/**
 * A step's part of the transaction: `locked` is its order under row lock (undefined if it is gone);
 * how it leaves its link goes to `links` (step-runtime.ts `settleLink`), written for the group at the end.
 */
export type Settle = (tx: Queryable, locked: OrderRow | undefined, work: UnitOfWork, links: LinkSettle[]) => Promise<void>

interface Member {
  orderId: string
  settle: Settle
}

const groups = batcherPer((db: Database) =>
  createBatcher((members: Member[]) => db.transaction((tx) => settleAll(tx, members)), { maxBatch: 64, maxInFlight: 2, keyOf: (m) => m.orderId }),
)

/** Runs `settle` in a transaction shared with other steps finishing now; resolves with its committed work. */
export function settleTogether(db: Database, orderId: string, settle: Settle): Promise<UnitOfWork> {
  return groups(db)({ orderId, settle })
}

async function settleAll(tx: Queryable, members: readonly Member[]): Promise<UnitOfWork[]> {
  const locked = await lockOrders(tx, members.map((m) => m.orderId))
  const works: UnitOfWork[] = []
  const links: LinkSettle[] = []
  for (const member of members) {
    const work = newUnitOfWork()
    await member.settle(tx, locked.get(member.orderId), work, links)
    works.push(work)
  }
  await writeLinkSettles(tx, links)
  await recordHistory(
    tx,
    works.flatMap((w) => w.events),
    works.flatMap((w) => w.changes),
  )
  return works
}
