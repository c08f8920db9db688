/**
 * Turns committed inbox events into canonical orders: map, validate, then apply each under its
 * order's row lock in version order. Returns the sync steps to enqueue once committed. The only
 * connector call is a source's enrichment, made before any transaction opens; a document that
 * cannot be mapped waits in "needs attention", never retried blindly.
 */
import { randomUUID } from 'node:crypto'
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Database, Queryable } from '../db/database.ts'
import { applyMapping, type MappingCatalog } from '../mapping/mapping-catalog.ts'
import { describeMappingError } from '../mapping/compile-mapping.ts'
import { batcherPer, createBatcher } from '../shared/batcher.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { appendChanges } from '../status/change-feed.ts'
import { findOrderBySource, lockOrderBySource, recordHistory } from './order.repository.ts'
import { mappedOrderSchema, withTotals, type CanonicalOrder } from './order.schemas.ts'
import { canTransition, type OrderState } from './order-state.ts'
import { mergeDispatch, newUnitOfWork, type Entered, type Lifecycle, type OrderRef, type UnitOfWork } from './lifecycle.ts'
import { applyFulfilmentEvent } from './fulfilment.job.ts'
import { addApprovals, requestApprovals } from '../approvals/approval-decisions.ts'
import { fulfilmentEventTypes, type FulfilmentEventType, type Logger } from '../connector-kit/index.ts'
import type { NotificationSettings } from '../notifications/notification.schemas.ts'

export const normalizeStepId = 'normalize'
export const salesOrderOperation = 'salesOrders.upsert'

export interface NormalizeDeps {
  db: Database
  connections: ConnectionRegistry
  mappings: MappingCatalog
  lifecycle: Lifecycle
  notifications: Pick<NotificationSettings, 'rules'>
  log: Logger
}

export type NormalizeOutcome =
  | { result: 'applied'; orderId: string | null }
  | { result: 'refused'; orderId: string | null; reason: string }
  | { result: 'stale'; orderId: string }
  | { result: 'needs_attention'; errors: string[] }
  | { result: 'already_done' }

export interface NormalizeResult {
  /** One per inbox id, in the order asked, up to the one that failed. */
  outcomes: NormalizeOutcome[]
  /** The steps and reminders to enqueue, all of them committed. */
  work: UnitOfWork
  /** What stopped the job before its last event; the caller enqueues `work`, then retries the job. */
  failure?: unknown
}

interface InboxRow {
  id: number
  connection_id: string
  event_type: string
  external_id: string
  source_version: number
  document: Record<string, unknown>
  status: string
  /** Set before processing only when a replay asked for a particular version. */
  mapping_version: number | null
  /** Seconds since the event was received, by the database's clock. */
  age_seconds: number
}

const inboxColumns = 'id, connection_id, event_type, external_id, source_version, document, status, mapping_version, extract(epoch from now() - received_at)::float8 as age_seconds'

/**
 * How long an event that names an order nobody knows yet waits for it (its job retries, backing
 * off) before it needs attention: a CRM's approval or a WMS event can overtake the order's own
 * event, which other jobs normalize at the same moment.
 */
const unknownOrderGraceSeconds = 60

/** Thrown to retry the job: the event's order may still be on its way. */
export class OrderNotYetKnown extends Error {}

/** An order event with its canonical document, waiting to be applied with the others of its run. */
interface ReadyEvent {
  index: number
  event: InboxRow
  document: CanonicalOrder
}

/**
 * Normalizes the events of one ingest commit, in order; their rows are read in one query. Events
 * whose documents map are applied together as a run, in one transaction with one history write
 * (shared with the runs of other jobs normalized at the same moment), which costs the database a
 * commit and two statements per group instead of per event. If that transaction fails (one event's
 * error, or another run of this job got to an event first), each event is applied again on its
 * own, so one bad event never holds back the events before it.
 */
