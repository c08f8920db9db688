/**
 * Group commit for sync steps (src/sync/settle-group.ts): steps that finish together settle in one
 * transaction, with their orders locked and their history written; one step's error stays its own.
 * Which transaction wrote a row is PostgreSQL's own record (`xmin`), so that is what is compared.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/db/database.ts'
import { settleTogether } from '../../src/sync/settle-group.ts'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'

describe.each(engines)('settling steps together on %s', (engine) => {
  let test: TestDatabase
  let db: Database
  beforeAll(async () => {
    test = await openTestDatabase(engine)
    db = test.db
  })
  afterAll(() => test?.drop())

  async function newOrder(): Promise<string> {
    const id = randomUUID()
    await db.query(
      `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total)
       values ($1, 'crm', $2, 'approved', 1, '{}', 'CNY', '10.00')`,
      [id, `SO-${id.slice(0, 8)}`],
    )
    return id
  }

  /** A step's settle: moves its order on and records it, as the sync steps do. */
  const settleOf = (orderId: string, fail = false) =>
    settleTogether(db, orderId, async (tx, locked, work) => {
      if (fail) throw new Error(`settling ${orderId} failed`)
      await tx.query(`update orders set state = 'pending_shipment' where id = $1`, [orderId])
      work.events.push({ orderId, kind: 'transition', from: locked!.state, to: 'pending_shipment', cause: 'test' })
      work.changes.push({ type: 'order.state_changed', orderId })
      work.jobs.push({ orderId, connectionId: 'crm', operation: 'crm.status', sourceVersion: 2 })
    })

  const writers = async (ids: string[]) =>
    (await db.query<{ id: string; xid: string }>(`select id, xmin::text as xid from orders where id = any($1::uuid[])`, [ids])).map((r) => r.xid)

  it('commits steps that finish together in one transaction, with each its own order locked and history written', async () => {
    const ids = await Promise.all(Array.from({ length: 5 }, () => newOrder()))
    const works = await Promise.all(ids.map((id) => settleOf(id)))
    expect(new Set(await writers(ids)).size).toBe(1)
    expect(works.map((w) => w.jobs.map((j) => j.orderId))).toEqual(ids.map((id) => [id]))
    const events = await db.query<{ order_id: string; from_state: string }>(`select order_id, from_state from order_events where order_id = any($1::uuid[])`, [ids])
    expect(events.map((e) => e.order_id).sort()).toEqual([...ids].sort())
    expect(events.every((e) => e.from_state === 'approved')).toBe(true)
    const [changes] = await db.query<{ n: number }>(`select count(*)::int as n from changes where order_id = any($1::uuid[])`, [ids])
    expect(changes!.n).toBe(5)
  })

  it('settles the others when one step fails, and gives that step its own error', async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, () => newOrder()))
    const results = await Promise.allSettled(ids.map((id, i) => settleOf(id, i === 2)))
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled'])
    expect((results[2] as PromiseRejectedResult).reason.message).toBe(`settling ${ids[2]} failed`)
    const states = await db.query<{ id: string; state: string }>(`select id, state from orders where id = any($1::uuid[])`, [ids])
    expect(Object.fromEntries(states.map((s) => [s.id, s.state]))).toEqual(Object.fromEntries(ids.map((id, i) => [id, i === 2 ? 'approved' : 'pending_shipment'])))
    // Their history was written once, by the transactions that committed.
    const [events] = await db.query<{ n: number }>(`select count(*)::int as n from order_events where order_id = any($1::uuid[])`, [ids])
    expect(events!.n).toBe(3)
  })

  it('settles two steps of one order one after the other, the second seeing what the first left', async () => {
    const id = await newOrder()
    const seen: string[] = []
    const step = () =>
      settleTogether(db, id, async (tx, locked) => {
        seen.push(locked!.state)
        await tx.query(`update orders set state = 'pending_shipment' where id = $1`, [id])
      })
    await Promise.all([step(), step()])
    expect(seen).toEqual(['approved', 'pending_shipment'])
  })
})
