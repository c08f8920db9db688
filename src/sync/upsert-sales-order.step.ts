/**
 * One idempotent step: make the ERP's sales order match the order's current version — create it,
 * update it, or cancel it when the order was cancelled. A lease on the link row keeps steps for one
 * order and target from interleaving across workers; no database transaction is open while the
 * connector talks to the ERP.
 */
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import { isSyncFailure, SyncFailure, type Logger, type OperationContext, type RemoteRecord } from '../connector-kit/index.ts'
import type { Database, Queryable } from '../db/database.ts'
import { applyMapping, type MappingCatalog } from '../mapping/mapping-catalog.ts'
import { describeMappingError } from '../mapping/compile-mapping.ts'
import { lockOrder, orderFromRow, recordHistory, selectOrder, type OrderEventInput, type OrderRow } from '../orders/order.repository.ts'
import { canTransition, type OrderState } from '../orders/order-state.ts'
import type { SyncJob } from '../queue/queues.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { changeParams, changeRows, type ChangeInput } from '../status/change-feed.ts'

export const upsertSalesOrderStepId = 'upsert-sales-order'
/**
 * A step holds its lease while it runs and renews it every `leaseMs / 3`, so a step that takes
 * long keeps it, and a worker that died frees its orders after `leaseMs` at most.
 */
const leaseMs = 30_000

export interface SyncDeps {
  db: Database
  connections: ConnectionRegistry
  mappings: MappingCatalog
  log: Logger
}

export type StepOutcome = { result: 'synced'; externalId: string } | { result: 'cancelled'; externalId?: string } | { result: 'skipped'; reason: string }

interface Attempt {
  job: SyncJob
  /** Unique per run of the job: the lease owner. */
  runId: string
  /** True when this is the queue's last try: a retryable failure then becomes a dead letter. */
  lastTry: boolean
}

interface Leased {
  externalId: string | null
  lastSyncedVersion: number
  status: string
}

/** Throws SyncFailure when the step failed; the caller decides about retrying. */
export async function upsertSalesOrder(deps: SyncDeps, attempt: Attempt): Promise<StepOutcome> {
  const renewal = setInterval(() => void renewLease(deps, attempt.job, attempt.runId).catch(() => {}), leaseMs / 3)
  try {
    return await runStep(deps, attempt)
  } catch (err) {
    // A SyncFailure has settled the link already; anything else (a database error, a bug) must not
    // leave the lease to block every retry until it runs out.
    if (!isSyncFailure(err)) await release(deps, attempt.job, attempt.runId).catch(() => {})
    throw err
  } finally {
    clearInterval(renewal)
  }
}

async function renewLease(deps: SyncDeps, job: SyncJob, runId: string): Promise<void> {
  await deps.db.query(
    'update links set lease_until = now() + make_interval(secs => $5) where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $4',
    [job.orderId, job.connectionId, job.operation, runId, leaseMs / 1000],
  )
}

