/**
 * Make the ERP's sales order match the order's current version: create it, update it, or cancel it
 * when the order was cancelled or rejected. Creating it moves the order on to `pending_shipment`.
 */
import { SyncFailure, type OperationContext, type RemoteRecord } from '../connector-kit/index.ts'
import { applyMapping } from '../mapping/mapping-catalog.ts'
import { describeMappingError } from '../mapping/compile-mapping.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { callRemote, fail, operationContext, release, runLeasedStep, settleLink, settleStep, type Attempt, type Called, type LeasedStep, type StepOutcome, type SyncDeps } from './step-runtime.ts'

export const upsertSalesOrderStepId = 'upsert-sales-order'

export function upsertSalesOrder(deps: SyncDeps, attempt: Attempt): Promise<StepOutcome> {
  return runLeasedStep(deps, attempt, async (step) => {
    const { order, link } = step
    const capability = step.connection.connector.salesOrders
    if (!capability) throw await fail(deps, step, new SyncFailure('config', `connection ${step.connection.id} cannot create sales orders`))
    if (link.lastSyncedVersion >= link.targetVersion) {
      // A cancelled order's link settles as cancelled, never as synced.
      await release(deps, step, { caughtUp: order.state !== 'cancelled' })
      return { result: 'skipped', reason: `version ${link.targetVersion} is already synced` }
    }
    // A rejected order (its stock policy rejects once it grew past the stock) may have had its sales
    // order created already: it is cancelled like a cancelled order's, and the link ends cancelled.
    if (order.state === 'cancelled' || order.state === 'rejected') return cancelSalesOrder(deps, step, operationContext(deps, step, 'salesOrders.cancel'))

    const ctx = operationContext(deps, step, 'salesOrders.upsert')
    const mappingId = step.connection.mappings.salesOrder!
    const mapping = await deps.mappings.active(mappingId)
    // A replay may carry an edited document for this very version (src/failures); it replaces the
    // mapping output once, and settleLink clears it when the target has accepted it.
    const mapped =
      link.overrideDocument && link.overrideVersion === order.sourceVersion
        ? { ok: true as const, value: link.overrideDocument }
        : await applyMapping(deps.mappings, mapping, { ...order.document, id: order.id })
    if (!mapped.ok) throw await fail(deps, step, new SyncFailure('data', mapped.errors.map(describeMappingError).join('; ')))
    const input = capability.upsert.inputSchema.safeParse(mapped.value)
    if (!input.success) {
      const message = issuesOf(input.error).map((i) => `${i.path}: ${i.message}`).join('; ')
      throw await fail(deps, step, new SyncFailure('data', `mapping ${mappingId} v${mapping.version} output: ${message}`))
    }
    const existing = link.externalId ? { externalId: link.externalId } : undefined
    const call = await callRemote(deps, step, ctx, () => capability.upsert.run(ctx, input.data, existing))
    const externalId = call.value.externalId

    await settleStep(deps, step, async (tx, locked, work, links) => {
      settleLink(links, step, [call], { externalId, done: 'synced' })
      work.changes.push({ type: 'sync.succeeded', orderId: order.id, connectionId: step.connection.id, data: { operation: step.job.operation, externalId, sourceVersion: link.targetVersion } })
      if (locked && (locked.state === 'approved' || locked.state === 'reserved')) {
        await deps.lifecycle.transition(tx, work, locked, 'pending_shipment', `${step.connection.id} created sales order ${externalId}`, { erpOrderNumber: externalId })
      }
    })
    // A newer version may have arrived while this one was being written; its own job syncs it.
    return { result: 'synced', externalId }
  })
}

/** The order was cancelled or rejected: cancel its sales order, if the ERP has one (or may have one). */
async function cancelSalesOrder(deps: SyncDeps, step: LeasedStep, ctx: OperationContext): Promise<StepOutcome> {
  const { order } = step
  const capability = step.connection.connector.salesOrders!
  const calls: Called<unknown>[] = []
  let existing: RemoteRecord | undefined = step.link.externalId ? { externalId: step.link.externalId } : undefined
  if (!existing && step.mayHaveWritten) {
    const found = await callRemote(deps, step, ctx, () => capability.findByReference(ctx, order.id))
    calls.push(found)
    existing = found.value
  }
  if (existing && !capability.cancel) {
    throw await fail(deps, step, new SyncFailure('config', `connector ${step.connection.connector.manifest.id} cannot cancel sales orders; cancel ${existing.externalId} by hand`))
  }
  const toCancel = existing
  if (toCancel) calls.push(await callRemote(deps, step, ctx, () => capability.cancel!(ctx, toCancel)))
  await settleStep(deps, step, async (tx, _locked, work, links) => {
    settleLink(links, step, calls, { externalId: existing?.externalId ?? null, done: 'cancelled' })
    work.events.push({ orderId: order.id, kind: 'external_call', cause: existing ? `${step.connection.id} cancelled sales order ${existing.externalId}` : `${step.connection.id} had no sales order to cancel` })
    work.changes.push({ type: 'sync.succeeded', orderId: order.id, connectionId: step.connection.id, data: { operation: 'salesOrders.cancel', externalId: existing?.externalId ?? null, sourceVersion: step.link.targetVersion } })
  })
  return { result: 'cancelled', ...(existing ? { externalId: existing.externalId } : {}) }
}
