/**
 * What a run does about its findings. Report-only kinds are recorded and nothing else happens.
 * A repair of our own step goes through the normal pipeline: under the order's row lock the link
 * is marked unsynced and the step asked for again (lifecycle.requestStep, or the status write-back),
 * then dispatched after commit; the step itself is as idempotent as ever. A record that is not ours
 * (a duplicate, an orphan reservation) is released or cancelled through the connector's capability
 * under an idempotency key of its own. Every repair is in the audit log and the order's timeline.
 * No transaction is open while a connector is called.
 */
import { recordAudit } from '../admin/audit-log.ts'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Logger, OperationContext } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import { newUnitOfWork, type Lifecycle } from '../orders/lifecycle.ts'
import { lockOrder } from '../orders/order.repository.ts'
import type { Finding, Repair } from './compare.ts'
import type { DiscrepancyInput } from './reconciliation.repository.ts'
import type { ReconciliationPolicy } from './reconciliation.schemas.ts'
import { readTarget } from './targets.ts'

export interface RepairDeps {
  db: Database
  connections: ConnectionRegistry
  lifecycle: Lifecycle
  log: Logger
}

export interface RunRef {
  id: number
  policy: ReconciliationPolicy
}

const actorOf = (run: RunRef) => `reconciliation run ${run.id}`

type Settled = DiscrepancyInput

function record(finding: Finding, action: Settled['action'], detail: string | null, repairedAt: Date | null = null): Settled {
  return {
    kind: finding.kind,
    orderId: finding.orderId,
    connectionId: finding.connectionId,
    externalId: finding.externalId,
    expected: finding.expected,
    actual: finding.actual,
    action,
    detail,
    repairedAt,
  }
}

const describeRepair = (repair: Repair): string => {
  switch (repair.type) {
    case 'rerun-step':
      return repair.clearExternalId ? `${repair.operation} asked for again (the target lost its record: created anew)` : `${repair.operation} asked for again`
    case 'repush-status':
      return 'status written back to the CRM again'
    case 'release-reservation':
      return `reservation ${repair.externalId} released`
    case 'cancel-sales-order':
      return `sales order ${repair.externalId} cancelled`
    case 'replace-reservation':
      return `reservation ${repair.externalId} set back to the order's quantities`
  }
}

/** Applies the run's policy to a page of findings; answers what to record for each. */
export async function settleFindings(deps: RepairDeps, run: RunRef, findings: readonly Finding[]): Promise<Settled[]> {
  const settled: Settled[] = []
  const pipeline = new Map<string, Finding[]>()
  const direct: Finding[] = []
  for (const finding of findings) {
    if (run.policy[finding.kind] === 'report') settled.push(record(finding, 'reported', finding.note ?? null))
    else if (!finding.repair || (!finding.orderId && (finding.repair.type === 'rerun-step' || finding.repair.type === 'repush-status'))) {
      settled.push(record(finding, 'reported', `no automatic repair: ${finding.note ?? 'nothing in the pipeline can mend this'}`))
    } else if (finding.repair.type === 'rerun-step' || finding.repair.type === 'repush-status') {
      pipeline.set(finding.orderId!, [...(pipeline.get(finding.orderId!) ?? []), finding])
    } else direct.push(finding)
  }
  for (const [orderId, orderFindings] of pipeline) settled.push(...(await repairThroughPipeline(deps, run, orderId, orderFindings)))
  if (direct.length) settled.push(...(await repairDirectly(deps, run, direct)))
  return settled
}