async function runStep(deps: SyncDeps, { job, runId, lastTry }: Attempt): Promise<StepOutcome> {
  const key = [job.orderId, job.connectionId, job.operation]
  // One round trip: take the lease, read the order, and count earlier attempts that may have written.
  const [row] = await deps.db.query<
    Record<string, unknown> & { link_external_id: string | null; last_synced_version: number | null; link_status: string; override_document: Record<string, unknown> | null; override_version: number | null; uncertain: number }
  >(
    `with leased as (
       update links set lease_owner = $4, lease_until = now() + make_interval(secs => $5)
       where order_id = $1 and connection_id = $2 and operation = $3 and (lease_until is null or lease_until < now() or lease_owner = $4)
       returning external_id as link_external_id, last_synced_version, status as link_status, override_document, override_version)
     select leased.*, o.*,
       (select count(*)::int from sync_attempts where order_id = $1 and connection_id = $2 and operation = $3
        and (outcome <> 'failed' or failure_kind = 'unknown_outcome')) as uncertain
     from leased left join lateral (${selectOrder('$1')}) o on true`,
    [...key, runId, leaseMs / 1000],
  )
  if (!row) throw new SyncFailure('conflict', 'another step for this order and target is running', { connectorId: job.connectionId })
  const leased: Leased = { externalId: row.link_external_id, lastSyncedVersion: row.last_synced_version ?? 0, status: row.link_status }
  const override = row.override_document
  const failWith = (failure: SyncFailure) => fail(deps, job, runId, failure, lastTry)

  const order = row.id ? orderFromRow(row) : undefined
  const connection = deps.connections.get(job.connectionId)
  if (!order) throw await failWith(new SyncFailure('not_found', `order ${job.orderId} does not exist`))
  if (!connection?.connector.salesOrders) throw await failWith(new SyncFailure('config', `connection ${job.connectionId} cannot create sales orders`))
  if (leased.lastSyncedVersion >= order.sourceVersion) {
    await release(deps, job, runId)
    return { result: 'skipped', reason: `version ${order.sourceVersion} is already synced` }
  }
  if (order.state === 'rejected') {
    await release(deps, job, runId)
    return { result: 'skipped', reason: 'the order was rejected' }
  }

  const operation = order.state === 'cancelled' ? 'cancel' : 'upsert'
  const idempotencyKey = `${order.id}-${job.connectionId}-salesOrders.${operation}-v${order.sourceVersion}`
  const ctx: OperationContext = {
    connectionId: connection.id,
    settings: connection.settings,
    secrets: connection.secrets,
    log: deps.log,
    idempotencyKey,
    reference: order.id,
    mayHaveWritten: row.uncertain > 0,
  }

  if (operation === 'cancel') return cancelSalesOrder(deps, { job, runId, lastTry }, connection, ctx, order, leased)

  const capability = connection.connector.salesOrders
  const mappingId = connection.mappings.salesOrder!
  const mapping = await deps.mappings.active(mappingId)
  // A replay may carry an edited document for this very version (src/failures); it replaces the
  // mapping output once, and settleLink clears it when the target has accepted it.
  const mapped =
    override && row.override_version === order.sourceVersion
      ? { ok: true as const, value: override }
      : await applyMapping(deps.mappings, mapping, { ...order.document, id: order.id })
  if (!mapped.ok) throw await failWith(new SyncFailure('data', mapped.errors.map(describeMappingError).join('; ')))
  const input = capability.upsert.inputSchema.safeParse(mapped.value)
  if (!input.success) {
    const message = issuesOf(input.error).map((i) => `${i.path}: ${i.message}`).join('; ')
    throw await failWith(new SyncFailure('data', `mapping ${mappingId} v${mapping.version} output: ${message}`))
  }
  const existing = leased.externalId ? { externalId: leased.externalId } : undefined
  const call = await callRemote(deps, { job, runId, lastTry }, connection, ctx, order, () => capability.upsert.run(ctx, input.data, existing))
  const externalId = call.value.externalId

  await deps.db.transaction(async (tx) => {
    // The order's row first, then the link's, as normalize takes them: the other order deadlocks.
    const locked = await lockOrder(tx, order.id)
    const created = locked?.state === 'approved' && canTransition('approved', 'pending_shipment')
    await settle(tx, job, order.sourceVersion, [call], { externalId, done: 'synced', newState: created ? 'pending_shipment' : null })
    const changes: ChangeInput[] = [{ type: 'sync.succeeded', orderId: order.id, connectionId: job.connectionId, data: { operation: job.operation, externalId, sourceVersion: order.sourceVersion } }]
    const events: OrderEventInput[] = []
    if (created) {
      events.push({ orderId: order.id, kind: 'transition', from: 'approved', to: 'pending_shipment', cause: `${job.connectionId} created sales order ${externalId}` })
      changes.push({ type: 'order.state_changed', orderId: order.id, connectionId: job.connectionId, data: { from: 'approved', to: 'pending_shipment' } })
    }
    await recordHistory(tx, events, changes)
  })
  // A newer version may have arrived while this one was being written; its own job syncs it.
  return { result: 'synced', externalId }
}

/** The order was cancelled: cancel its sales order, if the ERP has one (or may have one). */
async function cancelSalesOrder(deps: SyncDeps, attempt: Attempt, connection: Connection, ctx: OperationContext, order: OrderRow, leased: Leased): Promise<StepOutcome> {
  const { job } = attempt
  const capability = connection.connector.salesOrders!
  const calls: Called<unknown>[] = []
  let existing: RemoteRecord | undefined = leased.externalId ? { externalId: leased.externalId } : undefined
  if (!existing && ctx.mayHaveWritten) {
    const found = await callRemote(deps, attempt, connection, ctx, order, () => capability.findByReference(ctx, order.id))
    calls.push(found)
    existing = found.value
  }
  if (existing && !capability.cancel) {
    throw await fail(deps, job, attempt.runId, new SyncFailure('config', `connector ${connection.connector.manifest.id} cannot cancel sales orders; cancel ${existing.externalId} by hand`), attempt.lastTry)
  }
  const toCancel = existing
  if (toCancel) calls.push(await callRemote(deps, attempt, connection, ctx, order, () => capability.cancel!(ctx, toCancel)))
  await deps.db.transaction(async (tx) => {
    await lockOrder(tx, order.id) // before the link, as above
    await settle(tx, job, order.sourceVersion, calls, { externalId: existing?.externalId ?? null, done: 'cancelled', newState: null })
    await recordHistory(
      tx,
      [{ orderId: order.id, kind: 'external_call', cause: existing ? `${job.connectionId} cancelled sales order ${existing.externalId}` : `${job.connectionId} had no sales order to cancel` }],
      [{ type: 'sync.succeeded', orderId: order.id, connectionId: job.connectionId, data: { operation: 'salesOrders.cancel', externalId: existing?.externalId ?? null, sourceVersion: order.sourceVersion } }],
    )
  })
  return { result: 'cancelled', ...(existing ? { externalId: existing.externalId } : {}) }
}

