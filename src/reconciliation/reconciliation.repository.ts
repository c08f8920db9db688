/**
 * Reconciliation runs and their discrepancies as stored (migration 011), and the page of orders a
 * run compares: one statement reads a page of orders with their links and invoices, keyset-paged so
 * a run over any number of orders holds one page at a time. SQL only; no connector calls.
 */
import type { Queryable } from '../db/database.ts'
import type { OrderState } from '../orders/order-state.ts'
import type { LinkSnapshot, OrderSnapshot } from './compare.ts'
import { driftKinds, type DriftKind, type ReconciliationPolicy } from './reconciliation.schemas.ts'

export const runStatuses = ['queued', 'running', 'succeeded', 'failed'] as const
export type RunStatus = (typeof runStatuses)[number]

export const discrepancyActions = ['reported', 'repair_requested', 'repaired', 'repair_failed'] as const
export type DiscrepancyAction = (typeof discrepancyActions)[number]

export interface RunCounts {
  byKind: Partial<Record<DriftKind, number>>
  byAction: Partial<Record<DiscrepancyAction, number>>
}

/** Keyset position in the orders: after (updated_at in microseconds since the epoch, id), or an offset in `order_ids`. */
export type OrderCursor = { updatedUs: string; id: string } | { offset: number }

/** Where each part of a run goes on when it resumes; `done` parts are not repeated. */
export interface RunCursor {
  orders: OrderCursor | 'done' | null
  /** Per connection: the target's own cursor while looking for orphans. */
  orphans: Record<string, string | 'done' | null>
}

export interface RunRow {
  id: number
  status: RunStatus
  trigger: 'api' | 'schedule' | 'cli'
  requestedBy: string | null
  connections: string[]
  since: Date | null
  until: Date | null
  orderIds: string[] | null
  policy: ReconciliationPolicy
  tolerance: string
  ordersTotal: number | null
  ordersChecked: number
  ordersSkipped: number
  targetRecordsChecked: number
  discrepancies: number
  counts: RunCounts
  cursor: RunCursor | null
  error: string | null
  createdAt: Date
  startedAt: Date | null
  finishedAt: Date | null
  heartbeatAt: Date | null
}

const runColumns = `id, status, trigger, requested_by, connections, since, until, order_ids, policy, tolerance::text as tolerance, orders_total, orders_checked,
  orders_skipped, target_records_checked, discrepancies, counts, cursor, error, created_at, started_at, finished_at, heartbeat_at`

function toRun(r: Record<string, unknown>): RunRow {
  return {
    id: r.id as number,
    status: r.status as RunStatus,
    trigger: r.trigger as RunRow['trigger'],
    requestedBy: r.requested_by as string | null,
    connections: r.connections as string[],
    since: r.since as Date | null,
    until: r.until as Date | null,
    orderIds: r.order_ids as string[] | null,
    policy: r.policy as ReconciliationPolicy,
    tolerance: r.tolerance as string,
    ordersTotal: r.orders_total as number | null,
    ordersChecked: r.orders_checked as number,
    ordersSkipped: r.orders_skipped as number,
    targetRecordsChecked: r.target_records_checked as number,
    discrepancies: r.discrepancies as number,
    counts: { byKind: {}, byAction: {}, ...(r.counts as Partial<RunCounts>) },
    cursor: r.cursor as RunCursor | null,
    error: r.error as string | null,
    createdAt: r.created_at as Date,
    startedAt: r.started_at as Date | null,
    finishedAt: r.finished_at as Date | null,
    heartbeatAt: r.heartbeat_at as Date | null,
  }
}

export interface NewRun {
  trigger: RunRow['trigger']
  requestedBy?: string
  connections: readonly string[]
  since: Date | null
  /** The end of the window: orders updated later are the next run's. */
  until: Date
  orderIds?: readonly string[]
  policy: ReconciliationPolicy
  tolerance: string
}

export async function createRun(db: Queryable, run: NewRun): Promise<RunRow> {
  const [row] = await db.query(
    `insert into reconciliation_runs (trigger, requested_by, connections, since, until, order_ids, policy, tolerance, heartbeat_at)
     values ($1, $2, $3::text[], $4, $5, $6::uuid[], $7, $8, now()) returning ${runColumns}`,
    [run.trigger, run.requestedBy ?? null, run.connections, run.since, run.until, run.orderIds ?? null, JSON.stringify(run.policy), run.tolerance],
  )
  return toRun(row!)
}