export async function normalizeInboxEvents(deps: NormalizeDeps, inboxIds: readonly number[]): Promise<NormalizeResult> {
  const rows = await deps.db.query<InboxRow>(`select ${inboxColumns} from inbox_events where id = any($1::bigint[])`, [inboxIds])
  const byId = new Map(rows.map((r) => [r.id, r]))
  const result: NormalizeResult = { outcomes: [], work: newUnitOfWork() }
  let run: ReadyEvent[] = []
  // Whatever is not applied with the run touches orders the run may hold: the run commits first.
  const flush = async () => {
    if (run.length) await applyRun(deps, run, result)
    run = []
  }
  try {
    for (const [index, id] of inboxIds.entries()) {
      const event = byId.get(id)
      if (!event || event.status !== 'pending') {
        result.outcomes[index] = { result: 'already_done' }
        continue
      }
      if (isFulfilmentEvent(event.event_type)) {
        await flush()
        result.outcomes[index] = await applyFulfilment(deps, { ...event, event_type: event.event_type }, result.work)
        continue
      }
      const mapped = await mapDocument(deps, event)
      if (mapped.ok) {
        run.push({ index, event: { ...event, mapping_version: mapped.mappingVersion }, document: mapped.order })
        continue
      }
      await flush()
      // A cancellation needs no document of its own: a source that sends (or still has) less than
      // a whole order when cancelling cancels the order as we hold it.
      const held = event.event_type === 'order.cancelled' ? await findOrderBySource(deps.db, event.connection_id, event.external_id) : undefined
      result.outcomes[index] = held
        ? await applyAlone(deps, { index, event: { ...event, mapping_version: mapped.mappingVersion ?? null }, document: held.document }, result.work)
        : await needsAttention(deps, event, mapped.errors, mapped.mappingVersion)
    }
    await flush()
  } catch (err) {
    result.failure = err
  }
  return result
}

async function applyRun(deps: NormalizeDeps, run: readonly ReadyEvent[], into: NormalizeResult): Promise<void> {
  let applied: { outcomes: NormalizeOutcome[]; work: UnitOfWork }
  try {
    applied = await runsTogether(deps.db)({ deps, run })
  } catch {
    for (const ready of run) into.outcomes[ready.index] = await applyAlone(deps, ready, into.work)
    return
  }
  for (const [i, { index }] of run.entries()) into.outcomes[index] = applied.outcomes[i]!
  mergeDispatch(into.work, applied.work)
}

interface Run {
  deps: NormalizeDeps
  run: readonly ReadyEvent[]
}

/**
 * The runs of ingest jobs normalized at the same time share one transaction (src/shared/batcher.ts):
 * under load the jobs of one worker queue for the database together, and one begin, history
 * statement and commit then serve them all. A failed group is applied run by run, and a failed run
 * event by event (applyRun), so an error stays with its event.
 */
const runsTogether = batcherPer((db: Database) =>
  createBatcher(
    (runs: Run[]): Promise<{ outcomes: NormalizeOutcome[]; work: UnitOfWork }[]> =>
      db.transaction(async (tx) => {
        const applied = []
        const settles: InboxSettle[] = []
        for (const { deps, run } of runs) {
          const work = newUnitOfWork()
          const outcomes: NormalizeOutcome[] = []
          for (const { event, document } of run) outcomes.push(await applyEvent(tx, deps, event, document, work, settles))
          applied.push({ outcomes, work })
        }
        await settleInbox(tx, settles)
        await recordHistory(
          tx,
          applied.flatMap((a) => a.work.events),
          applied.flatMap((a) => a.work.changes),
        )
        return applied
      }),
    { maxBatch: 32, maxInFlight: 2 },
  ),
)

async function applyAlone(deps: NormalizeDeps, { event, document }: ReadyEvent, into: UnitOfWork): Promise<NormalizeOutcome> {
  const work = newUnitOfWork()
  try {
    const outcome = await deps.db.transaction(async (tx) => {
      const settles: InboxSettle[] = []
      const applied = await applyEvent(tx, deps, event, document, work, settles)
      await settleInbox(tx, settles)
      await deps.lifecycle.finish(tx, work)
      return applied
    })
    mergeDispatch(into, work)
    return outcome
  } catch (err) {
    if (err instanceof AlreadyApplied) return { result: 'already_done' }
    throw err
  }
}

const isFulfilmentEvent = (type: string): type is FulfilmentEventType => (fulfilmentEventTypes as readonly string[]).includes(type)

