/**
 * Reserve stock for every line before the ERP order is created, through the inventory connection.
 * Short of stock, the connection's stock policy decides: hold the order (it is tried again when
 * stock arrives or on the periodic re-check), reserve what there is and backorder the rest (topped
 * up, at the same version, as stock arrives or on the re-check), or reject it (its reservation then
 * ends cancelled: a rejected order holds no stock). A cancelled order's reservation is released.
 */
import { isSyncFailure, SyncFailure, type OperationContext, type Reservation, type ReservationRequest } from '../connector-kit/index.ts'
import { reservingStates, type OrderState } from '../orders/order-state.ts'
import { callRemote, fail, operationContext, release, runLeasedStep, settleLink, settleStep, type Attempt, type Called, type LeasedStep, type StepOutcome, type SyncDeps } from './step-runtime.ts'

export const reserveStockStepId = 'reserve-stock'

export type StockPolicy = 'hold' | 'partial' | 'reject'

/** Lines short of stock, as the inventory system answered. */
export interface MissingStock {
  lineId: string
  sku: string
  requested: string
  available: string
}

export function reserveStock(deps: SyncDeps, attempt: Attempt): Promise<StepOutcome> {
  return runLeasedStep(deps, attempt, async (step) => {
    const { order, link } = step
    const inventory = step.connection.connector.inventory
    if (!inventory) throw await fail(deps, step, new SyncFailure('config', `connection ${step.connection.id} cannot reserve stock`))
    if (order.state === 'cancelled') return releaseReservation(deps, step, operationContext(deps, step, 'inventory.release'))
    if (!reservingStates.includes(order.state)) {
      await release(deps, step)
      return { result: 'skipped', reason: `an order in state ${order.state} reserves no stock` }
    }
    // A backorder is topped up at the same version: the reservation is asked for again in full.
    if (link.lastSyncedVersion >= link.targetVersion && order.state !== 'on_hold' && !order.hold?.backordered?.length) {
      await release(deps, step, { caughtUp: true })
      return { result: 'skipped', reason: `version ${link.targetVersion} is already reserved` }
    }

    const policy = step.connection.stockPolicy
    const request: ReservationRequest = {
      lines: order.document.lines.map((line, i) => ({ lineId: String(i + 1), sku: line.sku, quantity: line.quantity })),
      allowPartial: policy === 'partial',
    }
    const ctx = operationContext(deps, step, 'inventory.reserve')
    const existing = link.externalId ? { externalId: link.externalId } : undefined
    // Short of stock is an answer, not a failure of the call: the attempt succeeded.
    const call = await callRemote(deps, step, ctx, () =>
      inventory.reserve.run(ctx, request, existing).then(
        (reservation): Reservation | { missing: MissingStock[] } => reservation,
        (err: unknown) => {
          const missing = isSyncFailure(err) && err.kind === 'data' ? (err.details as { missing?: MissingStock[] }).missing : undefined
          if (missing?.length) return { missing }
          throw err
        },
      ),
    )
    const answer = call.value
    const missing = 'missing' in answer ? answer.missing : []
    const backordered = 'lines' in answer ? answer.lines.filter((l) => l.reserved !== l.requested) : []
    const rejects = (state: OrderState) => missing.length > 0 && policy === 'reject' && (state === 'approved' || state === 'on_hold')
    const calls: Called<unknown>[] = [call]
    // A short answer leaves what an earlier version reserved (an order that grew after it was
    // reserved): an order rejected for stock gives that back, so it holds none.
    if (rejects(order.state) && existing) {
      const releaseCtx = operationContext(deps, step, 'inventory.release')
      calls.push(await callRemote(deps, step, releaseCtx, () => inventory.release(releaseCtx, existing)))
    }

    await settleStep(deps, step, async (tx, locked, work, links) => {
      if (!locked) return
      const held = missing.length > 0
      const rejected = rejects(locked.state)
      // A rejected order's reservation is final (cancelled), not held: nothing waits for stock, and a
      // held link would be re-checked for good.
      settleLink(links, step, calls, { externalId: 'externalId' in answer ? answer.externalId : null, done: rejected ? 'cancelled' : held ? 'held' : 'synced' })
      if (rejected) {
        await deps.lifecycle.transition(tx, work, locked, 'rejected', `${step.connection.id}: not enough stock, and its stock policy rejects`, { missing })
      } else if (held) {
        await tx.query('update orders set hold = $2 where id = $1', [order.id, JSON.stringify({ missing })])
        if (locked.state !== 'on_hold' && (locked.state === 'approved' || locked.state === 'reserved')) {
          await deps.lifecycle.transition(tx, work, locked, 'on_hold', `${step.connection.id}: not enough stock`, { missing })
        } else {
          work.events.push({ orderId: order.id, kind: 'stock_short', cause: `${step.connection.id}: still not enough stock`, detail: { missing } })
        }
      } else {
        await tx.query('update orders set hold = $2 where id = $1', [order.id, backordered.length ? JSON.stringify({ backordered }) : null])
        if (order.hold?.backordered?.length) {
          const detail = backordered.length ? { backordered } : { filled: order.hold.backordered }
          work.events.push({ orderId: order.id, kind: backordered.length ? 'stock_short' : 'stock_arrived', cause: `${step.connection.id}: backorder ${backordered.length ? 'still open' : 'filled'}`, detail })
        }
        work.changes.push({ type: 'sync.succeeded', orderId: order.id, connectionId: step.connection.id, data: { operation: step.job.operation, externalId: (answer as Reservation).externalId, sourceVersion: link.targetVersion } })
        if (locked.state === 'approved' || locked.state === 'on_hold') {
          await deps.lifecycle.transition(tx, work, locked, 'reserved', `${step.connection.id} reserved stock (${(answer as Reservation).externalId})`, backordered.length ? { backordered } : undefined)
        } else if (reservingStates.includes(locked.state) && link.targetVersion > link.lastSyncedVersion) {
          // Quantities changed after the reservation: the ERP order follows. (A backorder topped up
          // changes no quantity the ERP order has.)
          await deps.lifecycle.requestSalesOrder(tx, work, locked)
        }
        // Otherwise the order was cancelled during the call: its cancellation asked for this step
        // again (the link is pending once more), and that run releases what was just reserved.
      }
    })
    return missing.length ? { result: 'waiting', reason: `short of stock on ${missing.length} line(s)` } : { result: 'synced', externalId: (answer as Reservation).externalId }
  })
}

async function releaseReservation(deps: SyncDeps, step: LeasedStep, ctx: OperationContext): Promise<StepOutcome> {
  const inventory = step.connection.connector.inventory!
  const calls: Called<unknown>[] = []
  let existing = step.link.externalId ? { externalId: step.link.externalId } : undefined
  if (!existing && step.mayHaveWritten) {
    const found = await callRemote(deps, step, ctx, () => inventory.findReservation(ctx, step.order.id))
    calls.push(found)
    existing = found.value
  }
  const toRelease = existing
  if (toRelease) calls.push(await callRemote(deps, step, ctx, () => inventory.release(ctx, toRelease)))
  await settleStep(deps, step, async (tx, _locked, work, links) => {
    settleLink(links, step, calls, { externalId: existing?.externalId ?? null, done: 'cancelled' })
    work.events.push({ orderId: step.order.id, kind: 'external_call', cause: existing ? `${step.connection.id} released reservation ${existing.externalId}` : `${step.connection.id} held no reservation` })
  })
  return { result: 'cancelled', ...(existing ? { externalId: existing.externalId } : {}) }
}