/** Takes a queued run, or a running one to resume (its worker died); undefined when it is finished or unknown. */
export async function claimRun(db: Queryable, id: number): Promise<RunRow | undefined> {
  const [row] = await db.query(
    `update reconciliation_runs set status = 'running', started_at = coalesce(started_at, now()), heartbeat_at = now()
     where id = $1 and status in ('queued', 'running') returning ${runColumns}`,
    [id],
  )
  return row && toRun(row)
}

export async function findRun(db: Queryable, id: number): Promise<RunRow | undefined> {
  const [row] = await db.query(`select ${runColumns} from reconciliation_runs where id = $1`, [id])
  return row && toRun(row)
}

export async function listRuns(db: Queryable, filter: { before?: number; limit: number }): Promise<RunRow[]> {
  const rows = await db.query(`select ${runColumns} from reconciliation_runs where ($1::int8 is null or id < $1) order by id desc limit $2`, [filter.before ?? null, filter.limit])
  return rows.map(toRun)
}

export async function countOrders(db: Queryable, run: Pick<RunRow, 'since' | 'until' | 'orderIds'>): Promise<number> {
  if (run.orderIds) return run.orderIds.length
  const [row] = await db.query<{ n: number }>('select count(*)::int as n from orders where updated_at <= $1 and ($2::timestamptz is null or updated_at >= $2)', [run.until, run.since])
  return row!.n
}

export interface Progress {
  ordersChecked: number
  ordersSkipped: number
  targetRecordsChecked: number
  discrepancies: number
  counts: RunCounts
  cursor: RunCursor
}

export async function saveProgress(db: Queryable, id: number, p: Progress): Promise<void> {
  await db.query(
    `update reconciliation_runs set orders_checked = $2, orders_skipped = $3, target_records_checked = $4, discrepancies = $5, counts = $6, cursor = $7, heartbeat_at = now()
     where id = $1`,
    [id, p.ordersChecked, p.ordersSkipped, p.targetRecordsChecked, p.discrepancies, JSON.stringify(p.counts), JSON.stringify(p.cursor)],
  )
}

export async function setOrdersTotal(db: Queryable, id: number, total: number): Promise<void> {
  await db.query('update reconciliation_runs set orders_total = $2 where id = $1', [id, total])
}

export async function finishRun(db: Queryable, id: number, status: 'succeeded' | 'failed', error?: string): Promise<void> {
  await db.query(`update reconciliation_runs set status = $2, error = $3, finished_at = now(), heartbeat_at = now() where id = $1`, [id, status, error ?? null])
}

/** Runs to (re)enqueue: queued ones whose job may be lost, and running ones whose worker stopped beating. */
export async function staleRuns(db: Queryable, options: { queuedForSeconds: number; silentForSeconds: number }): Promise<number[]> {
  const rows = await db.query<{ id: number }>(
    `select id from reconciliation_runs
     where (status = 'queued' and heartbeat_at < now() - make_interval(secs => $1)) or (status = 'running' and heartbeat_at < now() - make_interval(secs => $2))
     order by id limit 100`,
    [options.queuedForSeconds, options.silentForSeconds],
  )
  return rows.map((r) => r.id)
}

/** Microseconds since the epoch, exactly (a JS Date would drop the last three digits). */
const updatedUs = `(extract(epoch from o.updated_at) * 1000000)::int8::text`
const fromUs = (param: string) => `(timestamptz 'epoch' + ${param}::int8 * interval '1 microsecond')`
/** Before any order (year 1). */
const firstUs = '-62135596800000000'

/**
 * One page of the run's orders with their links to the ERP, the WMS and the order's own CRM, and
 * their invoices. A window pages by (updated_at, id) up to the run's `until`, so an order changed
 * during the run is left to the next one; a list pages by offset.
 */