async function needsAttention(deps: NormalizeDeps, event: InboxRow, errors: string[], mappingVersion?: number): Promise<NormalizeOutcome> {
  await deps.db.transaction(async (tx) => {
    await tx.query(`update inbox_events set status = 'needs_attention', processed_at = now(), errors = $2, mapping_version = $3, first_mapping_version = coalesce(first_mapping_version, $3) where id = $1 and status = 'pending'`, [
      event.id,
      JSON.stringify(errors),
      mappingVersion ?? null,
    ])
    await appendChanges(tx, [{ type: 'event.needs_attention', connectionId: event.connection_id, data: { eventId: String(event.id), externalId: event.external_id, errors } }])
  })
  return { result: 'needs_attention', errors }
}

async function applyFulfilment(deps: NormalizeDeps, event: InboxRow & { event_type: FulfilmentEventType }, into: UnitOfWork): Promise<NormalizeOutcome> {
  const work = newUnitOfWork()
  let outcome
  try {
    outcome = await deps.db.transaction(async (tx) => {
      const applied = await applyFulfilmentEvent(tx, { lifecycle: deps.lifecycle, connection: deps.connections.get(event.connection_id), notifications: deps.notifications }, work, event)
      if (!applied.applied && applied.needsAttention) return applied
      await settleInbox(tx, [{ event, status: 'processed', orderId: applied.orderId, errors: applied.applied ? null : [applied.reason] }])
      await deps.lifecycle.finish(tx, work)
      return applied
    })
  } catch (err) {
    if (err instanceof AlreadyApplied) return { result: 'already_done' }
    throw err
  }
  if (!outcome.applied && outcome.unknownOrder && event.age_seconds < unknownOrderGraceSeconds) {
    throw new OrderNotYetKnown(`${outcome.reason} yet; event ${event.id} waits for it`)
  }
  if (!outcome.applied && outcome.needsAttention) return needsAttention(deps, event, [outcome.reason])
  mergeDispatch(into, work)
  return outcome.applied ? { result: 'applied', orderId: outcome.orderId } : { result: 'refused', orderId: outcome.orderId, reason: outcome.reason }
}

/** Another run of the same job applied the event first; thrown to roll this run back. */
class AlreadyApplied extends Error {}

/** How an applied event is marked in the inbox. */
interface InboxSettle {
  event: InboxRow
  status: 'processed' | 'stale'
  orderId: string | null
  errors: string[] | null
}

/**
 * Marks the transaction's events done, in one statement, as its last write but the history. The
 * events were read before the transaction began, so a job that ran twice (a worker thought dead)
 * finds one no longer pending here, after waiting on its row, and rolls back instead of applying
 * it a second time.
 */
async function settleInbox(tx: Queryable, settles: readonly InboxSettle[]): Promise<void> {
  if (!settles.length) return
  const settled = await tx.query(
    `update inbox_events i set status = s.status, processed_at = now(), order_id = s.order_id, errors = s.errors,
       mapping_version = s.mapping_version, first_mapping_version = coalesce(i.first_mapping_version, s.mapping_version)
     from json_to_recordset($1::json) as s(id int8, status text, order_id uuid, errors jsonb, mapping_version int)
     where i.id = s.id and i.id = any($2::bigint[]) and i.status = 'pending'
     returning i.id`,
    [
      JSON.stringify(settles.map(({ event, status, orderId, errors }) => ({ id: event.id, status, order_id: orderId, errors, mapping_version: event.mapping_version }))),
      settles.map((s) => s.event.id),
    ],
  )
  if (settled.length < settles.length) throw new AlreadyApplied()
}

type Mapped = { ok: true; order: CanonicalOrder; mappingVersion: number } | { ok: false; errors: string[]; mappingVersion?: number }

async function mapDocument(deps: NormalizeDeps, event: InboxRow): Promise<Mapped> {
  const connection = deps.connections.get(event.connection_id)
  const mappingId = connection?.mappings.inbound
  if (!mappingId) return { ok: false, errors: [`connection "${event.connection_id}" has no inbound mapping`] }
  const mapping = event.mapping_version ? await deps.mappings.version(mappingId, event.mapping_version) : await deps.mappings.active(mappingId)
  const document = connection.connector.enrichment ? await enrich(deps, connection, event) : { ok: true as const, value: event.document }
  if (!document.ok) return { ok: false, errors: document.errors, mappingVersion: mapping.version }
  const result = await applyMapping(deps.mappings, mapping, document.value)
  if (!result.ok) return { ok: false, errors: result.errors.map(describeMappingError), mappingVersion: mapping.version }
  const order = mappedOrderSchema.safeParse(result.value)
  if (!order.success) {
    return { ok: false, errors: issuesOf(order.error).map((i) => `${i.path}: ${i.message} (mapping ${mappingId} v${mapping.version})`), mappingVersion: mapping.version }
  }
  return { ok: true, order: withTotals(order.data), mappingVersion: mapping.version }
}

