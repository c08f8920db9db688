/**
 * What a person does about a failure: replay it (one, or all that match a filter), optionally with
 * an edited outbound document, or resolve it (dismiss it with a reason). Every change is audited.
 * An event is replayed by mapping-versions.ts's replayEvent, the one way events are replayed.
 * Calls no connector: a replayed link goes back to the sync queue, and the step does the work.
 */
import { recordAudit } from '../admin/audit-log.ts'
import type { Queryable } from '../db/database.ts'
import { applyMapping } from '../mapping/mapping-catalog.ts'
import { describeMappingError } from '../mapping/compile-mapping.ts'
import { MappingRefusal, replayEvent, type MappingServiceDeps } from '../mapping/mapping-versions.ts'
import { ensureJob, syncJobId } from '../queue/queues.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { countFailures, decodeCursor, listFailures, linkFailureId, openLinkStatuses, parseFailureId, type FailureCursor, type FailureFilter, type FailureRef } from './failures.repository.ts'

export type FailureDeps = MappingServiceDeps

type LinkRef = Extract<FailureRef, { type: 'link' }>

export interface ReplayInput {
  /** An edited outbound document, sent instead of the mapping output for this one replay (links only). */
  document?: Record<string, unknown>
  reason?: string
  /** Events only: the mapping version to map with (default: the active one). */
  mappingVersion?: 'original' | 'active' | number
  actor: string
  /** Part of a bulk replay (recorded on the replay row). */
  bulk?: boolean
}

export interface ReplayResult {
  id: string
  status: 'pending'
  /** False when the job could not be queued now; the sweeper queues it from the database. */
  enqueued: boolean
}

const notFound = (id: string) => new MappingRefusal('not_found', `no open failure ${id}`)

export async function replayFailure(deps: FailureDeps, id: string, input: ReplayInput): Promise<ReplayResult> {
  const ref = parseFailureId(id)
  if (!ref) throw notFound(id)
  if (ref.type === 'event') {
    if (input.document) throw new MappingRefusal('validation_failed', 'an event is replayed through its mapping', [{ path: 'document', message: 'only a sync link can be replayed with an edited document; an event can be replayed with a mappingVersion' }])
    const replayed = await replayEvent(deps, { eventId: ref.inboxId, mappingVersion: input.mappingVersion ?? 'active', actor: input.actor })
    const [event] = await deps.db.query<{ connection_id: string }>('select connection_id from inbox_events where id = $1', [ref.inboxId])
    await recordReplays(deps.db, [{ kind: 'event', subject: id, connectionId: event?.connection_id ?? '', edited: false }], input, input.bulk ?? false)
    return { id, status: 'pending', enqueued: replayed.enqueued }
  }
  if (input.mappingVersion !== undefined) {
    throw new MappingRefusal('validation_failed', 'a sync link is replayed with the active outbound mapping', [{ path: 'mappingVersion', message: 'only an event can be replayed with a chosen mapping version' }])
  }
  return replayLink(deps, ref, id, input)
}

interface LinkState {
  status: string
  last_error: unknown
  source_version: number
  state: string
  document: Record<string, unknown>
}

async function replayLink(deps: FailureDeps, ref: LinkRef, id: string, input: ReplayInput): Promise<ReplayResult> {
  const key = [ref.orderId, ref.connectionId, ref.operation]
  const [link] = await deps.db.query<LinkState>(
    `select l.status, l.last_error, o.source_version, o.state, o.document from links l join orders o on o.id = l.order_id
     where l.order_id = $1 and l.connection_id = $2 and l.operation = $3`,
    key,
  )
  if (!link) throw notFound(id)
  if (!isOpen(link.status)) throw new MappingRefusal('not_replayable', `${id} is ${link.status}; only a dead or needs-attention item can be replayed`)
  // What the mapping makes of the order now, kept in the audit log beside the edited document.
  const mappedBefore = input.document ? await checkEditedDocument(deps, ref, link, input.document) : undefined

  const sourceVersion = await deps.db.transaction(async (tx) => {
    const [row] = await tx.query<{ source_version: number }>(
      `update links l set status = 'pending', last_error = null, override_document = $4, override_version = $5, updated_at = now()
       from orders o where o.id = l.order_id and l.order_id = $1 and l.connection_id = $2 and l.operation = $3 and l.status = any($6::text[])
       returning o.source_version`,
      [...key, input.document ? JSON.stringify(input.document) : null, input.document ? link.source_version : null, [...openLinkStatuses]],
    )
    if (!row) throw new MappingRefusal('not_replayable', `${id} changed while it was being replayed; look at it again`)
    await recordAudit(tx, {
      actor: input.actor,
      action: 'link.replayed',
      subject: id,
      before: { status: link.status, lastError: link.last_error, ...(mappedBefore !== undefined ? { document: mappedBefore } : {}) },
      after: { status: 'pending', sourceVersion: row.source_version, reason: input.reason ?? null, ...(input.document ? { document: input.document } : {}) },
    })
    await recordReplays(tx, [{ kind: 'link', subject: id, connectionId: ref.connectionId, edited: input.document !== undefined }], input, false)
    return row.source_version
  })
  const enqueued = await enqueueSync(deps, { ...ref, sourceVersion })
  return { id, status: 'pending', enqueued }
}

