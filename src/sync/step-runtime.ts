/**
 * What every sync step shares: a lease on its link row (so steps for one order and target never
 * interleave across workers), one sync attempt recorded before each remote call (so a crash leaves
 * an unknown outcome, never a forgotten write), and settling the link, the order and its history
 * in one transaction after the remote answered. No transaction is open while a connector talks.
 */
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import { isSyncFailure, SyncFailure, type Logger, type OperationContext } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import type { MappingCatalog } from '../mapping/mapping-catalog.ts'
import type { Lifecycle } from '../orders/lifecycle.ts'
import { orderFromRow, selectOrder, type OrderRow } from '../orders/order.repository.ts'
import type { SyncJob } from '../queue/queues.ts'
import { changeParams, changeRows } from '../status/change-feed.ts'
import { batcherPer, createBatcher } from '../shared/batcher.ts'
import type { LinkSettle } from './link-settles.ts'
import { settleTogether, type Settle } from './settle-group.ts'

/**
 * A step holds its lease while it runs and renews it every `leaseMs / 3`, so a step that takes
 * long keeps it, and a worker that died frees its orders after `leaseMs` at most.
 */
const leaseMs = 30_000

export interface SyncDeps {
  db: Database
  connections: ConnectionRegistry
  mappings: MappingCatalog
  lifecycle: Lifecycle
  log: Logger
}

export type StepOutcome =
  | { result: 'synced'; externalId?: string }
  | { result: 'cancelled'; externalId?: string }
  | { result: 'skipped'; reason: string }
  | { result: 'waiting'; reason: string }

export interface Attempt {
  job: SyncJob
  /** Unique per run of the job: the lease owner. */
  runId: string
  /** True when this is the queue's last try: a retryable failure then becomes a dead letter. */
  lastTry: boolean
}

/** A step with its lease taken: the order and link as they were when it was taken. */
export interface LeasedStep extends Attempt {
  order: OrderRow
  connection: Connection
  link: {
    externalId: string | null
    lastSyncedVersion: number
    /** The version this run brings the target to; settled as synced when it succeeds. */
    targetVersion: number
    overrideDocument: Record<string, unknown> | null
    overrideVersion: number | null
  }
  /** True when an earlier attempt may have reached the remote (no answer recorded, or lost). */
  mayHaveWritten: boolean
}

/** A remote call that answered: its attempt row is marked succeeded when the step settles. */
export interface Called<T> {
  value: T
  attemptId: number
  durationMs: number
}

/**
 * Takes the lease and runs `body`, renewing the lease meanwhile. Throws SyncFailure when the step
 * failed (the link records it); the worker decides about retrying.
 */
export async function runLeasedStep(deps: SyncDeps, attempt: Attempt, body: (step: LeasedStep) => Promise<StepOutcome>): Promise<StepOutcome> {
  const renewal = setInterval(() => void renewLease(deps, attempt).catch(() => {}), leaseMs / 3)
  try {
    const step = await takeLease(deps, attempt)
    return await body(step)
  } catch (err) {
    // A SyncFailure has settled the link already; anything else (a database error, a bug) must not
    // leave the lease to block every retry until it runs out.
    if (!isSyncFailure(err)) await release(deps, attempt).catch(() => {})
    throw err
  } finally {
    clearInterval(renewal)
  }
}

type LeaseRow = Record<string, unknown> & {
  link_external_id: string | null
  last_synced_version: number | null
  target_version: number | null
  override_document: Record<string, unknown> | null
  override_version: number | null
  uncertain: number
}

const linkColumns = 'l.external_id as link_external_id, l.last_synced_version, l.target_version, l.override_document, l.override_version'
const linkKey = 'order_id = $1 and connection_id = $2 and operation = $3'
/** Earlier attempts of this step that may have written: they answered, or their outcome is unknown. */
const uncertainAttempts = `(select count(*)::int from sync_attempts where ${linkKey} and (outcome <> 'failed' or failure_kind = 'unknown_outcome')) as uncertain`

interface LinkKey {
  orderId: string
  connectionId: string
  operation: string
}
const keyOfLink = (k: LinkKey) => `${k.orderId} ${k.connectionId} ${k.operation}`

type Taken = LeaseRow & { unchanged: boolean }

/**
 * The leases of steps starting together are taken in one statement (src/shared/batcher.ts), which
 * also reads each order and counts the earlier attempts that may have written. An update may wait
 * for a link's row lock and then see the version that committed meanwhile, while the order is read
 * as the statement found it: `unchanged` says whether the two still agree.
 */