/**
 * Completes a partial delivery through the source's API. A failure that may pass (network, 5xx,
 * rate limit) is thrown, so the normalize job retries; a permanent one puts the event in needs-attention.
 */
async function enrich(deps: NormalizeDeps, connection: Connection, event: InboxRow): Promise<{ ok: true; value: Record<string, unknown> } | { ok: false; errors: string[] }> {
  const ctx = { connectionId: connection.id, settings: connection.settings, secrets: connection.secrets, log: deps.log }
  try {
    return { ok: true, value: await connection.connector.enrichment!.enrich(ctx, { type: event.event_type, externalId: event.external_id, document: event.document }) }
  } catch (err) {
    const failure = connection.connector.classify(err, ctx)
    if (failure.retryable) throw failure
    return { ok: false, errors: [`${connection.id} could not complete the order: ${failure.kind}: ${failure.message}`] }
  }
}

/**
 * Applies one event under the order's row lock; its history goes to `work`, and how it is marked in
 * the inbox to `settles`, which the caller writes.
 */
async function applyEvent(tx: Queryable, deps: NormalizeDeps, event: InboxRow, document: CanonicalOrder, work: UnitOfWork, settles: InboxSettle[]): Promise<NormalizeOutcome> {
  const cause = `${event.connection_id} event ${event.id} (${event.event_type}, version ${event.source_version})`
  const { lifecycle } = deps
  const cancelled = event.event_type === 'order.cancelled'

  // What a new order's approval would be is known before it is written, so an order the rules
  // approve at once is inserted approved: one write of its row, not an insert and an update.
  const crmApproves = deps.connections.get(event.connection_id)?.approvedBy === 'crm'
  const required = cancelled || crmApproves ? undefined : await lifecycle.approvalsFor(tx, document, await activeRulesVersion(tx))
  const approvedAtOnce = required !== undefined && !required.levels.length
  // Inserting first makes a concurrent first event for the same order wait on this row, not race it.
  const [inserted] = await tx.query<Entered & { id: string }>(
    `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total)
     values ($1, $2, $3, $8, $4, $5, $6, $7)
     on conflict (source_connection, external_id) do nothing
     returning id, revision, state_entered_at as at`,
    [randomUUID(), event.connection_id, event.external_id, event.source_version, JSON.stringify(document), document.currency, document.total, approvedAtOnce ? 'approved' : 'received'],
  )
  let refusal: string | undefined
  let order: OrderRef
  if (inserted) {
    order = { id: inserted.id, state: 'received', sourceConnection: event.connection_id, sourceVersion: event.source_version, document }
    work.events.push({ orderId: order.id, kind: 'received', to: 'received', cause })
    work.changes.push({ type: 'order.created', orderId: order.id, connectionId: event.connection_id, data: { externalId: event.external_id, total: document.total, currency: document.currency } })
    if (cancelled) await lifecycle.transition(tx, work, order, 'cancelled', cause)
    else if (!required) await lifecycle.transition(tx, work, order, 'pending_approval', `${order.sourceConnection} runs approval: waiting for its decision`)
    else if (approvedAtOnce) await lifecycle.entered(tx, work, order, 'approved', inserted, `policy: ${required.reasons.join('; ')}`)
    else await requestApprovals(tx, lifecycle, work, order, required, creditCheckerOf(deps))
  } else {
    const existing = await lockOrderBySource(tx, event.connection_id, event.external_id)
    if (!existing) throw new Error(`order ${event.external_id} vanished under its lock`)
    order = existing
    if (event.source_version <= existing.sourceVersion) {
      const reason = event.source_version === existing.sourceVersion ? 'repeated version' : `older than version ${existing.sourceVersion}`
      settles.push({ event, status: 'stale', orderId: order.id, errors: [reason] })
      work.events.push({ orderId: order.id, kind: 'stale_skipped', cause, detail: { reason, sourceVersion: event.source_version } })
      return { result: 'stale', orderId: order.id }
    }
    refusal = refusalOf(order.state, cancelled)
    if (refusal) {
      // The order keeps what was shipped: a refused version is not applied, only recorded. The
      // status write-back tells the CRM why while that version is newer than the order's.
      work.events.push({ orderId: order.id, kind: 'refused', cause, detail: { reason: refusal, sourceVersion: event.source_version } })
      work.changes.push({ type: 'event.refused', orderId: order.id, connectionId: event.connection_id, data: { eventId: String(event.id), reason: refusal } })
      await lifecycle.requestStatusWriteback(tx, work, order)
    } else {
      await tx.query('update orders set document = $2, source_version = $3, currency = $4, total = $5, revision = revision + 1, updated_at = now() where id = $1', [
        order.id,
        JSON.stringify(document),
        event.source_version,
        document.currency,
        document.total,
      ])
      order = { ...existing, sourceVersion: event.source_version, document }
      work.events.push({ orderId: order.id, kind: 'updated', cause, detail: { sourceVersion: event.source_version } })
      work.changes.push({ type: 'order.updated', orderId: order.id, connectionId: event.connection_id, data: { sourceVersion: event.source_version, total: document.total } })
      if (cancelled) await lifecycle.transition(tx, work, order, 'cancelled', cause)
      // The targets follow the new version: stock first, then the ERP order.
      else if (fulfilling.includes(order.state)) await lifecycle.resumeFulfilment(tx, work, order)
      // What was approved is not what is asked now: the approvals start again under the rules.
      else if (order.state === 'pending_approval' && deps.connections.get(order.sourceConnection)?.approvedBy !== 'crm') await restartApproval(tx, deps, work, order)
    }
  }
  settles.push({ event, status: 'processed', orderId: order.id, errors: refusal ? [refusal] : null })
  return refusal ? { result: 'refused', orderId: order.id, reason: refusal } : { result: 'applied', orderId: order.id }
}

