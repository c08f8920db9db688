/**
 * Runs and discrepancies as stored, on both engines: the keyset over orders visits every order in
 * the window once (ties in updated_at included) and none outside it; a finding is recorded once per
 * run even when a resumed page repeats it; a later run confirms a requested repair.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  claimRun,
  confirmRepairs,
  countOrders,
  createRun,
  hasRepairsAwaitingConfirmation,
  listDiscrepancies,
  listRuns,
  loadOrderPage,
  recordDiscrepancies,
  staleRuns,
  type OrderCursor,
} from '../../src/reconciliation/reconciliation.repository.ts'
import { policySchema } from '../../src/reconciliation/reconciliation.schemas.ts'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'

describe.each(engines)('on %s', (engine) => {
  let t: TestDatabase
  const ids: string[] = []
  beforeAll(async () => {
    t = await openTestDatabase(engine)
    // 25 orders, in groups of five sharing one updated_at to the microsecond; one outside the window.
    for (let i = 0; i < 26; i++) {
      const id = randomUUID()
      ids.push(id)
      const at = i === 25 ? '2020-01-01T00:00:00Z' : `2026-11-20T10:00:0${Math.floor(i / 5)}.123456Z`
      await t.db.query(
        `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total, updated_at)
         values ($1, 'crm', $2, 'pending_shipment', 1, $3, 'CNY', '10.00', $4)`,
        [id, `X-${i}`, JSON.stringify({ lines: [{ sku: 'A', quantity: '1', unitPrice: '10.00' }] }), at],
      )
      await t.db.query(`insert into links (order_id, connection_id, operation, external_id, status, last_synced_version) values ($1, 'erp', 'salesOrders.upsert', $2, 'synced', 1)`, [id, `SO-${i}`])
    }
  })
  afterAll(() => t?.drop())

  it('pages through a window by (updated_at, id), every order once, ties included', async () => {
    const run = { since: new Date('2026-11-01T00:00:00Z'), until: new Date('2026-12-01T00:00:00Z'), orderIds: null }
    expect(await countOrders(t.db, run)).toBe(25)
    const seen: string[] = []
    let cursor: OrderCursor | null = null
    let pages = 0
    do {
      const page = await loadOrderPage(t.db, run, cursor, 4, { erp: 'erp', inventory: null })
      seen.push(...page.orders.map((o) => o.id))
      cursor = page.next
      pages++
    } while (cursor)
    expect(seen).toHaveLength(25)
    expect(new Set(seen)).toEqual(new Set(ids.slice(0, 25)))
    expect(pages).toBe(7)
    const [first] = (await loadOrderPage(t.db, { ...run, orderIds: [ids[0]!] }, null, 10, { erp: 'erp', inventory: null })).orders
    expect(first).toMatchObject({ id: ids[0], total: '10.00', lines: [{ sku: 'A', quantity: '1' }], invoices: [], erp: { externalId: 'SO-0', status: 'synced', leased: false } })
  })

  it('records a finding once per run, and confirms a requested repair in a later run', async () => {
    const policy = policySchema.parse({})
    const first = await createRun(t.db, { trigger: 'api', connections: ['erp'], since: null, until: new Date(), policy, tolerance: '0' })
    expect((await claimRun(t.db, first.id))!.status).toBe('running')
    const finding = { kind: 'missing_in_target' as const, orderId: ids[1]!, connectionId: 'erp', externalId: 'SO-1', expected: { a: 1 }, actual: null, action: 'repair_requested' as const, detail: 'asked again', repairedAt: null }
    expect(await recordDiscrepancies(t.db, first.id, [finding])).toEqual([{ kind: 'missing_in_target', action: 'repair_requested' }])
    expect(await recordDiscrepancies(t.db, first.id, [finding])).toEqual([])

    const second = await createRun(t.db, { trigger: 'api', connections: ['erp'], since: null, until: new Date(), policy, tolerance: '0' })
    expect(await hasRepairsAwaitingConfirmation(t.db, second.id)).toBe(true)
    expect(await hasRepairsAwaitingConfirmation(t.db, first.id)).toBe(false)
    // Still drifting in another kind only: the missing order counts as repaired.
    expect(await confirmRepairs(t.db, second.id, [{ orderId: ids[1]!, connectionId: 'erp' }], [{ orderId: ids[1]!, connectionId: 'erp', kind: 'amount_mismatch' }])).toBe(1)
    const [confirmed] = await listDiscrepancies(t.db, first.id, { limit: 10 })
    expect(confirmed).toMatchObject({ action: 'repaired', detail: `asked again; consistent again in run ${second.id}` })
    expect(confirmed!.repairedAt).not.toBeNull()
    expect((await listRuns(t.db, { limit: 1 }))[0]!.id).toBe(second.id)
  })

  it('finds runs whose job may be lost', async () => {
    const run = await createRun(t.db, { trigger: 'api', connections: ['erp'], since: null, until: new Date(), policy: policySchema.parse({}), tolerance: '0' })
    expect(await staleRuns(t.db, { queuedForSeconds: 30, silentForSeconds: 120 })).not.toContain(run.id)
    await t.db.query(`update reconciliation_runs set heartbeat_at = now() - interval '1 minute' where id = $1`, [run.id])
    expect(await staleRuns(t.db, { queuedForSeconds: 30, silentForSeconds: 120 })).toContain(run.id)
  })
})