const takeLeases = batcherPer((db: Database) =>
  createBatcher(
    async (requests: (LinkKey & { runId: string })[]): Promise<(Taken | undefined)[]> => {
      const rows = await db.query<Taken & { leased_order: string; leased_connection: string; leased_operation: string }>(
        `with wanted as (
           select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) as w(order_id, connection_id, operation, owner)),
         leased as (
           update links l set lease_owner = w.owner, lease_until = now() + make_interval(secs => $5)
           from wanted w
           where l.order_id = w.order_id and l.connection_id = w.connection_id and l.operation = w.operation
             and (l.lease_until is null or l.lease_until < now() or l.lease_owner = w.owner)
           returning l.order_id as leased_order, l.connection_id as leased_connection, l.operation as leased_operation, ${linkColumns})
         select leased.*, o.*,
           (select count(*)::int from sync_attempts a
             where a.order_id = leased.leased_order and a.connection_id = leased.leased_connection and a.operation = leased.leased_operation
               and (a.outcome <> 'failed' or a.failure_kind = 'unknown_outcome')) as uncertain,
           exists (select from links s
             where s.order_id = leased.leased_order and s.connection_id = leased.leased_connection and s.operation = leased.leased_operation
               and (s.external_id, s.last_synced_version, s.target_version)
                 is not distinct from (leased.link_external_id, leased.last_synced_version, leased.target_version)) as unchanged
         from leased left join lateral (${selectOrder('leased.leased_order')}) o on true`,
        [requests.map((r) => r.orderId), requests.map((r) => r.connectionId), requests.map((r) => r.operation), requests.map((r) => r.runId), leaseMs / 1000],
      )
      const byLink = new Map(rows.map((r) => [keyOfLink({ orderId: r.leased_order, connectionId: r.leased_connection, operation: r.leased_operation }), r]))
      return requests.map((r) => byLink.get(keyOfLink(r)))
    },
    { maxBatch: 64, maxInFlight: 2, keyOf: keyOfLink },
  ),
)

async function takeLease(deps: SyncDeps, attempt: Attempt): Promise<LeasedStep> {
  const { job, runId } = attempt
  const key = [job.orderId, job.connectionId, job.operation]
  const taken = await takeLeases(deps.db)({ orderId: job.orderId, connectionId: job.connectionId, operation: job.operation, runId })
  if (!taken) throw new SyncFailure('conflict', 'another step for this order and target is running', { connectorId: job.connectionId })
  // The lease is ours now, so a second read sees the order and its link as one writer left them.
  const row = taken.unchanged
    ? taken
    : (await deps.db.query<LeaseRow>(`select ${linkColumns}, o.*, ${uncertainAttempts} from links l left join lateral (${selectOrder('$1')}) o on true where ${linkKey}`, key))[0]!
  const connection = deps.connections.get(job.connectionId)
  if (!row.id) throw await fail(deps, attempt, new SyncFailure('not_found', `order ${job.orderId} does not exist`))
  if (!connection) throw await fail(deps, attempt, new SyncFailure('config', `connection ${job.connectionId} is not configured`))
  const order = orderFromRow(row)
  return {
    ...attempt,
    order,
    connection,
    link: {
      externalId: row.link_external_id,
      lastSyncedVersion: row.last_synced_version ?? 0,
      targetVersion: row.target_version ?? order.sourceVersion,
      overrideDocument: row.override_document,
      overrideVersion: row.override_version,
    },
    mayHaveWritten: row.uncertain > 0,
  }
}

async function renewLease(deps: SyncDeps, { job, runId }: Attempt): Promise<void> {
  await deps.db.query(
    'update links set lease_until = now() + make_interval(secs => $5) where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $4',
    [job.orderId, job.connectionId, job.operation, runId, leaseMs / 1000],
  )
}

/** The context a connector operation gets; its idempotency key names order, target, operation and version. */
export function operationContext(deps: SyncDeps, step: LeasedStep, operation: string): OperationContext {
  return {
    connectionId: step.connection.id,
    settings: step.connection.settings,
    secrets: step.connection.secrets,
    log: deps.log,
    idempotencyKey: `${step.order.id}-${step.connection.id}-${operation}-v${step.link.targetVersion}`,
    reference: step.order.id,
    mayHaveWritten: step.mayHaveWritten,
  }
}

/**
 * One remote call, recorded as a sync attempt before it is made (a crash during the call leaves an
 * attempt with no answer: the outcome is unknown). A failure is classified by the connector and
 * recorded on the link.
 */