/** Why a new version cannot be applied to an order in `state`, if it cannot. */
function refusalOf(state: OrderState, cancels: boolean): string | undefined {
  if (cancels) return canTransition(state, 'cancelled') ? undefined : `an order in state ${state} cannot be cancelled`
  return unchangeable.includes(state) ? `an order in state ${state} cannot be changed any more` : undefined
}

/** States whose targets follow a new source version; before them the order has not reached the targets. */
const fulfilling: readonly OrderState[] = ['approved', 'on_hold', 'reserved', 'pending_shipment']
/** Shipped goods are not unshipped, and an order that ended (rejected, cancelled) does not start again. */
const unchangeable: readonly OrderState[] = ['shipped', 'delivered', 'completed', 'rejected', 'cancelled']

/** A changed order waiting for approval: earlier decisions were about other amounts, so they go. */
async function restartApproval(tx: Queryable, deps: NormalizeDeps, work: UnitOfWork, order: OrderRef): Promise<void> {
  const required = await deps.lifecycle.approvalsFor(tx, order.document)
  const dropped = await tx.query<{ level: string; status: string }>('delete from approvals where order_id = $1 returning level, status', [order.id])
  work.events.push({ orderId: order.id, kind: 'approvals_restarted', cause: 'the order changed while waiting for approval', detail: { dropped, required: required.levels } })
  if (!required.levels.length) {
    await deps.lifecycle.transition(tx, work, order, 'approved', `policy: ${required.reasons.join('; ')}`)
    return
  }
  await addApprovals(tx, deps.lifecycle, work, order, required, creditCheckerOf(deps))
}

/** The ERP connection, when it answers credit checks for the finance approval. */
function creditCheckerOf(deps: NormalizeDeps): Connection | undefined {
  const erp = deps.connections.pipeline.erp
  return erp.connector.credit ? erp : undefined
}

/**
 * The active approval rules' version, read once per transaction: the orders a transaction applies
 * together are approved under the same rules, for one query.
 */
const activeRulesByTransaction = new WeakMap<Queryable, Promise<number | null>>()
function activeRulesVersion(tx: Queryable): Promise<number | null> {
  let version = activeRulesByTransaction.get(tx)
  if (!version) {
    version = tx.query<{ version: number }>('select version from approval_rule_versions where active').then(([row]) => row?.version ?? null)
    activeRulesByTransaction.set(tx, version)
  }
  return version
}