/** Refuses a document the target's operation would refuse anyway; answers the mapping output it replaces. */
async function checkEditedDocument(deps: FailureDeps, ref: LinkRef, link: LinkState, document: Record<string, unknown>): Promise<unknown> {
  const refuse = (message: string, path = 'document') => new MappingRefusal('validation_failed', 'the edited document cannot be used', [{ path, message }])
  if (link.state === 'cancelled') throw refuse('the order is cancelled: its sync cancels the sales order and sends no document')
  const connection = deps.connections.get(ref.connectionId)
  const capability = connection?.connector.salesOrders
  const mappingId = connection?.mappings.salesOrder
  if (!capability || !mappingId) throw refuse(`connection ${ref.connectionId} does not take sales order documents`)
  const parsed = capability.upsert.inputSchema.safeParse(document)
  if (!parsed.success) throw new MappingRefusal('validation_failed', 'the edited document cannot be used', issuesOf(parsed.error, ['document']))
  const mapping = await deps.catalog.active(mappingId)
  const mapped = await applyMapping(deps.catalog, mapping, { ...link.document, id: ref.orderId })
  return mapped.ok ? mapped.value : { mappingErrors: mapped.errors.map(describeMappingError) }
}

export interface ResolveResult {
  id: string
  status: 'resolved' | 'dismissed'
}

/** Dismisses an open item with a reason: a link becomes `resolved`, an event `dismissed`. */
export async function resolveFailure(deps: FailureDeps, id: string, input: { reason: string; actor: string }): Promise<ResolveResult> {
  const ref = parseFailureId(id)
  if (!ref) throw notFound(id)
  return deps.db.transaction(async (tx) => {
    if (ref.type === 'event') {
      const [event] = await tx.query<{ status: string; errors: unknown }>('select status, errors from inbox_events where id = $1 for update', [ref.inboxId])
      if (!event || event.status !== 'needs_attention') throw notFound(id)
      await tx.query(`update inbox_events set status = 'dismissed' where id = $1`, [ref.inboxId])
      await recordAudit(tx, { actor: input.actor, action: 'event.dismissed', subject: id, before: { status: event.status, errors: event.errors }, after: { status: 'dismissed', reason: input.reason } })
      return { id, status: 'dismissed' as const }
    }
    const key = [ref.orderId, ref.connectionId, ref.operation]
    const [link] = await tx.query<{ status: string; last_error: unknown }>(
      'select status, last_error from links where order_id = $1 and connection_id = $2 and operation = $3 for update',
      key,
    )
    if (!link || !isOpen(link.status)) throw notFound(id)
    // The error stays on the link: it says what was dismissed. A newer version of the order sets the link pending again.
    await tx.query(`update links set status = 'resolved', override_document = null, override_version = null, updated_at = now() where order_id = $1 and connection_id = $2 and operation = $3`, key)
    await recordAudit(tx, { actor: input.actor, action: 'link.resolved', subject: id, before: { status: link.status, lastError: link.last_error }, after: { status: 'resolved', reason: input.reason } })
    return { id, status: 'resolved' as const }
  })
}

export type BulkFilter = Pick<FailureFilter, 'connection' | 'kind' | 'since'> & { status?: 'dead' | 'needs_attention' }

const bulkPage = 100

export async function dryRunBulkReplay(deps: FailureDeps, filter: BulkFilter): Promise<{ count: number; sample: string[] }> {
  const [count, first] = await Promise.all([countFailures(deps.db, filter), listFailures(deps.db, { ...filter, limit: 10 })])
  return { count, sample: first.failures.map((f) => f.id) }
}

