/**
 * Turns one committed inbox event into the canonical order: map, validate, then apply it under
 * the order's row lock in version order. Returns the sync steps to enqueue once committed.
 * Calls no connector; a document that cannot be mapped waits in "needs attention", never retried blindly.
 */
import { randomUUID } from 'node:crypto'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Database, Queryable } from '../db/database.ts'
import { applyMapping, type MappingCatalog } from '../mapping/mapping-catalog.ts'
import { describeMappingError } from '../mapping/compile-mapping.ts'
import type { SyncJob } from '../queue/queues.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { appendChanges, type ChangeInput } from '../status/change-feed.ts'
import { lockOrderBySource, recordHistory, type OrderEventInput } from './order.repository.ts'
import { mappedOrderSchema, withTotals, type CanonicalOrder } from './order.schemas.ts'
import { canTransition, type OrderState } from './order-state.ts'

export const normalizeStepId = 'normalize'
export const salesOrderOperation = 'salesOrders.upsert'

export interface NormalizeDeps {
  db: Database
  connections: ConnectionRegistry
  mappings: MappingCatalog
}

export type NormalizeOutcome =
  | { result: 'applied'; orderId: string; syncJobs: Omit<SyncJob, 'correlationId'>[] }
  | { result: 'stale'; orderId: string }
  | { result: 'needs_attention'; errors: string[] }
  | { result: 'already_done' }

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
}

const inboxColumns = 'id, connection_id, event_type, external_id, source_version, document, status, mapping_version'

/** Normalizes the events of one ingest commit, in order; their rows are read in one query. */
export async function normalizeInboxEvents(deps: NormalizeDeps, inboxIds: readonly number[]): Promise<NormalizeOutcome[]> {
  const rows = await deps.db.query<InboxRow>(`select ${inboxColumns} from inbox_events where id = any($1::bigint[])`, [inboxIds])
  const byId = new Map(rows.map((r) => [r.id, r]))
  const outcomes: NormalizeOutcome[] = []
  for (const id of inboxIds) outcomes.push(await normalizeEvent(deps, byId.get(id)))
  return outcomes
}

export async function normalizeInboxEvent(deps: NormalizeDeps, inboxId: number): Promise<NormalizeOutcome> {
  const [outcome] = await normalizeInboxEvents(deps, [inboxId])
  return outcome!
}

async function normalizeEvent(deps: NormalizeDeps, event: InboxRow | undefined): Promise<NormalizeOutcome> {
  if (!event || event.status !== 'pending') return { result: 'already_done' }
  const inboxId = event.id
  const mapped = await mapDocument(deps, event)
  if (!mapped.ok) {
    await deps.db.transaction(async (tx) => {
      await tx.query(`update inbox_events set status = 'needs_attention', processed_at = now(), errors = $2, mapping_version = $3, first_mapping_version = coalesce(first_mapping_version, $3) where id = $1 and status = 'pending'`, [
        inboxId,
        JSON.stringify(mapped.errors),
        mapped.mappingVersion ?? null,
      ])
      await appendChanges(tx, [{ type: 'event.needs_attention', connectionId: event.connection_id, data: { eventId: String(inboxId), externalId: event.external_id, errors: mapped.errors } }])
    })
    return { result: 'needs_attention', errors: mapped.errors }
  }
  try {
    return await deps.db.transaction((tx) => applyEvent(tx, deps, { ...event, mapping_version: mapped.mappingVersion }, mapped.order))
  } catch (err) {
    if (err instanceof AlreadyApplied) return { result: 'already_done' }
    throw err
  }
}

/** Another run of the same job applied the event first; thrown to roll this run back. */
class AlreadyApplied extends Error {}

/**
 * Marks the event done as the last write of its transaction. The event was read before the
 * transaction began, so a job that ran twice (a worker thought dead) finds it no longer pending
 * here, after waiting on the row, and rolls back instead of applying it a second time.
 */
async function settleInbox(tx: Queryable, event: InboxRow, status: 'processed' | 'stale', orderId: string, errors: string[] | null): Promise<void> {
  const [settled] = await tx.query(
    `update inbox_events set status = $2, processed_at = now(), order_id = $3, errors = $4, mapping_version = $5, first_mapping_version = coalesce(first_mapping_version, $5)
     where id = $1 and status = 'pending' returning id`,
    [event.id, status, orderId, errors && JSON.stringify(errors), event.mapping_version],
  )
  if (!settled) throw new AlreadyApplied()
}

type Mapped = { ok: true; order: CanonicalOrder; mappingVersion: number } | { ok: false; errors: string[]; mappingVersion?: number }

