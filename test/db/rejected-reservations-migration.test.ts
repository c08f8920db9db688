/**
 * Migration 012 on data the earlier code left: an order rejected for stock kept its reservation link
 * `held`; the migration closes it as `cancelled`, and leaves held links of orders still on hold.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../../src/db/migrate.ts'
import { engines, migrateUpTo, openTestDatabase, type TestDatabase } from '../support/test-database.ts'

describe.each(engines)('migration 012_rejected_reservations (%s)', (engine) => {
  let t: TestDatabase
  const ids = { rejected: randomUUID(), onHold: randomUUID() }
  beforeAll(async () => {
    t = await openTestDatabase(engine, { migrate: false })
    await migrateUpTo(t.db, '012')
    for (const [id, state] of [[ids.rejected, 'rejected'], [ids.onHold, 'on_hold']] as const) {
      await t.db.query(
        `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total) values ($1, 'crm', $2, $3, 1, '{}', 'CNY', '10.00')`,
        [id, `SO-${state}`, state],
      )
      await t.db.query(`insert into links (order_id, connection_id, operation, status, target_version) values ($1, 'wms', 'inventory.reserve', 'held', 1)`, [id])
    }
    await migrate(t.db)
  })
  afterAll(() => t?.drop())

  it('closes a rejected order’s held reservation, and leaves one still on hold', async () => {
    const rows = await t.db.query<{ order_id: string; status: string }>(`select order_id, status from links where operation = 'inventory.reserve'`)
    expect(Object.fromEntries(rows.map((r) => [r.order_id, r.status]))).toEqual({ [ids.rejected]: 'cancelled', [ids.onHold]: 'held' })
  })
})