/** A remote call that answered: its attempt row is marked succeeded when the step settles. */
interface Called<T> {
  value: T
  attemptId: number
  durationMs: number
}

/**
 * One remote call, recorded as a sync attempt before it is made (a crash during the call leaves an
 * attempt with no answer: the outcome is unknown). A failure is classified by the connector and
 * recorded on the link.
 */
async function callRemote<T>(deps: SyncDeps, attempt: Attempt, connection: Connection, ctx: OperationContext, order: OrderRow, call: () => Promise<T>): Promise<Called<T>> {
  const { job } = attempt
  const [row] = await deps.db.query<{ id: number }>(
    'insert into sync_attempts (order_id, connection_id, operation, source_version, idempotency_key) values ($1, $2, $3, $4, $5) returning id',
    [job.orderId, job.connectionId, job.operation, order.sourceVersion, ctx.idempotencyKey],
  )
  const started = Date.now()
  try {
    return { value: await call(), attemptId: row!.id, durationMs: Date.now() - started }
  } catch (err) {
    const failure = connection.connector.classify(err, ctx)
    deps.log.warn({ orderId: order.id, connectorId: connection.id, step: upsertSalesOrderStepId, kind: failure.kind, err }, 'sync step failed')
    await deps.db.query(`update sync_attempts set outcome = 'failed', finished_at = now(), duration_ms = $2, failure_kind = $3, error_message = $4 where id = $1`, [
      row!.id,
      Date.now() - started,
      failure.kind,
      failure.message,
    ])
    throw await fail(deps, job, attempt.runId, failure, attempt.lastTry)
  }
}

/**
 * Settles the step in one statement: the calls' attempts succeeded, the link records the target's id
 * and the synced version (and goes back to pending when a newer version arrived meanwhile), and the
 * order moves to `newState` when given. The caller holds the order's row lock.
 */
async function settle(
  tx: Queryable,
  job: SyncJob,
  sourceVersion: number,
  calls: readonly Called<unknown>[],
  outcome: { externalId: string | null; done: 'synced' | 'cancelled'; newState: OrderState | null },
): Promise<void> {
  await tx.query(
    `with answered as (
       update sync_attempts a set outcome = 'succeeded', finished_at = now(), duration_ms = s.duration_ms, external_id = $4
       from unnest($7::bigint[], $8::int[]) as s(id, duration_ms) where a.id = s.id),
     moved as (
       update orders set state = $9, revision = revision + 1, updated_at = now() where id = $1 and $9::text is not null)
     update links set external_id = coalesce($4, external_id),
       status = case when (select source_version from orders where id = $1) <= $5 then $6 else 'pending' end,
       last_synced_version = greatest(coalesce(last_synced_version, 0), $5), last_error = null, lease_owner = null, lease_until = null, updated_at = now(),
       override_document = null, override_version = null
     where order_id = $1 and connection_id = $2 and operation = $3`,
    [job.orderId, job.connectionId, job.operation, outcome.externalId, sourceVersion, outcome.done, calls.map((c) => c.attemptId), calls.map((c) => c.durationMs), outcome.newState],
  )
}

async function release(deps: SyncDeps, job: SyncJob, runId: string): Promise<void> {
  await deps.db.query('update links set lease_owner = null, lease_until = null where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $4', [
    job.orderId,
    job.connectionId,
    job.operation,
    runId,
  ])
}

/**
 * Records the failure on the link, releases the lease and hands the failure back to be thrown.
 * A failure the worker will wait out (a conflict, a Retry-After) is not a dead letter even on the
 * last try: waiting does not use an attempt.
 */
async function fail(deps: SyncDeps, job: SyncJob, runId: string, failure: SyncFailure, lastTry: boolean): Promise<SyncFailure> {
  const waits = failure.kind === 'conflict' || failure.details.retryAfterMs !== undefined
  const status = !failure.retryable ? 'needs_attention' : lastTry && !waits ? 'dead' : 'retrying'
  await deps.db.query(
    `with failed as (
       update links set status = $4, last_error = $5, lease_owner = null, lease_until = null, updated_at = now()
       where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $6)
     insert into changes (type, order_id, connection_id, data) ${changeRows(7)}`,
    [
      job.orderId,
      job.connectionId,
      job.operation,
      status,
      JSON.stringify(failure.toJSON()),
      runId,
      ...changeParams([{ type: 'sync.failed', orderId: job.orderId, connectionId: job.connectionId, data: { operation: job.operation, status, ...failure.toJSON() } }]),
    ],
  )
  return failure
}
