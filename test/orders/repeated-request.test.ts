/**
 * A step can be asked again for a version its target already holds: an update's second reservation
 * asks for the ERP order again after the ERP has it, a repair or a released hold asks for the step
 * once more. The job that ran that version keeps its id in the queue for a while, so the request
 * must replace it; added beside it, the request would be dropped as a duplicate and the link would
 * wait, pending, for the sweeper. Found by the counters test on a busy machine.
 * (The reconciliation harness is used for its lifecycle on the stack's own queues.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { newUnitOfWork } from '../../src/orders/lifecycle.ts'
import { orderFromRow, selectOrder } from '../../src/orders/order.repository.ts'
import { startReconciliationHarness, type ReconciliationHarness } from '../reconciliation/reconciliation-harness.ts'

let h: ReconciliationHarness
beforeAll(async () => {
  h = await startReconciliationHarness()
})
afterAll(() => h?.close())

it('runs a step asked again for the version it synced, and leaves its link synced without writing twice', async () => {
  const [orderId] = await h.sendOrders('SO-RQ', 1)
  const writes = () => h.stack.erp.requests().filter((r) => r.method !== 'GET').length
  const writesBefore = writes()

  const work = newUnitOfWork()
  await h.db.transaction(async (tx) => {
    const [row] = await tx.query(`${selectOrder('$1')} for update`, [orderId])
    await h.lifecycle.requestSalesOrder(tx, work, orderFromRow(row!))
    await h.lifecycle.finish(tx, work)
  })
  expect((await h.link(orderId!, 'salesOrders.upsert'))?.status).toBe('pending')
  await h.lifecycle.dispatch(work, 'test')

  // Well within the sweeper's minute: the request's own job ran, found the version there, and settled.
  await h.stack.waitFor(async () => (await h.link(orderId!, 'salesOrders.upsert'))?.status === 'synced', 'the link synced again', 10_000)
  expect(writes()).toBe(writesBefore)
  expect(h.stack.erp.salesOrders().filter((o) => o.reference === orderId)).toHaveLength(1)
})