export async function loadOrderPage(
  db: Queryable,
  run: Pick<RunRow, 'since' | 'until' | 'orderIds'>,
  cursor: OrderCursor | null,
  limit: number,
  links: { erp: string; inventory: string | null },
): Promise<{ orders: OrderSnapshot[]; next: OrderCursor | null }> {
  const select = `select o.id, o.source_connection, o.external_id, o.state, o.source_version, o.currency, o.total::text as total, o.payment_state,
       o.amount_paid::text as amount_paid, o.document->'lines' as lines, ${updatedUs} as updated_us,
       e.external_id as erp_id, e.status as erp_status, coalesce(e.lease_until > now(), false) as erp_leased,
       w.external_id as wms_id, w.status as wms_status, coalesce(w.lease_until > now(), false) as wms_leased,
       c.status as crm_status, coalesce(c.lease_until > now(), false) as crm_leased,
       (select json_agg(json_build_object('number', i.invoice_number, 'amount', i.amount::text) order by i.id) from invoices i where i.order_id = o.id) as invoices
     from orders o
     left join links e on e.order_id = o.id and e.connection_id = $1 and e.operation = 'salesOrders.upsert'
     left join links w on w.order_id = o.id and w.connection_id = $2 and w.operation = 'inventory.reserve'
     left join links c on c.order_id = o.id and c.connection_id = o.source_connection and c.operation = 'crm.status'`
  let rows: Record<string, unknown>[]
  let next: OrderCursor | null
  if (run.orderIds) {
    const offset = cursor && 'offset' in cursor ? cursor.offset : 0
    const ids = run.orderIds.slice(offset, offset + limit)
    if (!ids.length) return { orders: [], next: null }
    rows = await db.query(`${select} where o.id = any($3::uuid[]) order by o.id`, [links.erp, links.inventory, ids])
    next = offset + limit < run.orderIds.length ? { offset: offset + limit } : null
  } else {
    const after = cursor && 'updatedUs' in cursor ? cursor : { updatedUs: firstUs, id: '00000000-0000-0000-0000-000000000000' }
    rows = await db.query(
      `${select}
       where o.updated_at <= $3 and ($4::timestamptz is null or o.updated_at >= $4) and (o.updated_at, o.id) > (${fromUs('$5')}, $6::uuid)
       order by o.updated_at, o.id limit $7`,
      [links.erp, links.inventory, run.until, run.since, after.updatedUs, after.id, limit],
    )
    const last = rows.at(-1)
    next = rows.length === limit && last ? { updatedUs: last.updated_us as string, id: last.id as string } : null
  }
  return { orders: rows.map(toSnapshot), next }
}

function link(externalId: unknown, status: unknown, leased: unknown): LinkSnapshot | undefined {
  return status === null || status === undefined ? undefined : { externalId: externalId as string | null, status: status as string, leased: leased === true }
}

function toSnapshot(r: Record<string, unknown>): OrderSnapshot {
  const lines = Array.isArray(r.lines) ? (r.lines as { sku?: unknown; quantity?: unknown }[]) : []
  const erp = link(r.erp_id, r.erp_status, r.erp_leased)
  const inventory = link(r.wms_id, r.wms_status, r.wms_leased)
  const crm = link(null, r.crm_status, r.crm_leased)
  return {
    id: r.id as string,
    sourceConnection: r.source_connection as string,
    externalId: r.external_id as string,
    state: r.state as OrderState,
    sourceVersion: r.source_version as number,
    currency: r.currency as string,
    total: r.total as string,
    paymentState: r.payment_state as string,
    amountPaid: r.amount_paid as string,
    lines: lines.map((l) => ({ sku: String(l.sku), quantity: String(l.quantity) })),
    invoices: (r.invoices as { number: string; amount: string }[] | null) ?? [],
    ...(erp ? { erp } : {}),
    ...(inventory ? { inventory } : {}),
    ...(crm ? { crm } : {}),
  }
}

/** Which of these references are orders we know (references that are not UUIDs are not). */
export async function knownOrderIds(db: Queryable, references: readonly string[]): Promise<Set<string>> {
  const uuids = [...new Set(references.filter((r) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(r)).map((r) => r.toLowerCase()))]
  if (!uuids.length) return new Set()
  const rows = await db.query<{ id: string }>('select id from orders where id = any($1::uuid[])', [uuids])
  return new Set(rows.map((r) => r.id))
}

export interface DiscrepancyInput {
  kind: DriftKind
  orderId: string | null
  connectionId: string
  externalId: string | null
  expected: unknown
  actual: unknown
  action: DiscrepancyAction
  detail: string | null
  repairedAt: Date | null
}

