/**
 * What every sync step relies on from the step runtime, on PostgreSQL (PGlite has one connection,
 * so nothing can commit while a statement waits):
 * - a step reads the order and the version it is to bring the target to as one consistent pair, even
 *   when the order's new version commits while the step waits for the link's row lock. Found by the
 *   chaos test: the ERP kept an order's first version while its link said the second was synced;
 * - a step asked again for a version the target already holds leaves its link synced, not pending;
 * - steps starting together take their leases in one statement, and a link goes to one step at a time.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { genericRest } from '../../connectors/generic-rest/index.ts'
import { circuitBreakerDefaults, retryDefaults } from '../../src/config.ts'
import type { Connection, ConnectionRegistry } from '../../src/connections/connection-registry.ts'
import type { Database } from '../../src/db/database.ts'
import type { MappingCatalog } from '../../src/mapping/mapping-catalog.ts'
import { createLogger } from '../../src/observability/logger.ts'
import type { Lifecycle } from '../../src/orders/lifecycle.ts'
import { runLeasedStep, type LeasedStep, type SyncDeps } from '../../src/sync/step-runtime.ts'
import { upsertSalesOrder } from '../../src/sync/upsert-sales-order.step.ts'
import { openTestDatabase, type TestDatabase } from '../support/test-database.ts'

const erp: Connection = {
  id: 'erp',
  connector: genericRest,
  settings: {},
  secrets: {},
  mappings: {},
  concurrency: 1,
  circuitBreaker: circuitBreakerDefaults,
  retry: retryDefaults,
  stockPolicy: 'hold',
  approvedBy: 'orderbridge',
}
const connections: ConnectionRegistry = { get: (id) => (id === erp.id ? erp : undefined), all: () => [erp], pipeline: { erp } }

let test: TestDatabase
let db: Database
beforeAll(async () => {
  test = await openTestDatabase('postgres')
  db = test.db
})
afterAll(() => test?.drop())

async function orderWithLink(): Promise<string> {
  const id = randomUUID()
  await db.query(
    `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total)
     values ($1, 'crm', $2, 'reserved', 1, '{"version": 1}', 'CNY', '10.00')`,
    [id, `SO-${id.slice(0, 8)}`],
  )
  await db.query(`insert into links (order_id, connection_id, operation, status, target_version) values ($1, 'erp', 'salesOrders.upsert', 'pending', 1)`, [id])
  return id
}

/** Waits until some statement of this database waits for a row lock. */
async function untilWaitingForLock(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await db.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`)
    if (row!.n > 0) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error('the step never waited for the link row')
}

const deps = (): SyncDeps => ({ db, connections, mappings: {} as MappingCatalog, lifecycle: {} as Lifecycle, log: createLogger('silent') })

it('sees the version that committed while it waited for the link, not the order as it was before', async () => {
  const orderId = await orderWithLink()
  let seen: LeasedStep | undefined
  let step: Promise<unknown> | undefined
  await db.transaction(async (tx) => {
    // What the normalize job does when version 2 arrives: the order and its link in one transaction.
    await tx.query(`update orders set source_version = 2, document = '{"version": 2}' where id = $1`, [orderId])
    await tx.query(`update links set target_version = 2, status = 'pending' where order_id = $1`, [orderId])
    step = runLeasedStep(deps(), { job: { orderId, connectionId: 'erp', operation: 'salesOrders.upsert', sourceVersion: 1, correlationId: 'test' }, runId: 'run-1', lastTry: false }, async (s) => {
      seen = s
      return { result: 'skipped', reason: 'test' }
    })
    await untilWaitingForLock()
  })
  await step
  expect({ target: seen!.link.targetVersion, document: seen!.order.document }).toEqual({ target: 2, document: { version: 2 } })
})

it('settles a link that a repeated request reopened as synced again when the target holds that version already', async () => {
  const orderId = await orderWithLink()
  // Synced at version 1, then asked for version 1 again (a step re-run upstream asks for the ERP order once more).
  await db.query(`update links set status = 'pending', last_synced_version = 1, external_id = 'SO-1' where order_id = $1`, [orderId])
  const outcome = await upsertSalesOrder(deps(), { job: { orderId, connectionId: 'erp', operation: 'salesOrders.upsert', sourceVersion: 1, correlationId: 'test' }, runId: 'run-2', lastTry: false })
  expect(outcome).toEqual({ result: 'skipped', reason: 'version 1 is already synced' })
  const [link] = await db.query<{ status: string; lease_owner: string | null }>('select status, lease_owner from links where order_id = $1', [orderId])
  expect(link).toEqual({ status: 'synced', lease_owner: null })
})

it('takes the leases of steps starting together in one statement, and gives one link to one step only', async () => {
  const orders = await Promise.all(Array.from({ length: 6 }, () => orderWithLink()))
  const attempt = (orderId: string, runId: string) => ({ job: { orderId, connectionId: 'erp', operation: 'salesOrders.upsert', sourceVersion: 1, correlationId: 'test' }, runId, lastTry: false })
  const ran: string[] = []
  // Each step holds its lease until all have tried: a second run for the first order must meet it held.
  let release!: () => void
  const held = new Promise<void>((r) => (release = r))
  const steps = [...orders.map((id) => attempt(id, `run-${id}`)), attempt(orders[0]!, 'run-again')].map((a) =>
    runLeasedStep(deps(), a, async (s) => {
      ran.push(s.runId)
      await held
      return { result: 'skipped', reason: 'test' }
    }),
  )
  const settled = Promise.allSettled(steps)
  await new Promise((r) => setTimeout(r, 200))
  release()
  const results = await settled
  expect(ran.sort()).toEqual(orders.map((id) => `run-${id}`).sort())
  expect(results.at(-1)).toMatchObject({ status: 'rejected', reason: { kind: 'conflict' } })
  // Six owners, written by one transaction: PostgreSQL's xmin names the one that wrote each row.
  const [links] = await db.query<{ owners: number; writers: number }>(
    `select count(distinct lease_owner)::int as owners, count(distinct xmin::text)::int as writers from links where order_id = any($1::uuid[])`,
    [orders],
  )
  expect(links).toEqual({ owners: 6, writers: 1 })
})