export async function callRemote<T>(deps: SyncDeps, step: LeasedStep, ctx: OperationContext, call: () => Promise<T>): Promise<Called<T>> {
  const { job } = step
  const attemptId = await recordAttempts(deps.db)({ ...job, sourceVersion: step.link.targetVersion, idempotencyKey: ctx.idempotencyKey })
  const started = Date.now()
  try {
    return { value: await call(), attemptId, durationMs: Date.now() - started }
  } catch (err) {
    const failure = isSyncFailure(err) ? err : step.connection.connector.classify(err, ctx)
    deps.log.warn({ orderId: step.order.id, connectorId: step.connection.id, operation: job.operation, kind: failure.kind, err }, 'sync step failed')
    await deps.db.query(`update sync_attempts set outcome = 'failed', finished_at = now(), duration_ms = $2, failure_kind = $3, error_message = $4 where id = $1`, [
      attemptId,
      Date.now() - started,
      failure.kind,
      failure.message,
    ])
    throw await fail(deps, step, failure)
  }
}

type AttemptInput = LinkKey & { sourceVersion: number; idempotencyKey: string }

/** The attempts of steps calling out together are recorded in one statement; each resolves to its id. */
const recordAttempts = batcherPer((db: Database) =>
  createBatcher(
    async (attempts: AttemptInput[]): Promise<number[]> => {
      const rows = await db.query<{ id: number; order_id: string; connection_id: string; operation: string }>(
        `insert into sync_attempts (order_id, connection_id, operation, source_version, idempotency_key)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[])
         returning id, order_id, connection_id, operation`,
        [attempts.map((a) => a.orderId), attempts.map((a) => a.connectionId), attempts.map((a) => a.operation), attempts.map((a) => a.sourceVersion), attempts.map((a) => a.idempotencyKey)],
      )
      const byLink = new Map(rows.map((r) => [keyOfLink({ orderId: r.order_id, connectionId: r.connection_id, operation: r.operation }), r.id]))
      return attempts.map((a) => byLink.get(keyOfLink(a))!)
    },
    // A link's calls are made one after another under its lease; the key keeps the answers apart.
    { maxBatch: 64, maxInFlight: 2, keyOf: keyOfLink },
  ),
)

/**
 * The step's settling transaction, shared with the other steps finishing at the same time
 * (settle-group.ts): `settle` gets the order under its row lock, taken before the link's as every
 * writer takes them, and a unit of work whose history is written in the same transaction and
 * whose jobs are enqueued once it has committed.
 */
export async function settleStep(deps: SyncDeps, step: LeasedStep, settle: Settle): Promise<void> {
  const work = await settleTogether(deps.db, step.order.id, settle)
  await deps.lifecycle.dispatch(work, step.job.correlationId)
}

/**
 * How the step leaves its link: the calls' attempts succeeded, the link records the target's id and
 * the version reached (and goes back to pending when a newer one was asked for meanwhile).
 * `held`: the target answered but the version is not reached yet (stock short); the step runs
 * again when it is asked for again. Call it in `settleStep`'s callback with the `links` it gets:
 * the group writes them together (link-settles.ts).
 */
export function settleLink(links: LinkSettle[], step: LeasedStep, calls: readonly Called<unknown>[], outcome: { externalId: string | null; done: LinkSettle['done'] }): void {
  const { job } = step
  links.push({
    orderId: job.orderId,
    connectionId: job.connectionId,
    operation: job.operation,
    externalId: outcome.externalId,
    targetVersion: step.link.targetVersion,
    done: outcome.done,
    attempts: calls.map((c) => ({ id: c.attemptId, durationMs: c.durationMs })),
  })
}

/**
 * Gives the lease back without calling the remote (a skip). `caughtUp`: the target already holds the
 * version asked for, so a link that a repeated request reopened is synced again instead of being
 * left pending for the sweeper to run again and again.
 */
export async function release(deps: SyncDeps, { job, runId }: Attempt, options: { caughtUp?: boolean } = {}): Promise<void> {
  await deps.db.query(
    `update links set lease_owner = null, lease_until = null,
       status = case when $5 and status = 'pending' and last_synced_version >= coalesce(target_version, 0) then 'synced' else status end
     where order_id = $1 and connection_id = $2 and operation = $3 and lease_owner = $4`,
    [job.orderId, job.connectionId, job.operation, runId, options.caughtUp === true],
  )
}

/**
 * Records the failure on the link, releases the lease and hands the failure back to be thrown.
 * A failure the worker will wait out (a conflict, a Retry-After) is not a dead letter even on the
 * last try: waiting does not use an attempt.
 */
export async function fail(deps: SyncDeps, { job, runId, lastTry }: Attempt, failure: SyncFailure): Promise<SyncFailure> {
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