/**
 * Replays every open item that matches, newest first, a page at a time: the links of a page in one
 * transaction, each event through replayEvent. Only items that failed before the run started are
 * taken, so an item that fails again during the run is not replayed twice. Audited once.
 */
export async function bulkReplay(deps: FailureDeps, filter: BulkFilter, input: { reason?: string; actor: string }): Promise<{ replayed: number }> {
  // The database's clock, the one that stamps updated_at.
  const [clock] = await deps.db.query<{ now: Date }>('select now() as now')
  const until = clock!.now
  let after: FailureCursor | undefined
  let replayed = 0
  for (;;) {
    const page = await listFailures(deps.db, { ...filter, until, after, limit: bulkPage })
    const links = page.failures.flatMap((f) => (f.type === 'link' ? [{ orderId: f.orderId!, connectionId: f.connection, operation: f.operation }] : []))
    replayed += await replayLinks(deps, links, input)
    for (const f of page.failures) {
      if (f.type !== 'event') continue
      try {
        await replayFailure(deps, f.id, { ...input, mappingVersion: 'active', bulk: true })
        replayed += 1
      } catch (err) {
        // Handled since the page was read (e.g. by someone else): nothing to replay.
        if (!(err instanceof MappingRefusal)) throw err
      }
    }
    after = page.next ? decodeCursor(page.next) : undefined
    if (!after) break
  }
  await recordAudit(deps.db, { actor: input.actor, action: 'failures.replayed', subject: 'failures', before: { filter }, after: { replayed, reason: input.reason ?? null } })
  return { replayed }
}

async function replayLinks(deps: FailureDeps, links: { orderId: string; connectionId: string; operation: string }[], input: { reason?: string; actor: string }): Promise<number> {
  if (!links.length) return 0
  const replayed = await deps.db.transaction(async (tx) => {
    // Mapping output again, so any edited document left from an earlier replay is dropped.
    const rows = await tx.query<{ order_id: string; connection_id: string; operation: string; source_version: number }>(
      `update links l set status = 'pending', last_error = null, override_document = null, override_version = null, updated_at = now()
       from unnest($1::uuid[], $2::text[], $3::text[]) as k(order_id, connection_id, operation), orders o
       where l.order_id = k.order_id and l.connection_id = k.connection_id and l.operation = k.operation and o.id = l.order_id and l.status = any($4::text[])
       returning l.order_id, l.connection_id, l.operation, o.source_version`,
      [links.map((l) => l.orderId), links.map((l) => l.connectionId), links.map((l) => l.operation), [...openLinkStatuses]],
    )
    const done = rows.map((r) => ({ orderId: r.order_id, connectionId: r.connection_id, operation: r.operation, sourceVersion: r.source_version }))
    await recordReplays(tx, done.map((l) => ({ kind: 'link' as const, subject: linkFailureId(l), connectionId: l.connectionId, edited: false })), input, true)
    return done
  })
  for (const link of replayed) await enqueueSync(deps, link)
  return replayed.length
}

async function recordReplays(tx: Queryable, items: { kind: 'link' | 'event'; subject: string; connectionId: string; edited: boolean }[], input: { reason?: string; actor: string }, bulk: boolean): Promise<void> {
  if (!items.length) return
  await tx.query(
    `insert into replays (kind, subject, connection_id, actor, reason, edited, bulk)
     select k.kind, k.subject, k.connection_id, $5, $6, k.edited, $7 from unnest($1::text[], $2::text[], $3::text[], $4::bool[]) as k(kind, subject, connection_id, edited)`,
    [items.map((i) => i.kind), items.map((i) => i.subject), items.map((i) => i.connectionId), items.map((i) => i.edited), input.actor, input.reason ?? null, bulk],
  )
}

/** After commit; if Redis is away, the link is pending in the database and the sweeper queues it. */
async function enqueueSync(deps: FailureDeps, link: { orderId: string; connectionId: string; operation: string; sourceVersion: number }): Promise<boolean> {
  try {
    await ensureJob(deps.queues.sync(link.connectionId), link.operation, { ...link, correlationId: `replay-${link.orderId}` }, syncJobId(link))
    return true
  } catch {
    return false
  }
}

const isOpen = (status: string) => (openLinkStatuses as readonly string[]).includes(status)