async function mapDocument(deps: NormalizeDeps, event: InboxRow): Promise<Mapped> {
  const connection = deps.connections.get(event.connection_id)
  const mappingId = connection?.mappings.inbound
  if (!mappingId) return { ok: false, errors: [`connection "${event.connection_id}" has no inbound mapping`] }
  const mapping = event.mapping_version ? await deps.mappings.version(mappingId, event.mapping_version) : await deps.mappings.active(mappingId)
  const result = await applyMapping(deps.mappings, mapping, event.document)
  if (!result.ok) return { ok: false, errors: result.errors.map(describeMappingError), mappingVersion: mapping.version }
  const order = mappedOrderSchema.safeParse(result.value)
  if (!order.success) {
    return { ok: false, errors: issuesOf(order.error).map((i) => `${i.path}: ${i.message} (mapping ${mappingId} v${mapping.version})`), mappingVersion: mapping.version }
  }
  return { ok: true, order: withTotals(order.data), mappingVersion: mapping.version }
}

async function applyEvent(tx: Queryable, deps: NormalizeDeps, event: InboxRow, order: CanonicalOrder): Promise<NormalizeOutcome> {
  const cause = `${event.connection_id} event ${event.id} (${event.event_type}, version ${event.source_version})`
  const events: OrderEventInput[] = []
  const changes: ChangeInput[] = []
  const erp = deps.connections.pipeline.erp
  const cancelled = event.event_type === 'order.cancelled'
  const initialState: OrderState = cancelled ? 'cancelled' : 'approved'

  // Inserting first makes a concurrent first event for the same order wait on this row, not race it.
  // A new order is inserted in the state its first event leads to.
  const [inserted] = await tx.query<{ id: string }>(
    `insert into orders (id, source_connection, external_id, state, source_version, document, currency, total)
     values ($1, $2, $3, $8, $4, $5, $6, $7)
     on conflict (source_connection, external_id) do nothing returning id`,
    [randomUUID(), event.connection_id, event.external_id, event.source_version, JSON.stringify(order), order.currency, order.total, initialState],
  )
  let orderId: string
  let state: OrderState
  if (inserted) {
    orderId = inserted.id
    state = initialState
    events.push({ orderId, kind: 'received', to: 'received', cause })
    changes.push({ type: 'order.created', orderId, connectionId: event.connection_id, data: { externalId: event.external_id, total: order.total, currency: order.currency } })
    // Approval rules come with the approval stage; until then every order is approved by policy.
    events.push({ orderId, kind: 'transition', from: 'received', to: state, cause: cancelled ? cause : 'policy: no approval rules configured' })
    changes.push({ type: 'order.state_changed', orderId, data: { from: 'received', to: state } })
  } else {
    const existing = await lockOrderBySource(tx, event.connection_id, event.external_id)
    if (!existing) throw new Error(`order ${event.external_id} vanished under its lock`)
    orderId = existing.id
    state = existing.state
    if (event.source_version <= existing.sourceVersion) {
      const reason = event.source_version === existing.sourceVersion ? 'repeated version' : `older than version ${existing.sourceVersion}`
      await settleInbox(tx, event, 'stale', orderId, [reason])
      await recordHistory(tx, [{ orderId, kind: 'stale_skipped', cause, detail: { reason, sourceVersion: event.source_version } }], [])
      return { result: 'stale', orderId }
    }
    events.push({ orderId, kind: 'updated', cause, detail: { sourceVersion: event.source_version } })
    changes.push({ type: 'order.updated', orderId, connectionId: event.connection_id, data: { sourceVersion: event.source_version, total: order.total } })
    if (cancelled && canTransition(state, 'cancelled')) {
      events.push({ orderId, kind: 'transition', from: state, to: 'cancelled', cause })
      changes.push({ type: 'order.state_changed', orderId, data: { from: state, to: 'cancelled' } })
      state = 'cancelled'
    } else if (cancelled) {
      events.push({ orderId, kind: 'refused', cause, detail: { reason: `an order in state ${state} cannot be cancelled` } })
    }
    await tx.query('update orders set document = $2, source_version = $3, currency = $4, total = $5, state = $6, revision = revision + 1, updated_at = now() where id = $1', [
      orderId,
      JSON.stringify(order),
      event.source_version,
      order.currency,
      order.total,
      state,
    ])
  }

  // The sync step makes the ERP match this version: it creates, updates, or cancels. An order
  // cancelled before it was ever sent needs no step.
  const syncJobs: Omit<SyncJob, 'correlationId'>[] = []
  const linked = await tx.query(
    state === 'cancelled'
      ? `update links set status = 'pending', updated_at = now() where order_id = $1 and connection_id = $2 and operation = $3 returning order_id`
      : `insert into links (order_id, connection_id, operation, status) values ($1, $2, $3, 'pending')
         on conflict (order_id, connection_id, operation) do update set status = 'pending', updated_at = now() returning order_id`,
    [orderId, erp.id, salesOrderOperation],
  )
  if (linked.length) syncJobs.push({ orderId, connectionId: erp.id, operation: salesOrderOperation, sourceVersion: event.source_version })
  await settleInbox(tx, event, 'processed', orderId, null)
  await recordHistory(tx, events, changes)
  return { result: 'applied', orderId, syncJobs }
}
