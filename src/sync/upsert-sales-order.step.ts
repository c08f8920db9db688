/**
 * One idempotent step: put the order's current version into the ERP as a sales order.
 * A lease on the link row keeps steps for one order and target from interleaving across workers;
 * no database transaction is open while the connector talks to the ERP.
 */
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import { SyncFailure, type Logger } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import { applyMapping, type MappingCatalog } from '../mapping/mapping-catalog.ts'
import { describeMappingError } from '../mapping/compile-mapping.ts'
import { findOrder, lockOrder, recordOrderEvent } from '../orders/order.repository.ts'
import { canTransition } from '../orders/order-state.ts'
import type { SyncJob } from '../queue/queues.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { appendChanges, type ChangeInput } from '../status/change-feed.ts'

export const upsertSalesOrderStepId = 'upsert-sales-order'
const leaseMs = 120_000

export interface SyncDeps {
  db: Database
  connections: ConnectionRegistry
  mappings: MappingCatalog
  log: Logger
}

export type StepOutcome = { result: 'synced'; externalId: string } | { result: 'skipped'; reason: string }

interface Attempt {
  job: SyncJob
  /** Unique per run of the job: the lease owner. */
  runId: string
  /** True when this is the queue's last try: a retryable failure then becomes a dead letter. */
  lastTry: boolean
}