/** One transaction per order: its row lock, then the links, as every writer takes them. */
async function repairThroughPipeline(deps: RepairDeps, run: RunRef, orderId: string, findings: readonly Finding[]): Promise<Settled[]> {
  const work = newUnitOfWork()
  const settled = await deps.db.transaction(async (tx) => {
    const order = await lockOrder(tx, orderId)
    if (!order) return findings.map((f) => record(f, 'reported', 'the order no longer exists'))
    const out: Settled[] = []
    // Several findings may ask for the same step (an amount and a line mismatch): it is asked for once.
    const steps = new Map<string, { connectionId: string; operation: string; clearExternalId: boolean; findings: Finding[] }>()
    const statusPushes: Finding[] = []
    for (const finding of findings) {
      const repair = finding.repair!
      if (repair.type === 'repush-status') statusPushes.push(finding)
      else if (repair.type === 'rerun-step') {
        const key = `${finding.connectionId}\u0000${repair.operation}`
        const step = steps.get(key) ?? { connectionId: finding.connectionId, operation: repair.operation, clearExternalId: false, findings: [] }
        step.clearExternalId ||= repair.clearExternalId
        step.findings.push(finding)
        steps.set(key, step)
      }
    }
    for (const step of steps.values()) {
      const connection = deps.connections.get(step.connectionId)
      // Only a settled link is reopened: a step that started meanwhile decides for itself.
      const reopened = connection
        ? await tx.query(
            `update links set last_synced_version = null${step.clearExternalId ? ', external_id = null' : ''}, updated_at = now()
             where order_id = $1 and connection_id = $2 and operation = $3 and status in ('synced', 'cancelled') and (lease_until is null or lease_until < now())
             returning order_id`,
            [orderId, step.connectionId, step.operation],
          )
        : []
      if (!connection || !reopened.length) {
        out.push(...step.findings.map((f) => record(f, 'reported', connection ? 'a step for this order started meanwhile; left to it' : `connection ${step.connectionId} is not configured`)))
        continue
      }
      await deps.lifecycle.requestStep(tx, work, { orderId, connection, operation: step.operation, version: order.sourceVersion, onlyIfLinked: true })
      for (const f of step.findings) out.push(record(f, 'repair_requested', describeRepair(f.repair!)))
    }
    if (statusPushes.length) {
      await deps.lifecycle.requestStatusWriteback(tx, work, { id: order.id, sourceConnection: order.sourceConnection })
      for (const f of statusPushes) out.push(record(f, 'repair_requested', describeRepair(f.repair!)))
    }
    const done = out.filter((s) => s.action === 'repair_requested')
    if (done.length) {
      await recordAudit(tx, {
        actor: actorOf(run),
        action: 'reconciliation.repair',
        subject: `order:${orderId}`,
        before: done.map((d) => ({ kind: d.kind, connection: d.connectionId, externalId: d.externalId, expected: d.expected, actual: d.actual })),
        after: done.map((d) => ({ kind: d.kind, connection: d.connectionId, action: d.action, detail: d.detail })),
      })
      for (const d of done) work.events.push({ orderId, kind: 'reconciliation', cause: `${actorOf(run)}: ${d.kind} at ${d.connectionId}; ${d.detail}` })
    }
    await deps.lifecycle.finish(tx, work)
    return out
  })
  // After commit; a lost enqueue is found by the sweeper (the link is pending).
  await deps.lifecycle.dispatch(work, `reconcile-run-${run.id}`).catch((err) => deps.log.warn({ err, orderId }, 'enqueue after a reconciliation repair failed; the sweeper will pick it up'))
  return settled
}

/** Releases or cancels records that are not ours to keep, each under an idempotency key of its own. */
async function repairDirectly(deps: RepairDeps, run: RunRef, findings: readonly Finding[]): Promise<Settled[]> {
  const settled: Settled[] = []
  for (const finding of findings) {
    const repair = finding.repair!
    if (repair.type === 'rerun-step' || repair.type === 'repush-status') continue
    const connection = deps.connections.get(finding.connectionId)
    const { externalId } = repair
    const inventory = connection?.connector.inventory
    const cancel = connection?.connector.salesOrders?.cancel
    const can = repair.type === 'cancel-sales-order' ? cancel !== undefined : inventory !== undefined
    if (!connection || !can) {
      settled.push(record(finding, 'reported', `no automatic repair: connection ${finding.connectionId} cannot ${repair.type === 'cancel-sales-order' ? 'cancel sales orders' : 'change reservations'}`))
      continue
    }
    const ctx: OperationContext = {
      connectionId: connection.id,
      settings: connection.settings,
      secrets: connection.secrets,
      log: deps.log,
      idempotencyKey: `reconcile-${run.id}-${repair.type}-${externalId}`,
      reference: finding.orderId ?? externalId,
      mayHaveWritten: true,
    }
    try {
      await readTarget(connection, deps.log, describeRepair(repair), async () => {
        if (repair.type === 'cancel-sales-order') await cancel!(ctx, { externalId })
        else if (repair.type === 'release-reservation') await inventory!.release(ctx, { externalId })
        else await inventory!.reserve.run(ctx, repair.request, { externalId })
      })
      settled.push(record(finding, 'repaired', `${describeRepair(repair)} through ${connection.id}`, new Date()))
    } catch (err) {
      settled.push(record(finding, 'repair_failed', (err as Error).message))
    }
  }
  const work = newUnitOfWork()
  await deps.db.transaction(async (tx) => {
    for (const s of settled) {
      if (s.action === 'reported') continue
      await recordAudit(tx, {
        actor: actorOf(run),
        action: 'reconciliation.repair',
        subject: s.orderId ? `order:${s.orderId}` : `${s.connectionId}:${s.externalId}`,
        before: { kind: s.kind, connection: s.connectionId, externalId: s.externalId, expected: s.expected, actual: s.actual },
        after: { action: s.action, detail: s.detail },
      })
      if (s.orderId) work.events.push({ orderId: s.orderId, kind: 'reconciliation', cause: `${actorOf(run)}: ${s.kind} at ${s.connectionId}; ${s.detail}` })
    }
    await deps.lifecycle.finish(tx, work)
  })
  return settled
}