/** Records a page's findings in one statement; a finding the run recorded already (a resumed page) is not repeated. */
export async function recordDiscrepancies(tx: Queryable, runId: number, items: readonly DiscrepancyInput[]): Promise<{ kind: DriftKind; action: DiscrepancyAction }[]> {
  if (!items.length) return []
  const rows = items.map((d) => ({
    kind: d.kind,
    order_id: d.orderId,
    connection_id: d.connectionId,
    external_id: d.externalId,
    expected: d.expected ?? null,
    actual: d.actual ?? null,
    action: d.action,
    detail: d.detail,
    repaired_at: d.repairedAt?.toISOString() ?? null,
  }))
  return tx.query(
    `insert into reconciliation_discrepancies (run_id, kind, order_id, connection_id, external_id, expected, actual, action, detail, repaired_at)
     select $1, kind, order_id, connection_id, external_id, expected, actual, action, detail, repaired_at
     from jsonb_to_recordset($2::jsonb) as d(kind text, order_id uuid, connection_id text, external_id text, expected jsonb, actual jsonb, action text, detail text, repaired_at timestamptz)
     on conflict do nothing returning kind, action`,
    [runId, JSON.stringify(rows)],
  )
}

/**
 * A repair through the pipeline is confirmed when a later run finds the order consistent for that
 * connection and kind: its discrepancy becomes `repaired`, with the time it was seen so.
 */
export async function confirmRepairs(db: Queryable, runId: number, checked: readonly { orderId: string; connectionId: string }[], found: readonly { orderId: string; connectionId: string; kind: string }[]): Promise<number> {
  if (!checked.length) return 0
  const rows = await db.query(
    `update reconciliation_discrepancies d set action = 'repaired', repaired_at = now(), detail = coalesce(d.detail, '') || '; consistent again in run ' || $1::text
     from unnest($2::uuid[], $3::text[]) as c(order_id, connection_id)
     where d.action = 'repair_requested' and d.repaired_at is null and d.run_id < $1 and d.order_id = c.order_id and d.connection_id = c.connection_id
       and not exists (select 1 from unnest($4::uuid[], $5::text[], $6::text[]) as f(order_id, connection_id, kind)
                       where f.order_id = d.order_id and f.connection_id = d.connection_id and f.kind = d.kind)
     returning d.id`,
    [runId, checked.map((c) => c.orderId), checked.map((c) => c.connectionId), found.map((f) => f.orderId), found.map((f) => f.connectionId), found.map((f) => f.kind)],
  )
  return rows.length
}

export async function hasRepairsAwaitingConfirmation(db: Queryable, runId: number): Promise<boolean> {
  const [row] = await db.query<{ any: boolean }>(`select exists (select 1 from reconciliation_discrepancies where action = 'repair_requested' and repaired_at is null and run_id < $1) as any`, [runId])
  return row!.any
}

export interface DiscrepancyRow {
  id: number
  runId: number
  kind: DriftKind
  orderId: string | null
  connectionId: string
  externalId: string | null
  expected: unknown
  actual: unknown
  action: DiscrepancyAction
  detail: string | null
  repairedAt: string | null
  createdAt: string
}

export async function listDiscrepancies(
  db: Queryable,
  runId: number,
  filter: { after?: number; limit: number; kind?: DriftKind; connection?: string; orderId?: string },
): Promise<DiscrepancyRow[]> {
  const rows = await db.query<Record<string, unknown>>(
    `select id, run_id, kind, order_id, connection_id, external_id, expected, actual, action, detail, repaired_at, created_at
     from reconciliation_discrepancies
     where run_id = $1 and id > $2 and ($3::text is null or kind = $3) and ($4::text is null or connection_id = $4) and ($5::uuid is null or order_id = $5)
     order by id limit $6`,
    [runId, filter.after ?? 0, filter.kind ?? null, filter.connection ?? null, filter.orderId ?? null, filter.limit],
  )
  return rows.map((r) => ({
    id: r.id as number,
    runId: r.run_id as number,
    kind: r.kind as DriftKind,
    orderId: r.order_id as string | null,
    connectionId: r.connection_id as string,
    externalId: r.external_id as string | null,
    expected: r.expected,
    actual: r.actual,
    action: r.action as DiscrepancyAction,
    detail: r.detail as string | null,
    repairedAt: r.repaired_at ? (r.repaired_at as Date).toISOString() : null,
    createdAt: (r.created_at as Date).toISOString(),
  }))
}

export const emptyCounts = (): RunCounts => ({ byKind: Object.fromEntries(driftKinds.map((k) => [k, 0])), byAction: Object.fromEntries(['reported', 'repair_requested', 'repaired', 'repair_failed'].map((a) => [a, 0])) })