/** Throws SyncFailure when the step failed; the caller decides about retrying. */
export async function upsertSalesOrder(deps: SyncDeps, { job, runId, lastTry }: Attempt): Promise<StepOutcome> {
  const { db } = deps
  const key = [job.orderId, job.connectionId, job.operation]
  const [leased] = await db.query<{ external_id: string | null; last_synced_version: number | null }>(
    `update links set lease_owner = $4, lease_until = now() + make_interval(secs => $5)
     where order_id = $1 and connection_id = $2 and operation = $3 and (lease_until is null or lease_until < now() or lease_owner = $4)
     returning external_id, last_synced_version`,
    [...key, runId, leaseMs / 1000],
  )
  if (!leased) throw new SyncFailure('conflict', 'another step for this order and target is running', { connectorId: job.connectionId })
  const release = () => db.query('update links set lease_owner = null, lease_until = null where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $4', [...key, runId])

  const order = await findOrder(db, job.orderId)
  if (!order) {
    await release()
    throw new SyncFailure('not_found', `order ${job.orderId} does not exist`)
  }
  if ((leased.last_synced_version ?? 0) >= order.sourceVersion) {
    await release()
    return { result: 'skipped', reason: `version ${order.sourceVersion} is already synced` }
  }
  if (order.state === 'cancelled' || order.state === 'rejected') {
    await release()
    return { result: 'skipped', reason: `the order is ${order.state}` }
  }

  const connection = deps.connections.get(job.connectionId)
  const capability = connection?.connector.salesOrders
  if (!connection || !capability) throw new SyncFailure('config', `connection ${job.connectionId} cannot create sales orders`)
  const mappingId = connection.mappings.salesOrder!
  const mapping = await deps.mappings.active(mappingId)
  const mapped = await applyMapping(deps.mappings, mapping, { ...order.document, id: order.id })
  if (!mapped.ok) throw await fail(deps, attemptKey(job, order.sourceVersion), runId, new SyncFailure('data', mapped.errors.map(describeMappingError).join('; ')), lastTry)
  const input = capability.upsert.inputSchema.safeParse(mapped.value)
  if (!input.success) {
    const message = issuesOf(input.error).map((i) => `${i.path}: ${i.message}`).join('; ')
    throw await fail(deps, attemptKey(job, order.sourceVersion), runId, new SyncFailure('data', `mapping ${mappingId} v${mapping.version} output: ${message}`), lastTry)
  }

  const idempotencyKey = `${order.id}-${job.connectionId}-${job.operation}-v${order.sourceVersion}`
  // An earlier attempt that never recorded an answer, or lost it, may have written: look first.
  const [uncertain] = await db.query<{ n: number }>(
    `select count(*)::int as n from sync_attempts where order_id = $1 and connection_id = $2 and operation = $3
     and (outcome = 'started' or failure_kind = 'unknown_outcome')`,
    key,
  )
  const [attempt] = await db.query<{ id: number }>(
    'insert into sync_attempts (order_id, connection_id, operation, source_version, idempotency_key) values ($1, $2, $3, $4, $5) returning id',
    [...key, order.sourceVersion, idempotencyKey],
  )
  const started = Date.now()
  const ctx = {
    connectionId: connection.id,
    settings: connection.settings,
    secrets: connection.secrets,
    log: deps.log,
    idempotencyKey,
    reference: order.id,
    mayHaveWritten: (uncertain?.n ?? 0) > 0,
  }
  let externalId: string
  try {
    const existing = leased.external_id ? { externalId: leased.external_id } : undefined
    externalId = (await capability.upsert.run(ctx, input.data, existing)).externalId
  } catch (err) {
    const failure = connection.connector.classify(err, ctx)
    deps.log.warn({ orderId: order.id, connectorId: connection.id, step: upsertSalesOrderStepId, kind: failure.kind, err }, 'sync step failed')
    await db.query(
      `update sync_attempts set outcome = 'failed', finished_at = now(), duration_ms = $2, failure_kind = $3, error_message = $4 where id = $1`,
      [attempt!.id, Date.now() - started, failure.kind, failure.message],
    )
    throw await fail(deps, attemptKey(job, order.sourceVersion), runId, failure, lastTry)
  }

  await db.transaction(async (tx) => {
    await tx.query(`update sync_attempts set outcome = 'succeeded', finished_at = now(), duration_ms = $2, external_id = $3 where id = $1`, [attempt!.id, Date.now() - started, externalId])
    await tx.query(
      `update links set external_id = $4, status = case when (select source_version from orders where id = $1) <= $5 then 'synced' else 'pending' end,
       last_synced_version = greatest(coalesce(last_synced_version, 0), $5), last_error = null, lease_owner = null, lease_until = null, updated_at = now()
       where order_id = $1 and connection_id = $2 and operation = $3`,
      [...key, externalId, order.sourceVersion],
    )
    const locked = await lockOrder(tx, order.id)
    const changes: ChangeInput[] = [{ type: 'sync.succeeded', orderId: order.id, connectionId: job.connectionId, data: { operation: job.operation, externalId, sourceVersion: order.sourceVersion } }]
    if (locked && locked.state === 'approved' && canTransition('approved', 'pending_shipment')) {
      await recordOrderEvent(tx, { orderId: order.id, kind: 'transition', from: 'approved', to: 'pending_shipment', cause: `${job.connectionId} created sales order ${externalId}` })
      await tx.query(`update orders set state = 'pending_shipment', revision = revision + 1, updated_at = now() where id = $1`, [order.id])
      changes.push({ type: 'order.state_changed', orderId: order.id, connectionId: job.connectionId, data: { from: 'approved', to: 'pending_shipment' } })
    }
    await appendChanges(tx, changes)
  })
  // A newer version may have arrived while this one was being written; its own job syncs it.
  return { result: 'synced', externalId }
}

function attemptKey(job: SyncJob, sourceVersion: number) {
  return { ...job, sourceVersion }
}

/** Records the failure on the link, releases the lease and hands the failure back to be thrown. */
async function fail(deps: SyncDeps, job: SyncJob, runId: string, failure: SyncFailure, lastTry: boolean): Promise<SyncFailure> {
  const status = !failure.retryable ? 'needs_attention' : lastTry ? 'dead' : 'retrying'
  await deps.db.transaction(async (tx) => {
    await tx.query(
      `update links set status = $4, last_error = $5, lease_owner = null, lease_until = null, updated_at = now()
       where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $6`,
      [job.orderId, job.connectionId, job.operation, status, JSON.stringify(failure.toJSON()), runId],
    )
    await appendChanges(tx, [{ type: 'sync.failed', orderId: job.orderId, connectionId: job.connectionId, data: { operation: job.operation, status, ...failure.toJSON() } }])
  })
  return failure
}
