/**
 * One reconciliation run, start to finish: pages through the run's orders (a window, or a list)
 * 500 at a time by keyset, reads what each target holds for the page in one batched call per
 * target (the targets in parallel), compares (compare.ts), applies the policy (repairs.ts) and
 * records the page's discrepancies and progress before the next page. Then it pages through what
 * the ERP and the WMS hold to find orphans. Memory holds one page per part, whatever the number of orders. The
 * cursor is stored with the progress, so a run whose worker died resumes where it stood.
 * It must not hold a transaction open while a target is read.
 */
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Logger, RemoteCrmOrder, RemoteInvoice, RemoteReservation, RemoteSalesOrder } from '../connector-kit/index.ts'
import type { Database } from '../db/database.ts'
import type { Lifecycle } from '../orders/lifecycle.ts'
import { compareCrmStatus, compareInvoices, compareReservations, compareSalesOrders, isSettled, type Finding, type OrderSnapshot } from './compare.ts'
import {
  claimRun,
  confirmRepairs,
  hasRepairsAwaitingConfirmation,
  countOrders,
  emptyCounts,
  finishRun,
  knownOrderIds,
  loadOrderPage,
  recordDiscrepancies,
  saveProgress,
  setOrdersTotal,
  type Progress,
  type RunCursor,
  type RunRow,
} from './reconciliation.repository.ts'
import type { ReconciliationSettings } from './reconciliation.schemas.ts'
import { settleFindings } from './repairs.ts'
import { planTargets, readTarget, ReconciliationFailure, type Targets } from './targets.ts'

export interface ReconciliationDeps {
  db: Database
  connections: ConnectionRegistry
  lifecycle: Lifecycle
  log: Logger
  settings: ReconciliationSettings
}

export interface RunOutcome {
  runId: number
  status: 'succeeded' | 'failed'
  progress: Progress
  error?: string
}

function groupBy<T>(items: readonly T[], key: (item: T) => string | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const k = key(item)
    if (k === undefined) continue
    const group = groups.get(k)
    if (group) group.push(item)
    else groups.set(k, [item])
  }
  return groups
}

/**
 * Runs (or resumes) the run `runId`. Answers undefined when the run is finished already or unknown.
 * A failure of a target ends the run as `failed` with a message safe to show.
 */
export async function executeRun(deps: ReconciliationDeps, runId: number): Promise<RunOutcome | undefined> {
  const run = await claimRun(deps.db, runId)
  if (!run) return undefined
  const log = deps.log
  const started = Date.now()
  const targets = planTargets(deps.connections, run.connections)
  const cursor: RunCursor = run.cursor ?? { orders: null, orphans: {} }
  const progress: Progress = {
    ordersChecked: run.ordersChecked,
    ordersSkipped: run.ordersSkipped,
    targetRecordsChecked: run.targetRecordsChecked,
    discrepancies: run.discrepancies,
    counts: run.cursor ? run.counts : emptyCounts(),
    cursor,
  }
  // After every page, with the cursor: where a resumed run goes on, and what GET shows meanwhile.
  const save = () => saveProgress(deps.db, run.id, progress)

  try {
    if (run.ordersTotal === null) await setOrdersTotal(deps.db, run.id, await countOrders(deps.db, run))
    log.info({ runId: run.id, connections: run.connections, since: run.since, until: run.until, orders: run.orderIds?.length }, 'reconciliation run started')
    const record = async (findings: readonly Finding[]) => {
      const settled = await settleFindings(deps, { id: run.id, policy: run.policy }, findings)
      const inserted = await recordDiscrepancies(deps.db, run.id, settled)
      for (const { kind, action } of inserted) {
        progress.counts.byKind[kind] = (progress.counts.byKind[kind] ?? 0) + 1
        progress.counts.byAction[action] = (progress.counts.byAction[action] ?? 0) + 1
      }
      progress.discrepancies += inserted.length
    }
    // One part after the other: on two cores the remote, the database and this process share, the
    // parts gain nothing side by side, and one page at a time keeps memory flat.
    await scanOrders(deps, run, targets, cursor, progress, record, save)
    // Orphans exist only in a window: a list of orders says nothing about what else a target holds.
    if (!run.orderIds) {
      await scanErpOrphans(deps, run, targets, cursor, progress, record, save)
      await scanInventoryOrphans(deps, run, targets, cursor, progress, record, save)
    }
    await save()
    await finishRun(deps.db, run.id, 'succeeded')
    log.info({ runId: run.id, ...progress, cursor: undefined, ms: Date.now() - started }, 'reconciliation run finished')
    return { runId: run.id, status: 'succeeded', progress }
  } catch (err) {
    const message = err instanceof ReconciliationFailure ? err.message : 'internal error; see the worker log for this run'
    if (!(err instanceof ReconciliationFailure)) log.error({ err, runId: run.id }, 'reconciliation run failed')
    await finishRun(deps.db, run.id, 'failed', message)
    return { runId: run.id, status: 'failed', progress, error: message }
  }
}

type Record_ = (findings: readonly Finding[]) => Promise<void>

async function scanOrders(deps: ReconciliationDeps, run: RunRow, targets: Targets, cursor: RunCursor, progress: Progress, record: Record_, save: () => Promise<void>): Promise<void> {
  if (cursor.orders === 'done') return
  // Earlier repairs awaiting confirmation: usually none, and then no page needs to look.
  const awaiting = await hasRepairsAwaitingConfirmation(deps.db, run.id)
  const { erp, inventory } = deps.connections.pipeline
  const links = { erp: erp.id, inventory: inventory?.id ?? null }
  let position = cursor.orders
  for (;;) {
    const page = await loadOrderPage(deps.db, run, position, deps.settings.batchSize, links)
    if (page.orders.length) {
      const { findings, checked, skipped } = await comparePage(deps, run, targets, page.orders)
      await record(findings)
      if (awaiting) await confirmRepairs(deps.db, run.id, checked, findings.flatMap((f) => (f.orderId ? [{ orderId: f.orderId, connectionId: f.connectionId, kind: f.kind }] : [])))
      progress.ordersChecked += page.orders.length - skipped
      progress.ordersSkipped += skipped
    }
    position = page.next
    cursor.orders = position ?? 'done'
    await save()
    if (!position) return
  }
}

/**
 * Compares one page with every target, reading each target once for the whole page (in parallel).
 * An order whose link to a target is in flight (a step pending, retrying or leased) or failed is
 * not compared with that target: the pipeline, or the failures list, has it.
 */
async function comparePage(
  deps: ReconciliationDeps,
  run: RunRow,
  targets: Targets,
  orders: readonly OrderSnapshot[],
): Promise<{ findings: Finding[]; checked: { orderId: string; connectionId: string }[]; skipped: number }> {
  const log = deps.log
  const tolerance = run.tolerance
  const erpOrders = targets.erp ? orders.filter((o) => isSettled(o.erp)) : []
  const wmsOrders = targets.inventory ? orders.filter((o) => isSettled(o.inventory)) : []
  const crmOrders = orders.filter((o) => targets.crms.has(o.sourceConnection) && isSettled(o.crm))
  const erpRefs = erpOrders.map((o) => o.id)
  const invoiceRefs = targets.erp?.invoices ? erpOrders.map((o) => o.id) : []

  const [salesOrders, invoices, reservations, crmAnswers] = await Promise.all([
    targets.erp && erpRefs.length ? readTarget(targets.erp.connection, log, 'reading sales orders by reference', (ctx) => targets.erp!.findMany(ctx, erpRefs)) : ([] as RemoteSalesOrder[]),
    targets.erp?.invoices && invoiceRefs.length
      ? readTarget(targets.erp.connection, log, 'reading invoices', (ctx) => targets.erp!.invoices!.list(ctx, { orderRefs: invoiceRefs })).then((r) => r.invoices)
      : ([] as RemoteInvoice[]),
    targets.inventory && wmsOrders.length ? readTarget(targets.inventory.connection, log, 'reading reservations by reference', (ctx) => targets.inventory!.findMany(ctx, wmsOrders.map((o) => o.id))) : ([] as RemoteReservation[]),
    Promise.all(
      [...groupBy(crmOrders, (o) => o.sourceConnection)].map(([connectionId, group]) => {
        const target = targets.crms.get(connectionId)!
        return readTarget(target.connection, log, 'reading order status', (ctx) => target.fetchMany(ctx, group.map((o) => o.externalId))).then((answers) => ({ connectionId, answers }))
      }),
    ),
  ])

  const findings: Finding[] = []
  const checked: { orderId: string; connectionId: string }[] = []
  if (targets.erp) {
    const byReference = groupBy(salesOrders, (so) => so.reference)
    const invoicesByReference = groupBy(invoices, (i) => i.reference)
    const id = targets.erp.connection.id
    for (const order of erpOrders) {
      findings.push(...compareSalesOrders(order, byReference.get(order.id) ?? [], id, tolerance))
      if (targets.erp.invoices) {
        const invoiceFinding = compareInvoices(order, invoicesByReference.get(order.id) ?? [], id, tolerance)
        if (invoiceFinding) findings.push(invoiceFinding)
      }
      checked.push({ orderId: order.id, connectionId: id })
    }
  }
  if (targets.inventory) {
    const byReference = groupBy(reservations, (r) => r.reference)
    const { id, stockPolicy } = targets.inventory.connection
    for (const order of wmsOrders) {
      findings.push(...compareReservations(order, byReference.get(order.id) ?? [], id, stockPolicy))
      checked.push({ orderId: order.id, connectionId: id })
    }
  }
  const crmByConnection = new Map<string, Map<string, RemoteCrmOrder>>(crmAnswers.map(({ connectionId, answers }) => [connectionId, new Map(answers.map((a) => [a.externalId, a]))]))
  for (const order of crmOrders) {
    const finding = compareCrmStatus(order, crmByConnection.get(order.sourceConnection)?.get(order.externalId), order.sourceConnection, tolerance)
    if (finding) findings.push(finding)
    checked.push({ orderId: order.id, connectionId: order.sourceConnection })
  }

  // Skipped: an order with a link to a compared target that is not settled (in flight, or failed).
  const inFlight = (o: OrderSnapshot) =>
    (targets.erp !== undefined && o.erp !== undefined && !isSettled(o.erp)) ||
    (targets.inventory !== undefined && o.inventory !== undefined && !isSettled(o.inventory)) ||
    (targets.crms.has(o.sourceConnection) && o.crm !== undefined && !isSettled(o.crm))
  return { findings, checked, skipped: orders.filter(inFlight).length }
}

/** Sales orders in the ERP, changed in the window, whose reference names no order we know. */
async function scanErpOrphans(deps: ReconciliationDeps, run: RunRow, targets: Targets, cursor: RunCursor, progress: Progress, record: Record_, save: () => Promise<void>): Promise<void> {
  const erp = targets.erp
  if (!erp?.listSince) return
  const id = erp.connection.id
  let position = cursor.orphans[id] ?? null
  while (position !== 'done') {
    const from = position
    const page = await readTarget(erp.connection, deps.log, 'listing sales orders', (ctx) => erp.listSince!(ctx, { ...(run.since ? { since: run.since.toISOString() } : {}), cursor: from, limit: deps.settings.batchSize }))
    const known = await knownOrderIds(deps.db, page.orders.flatMap((so) => (so.reference ? [so.reference] : [])))
    const orphans = page.orders.filter((so) => so.status === 'open' && !(so.reference && known.has(so.reference.toLowerCase())))
    await record(
      orphans.map((so) => ({
        kind: 'orphan_in_target',
        orderId: null,
        connectionId: id,
        externalId: so.externalId,
        expected: null,
        actual: { reference: so.reference ?? null, status: so.remoteStatus ?? so.status, total: so.total ?? null, currency: so.currency ?? null, updatedAt: so.updatedAt ?? null },
        repair: null,
        note: 'a sales order orderbridge does not know may have been entered in the ERP by hand; it is never cancelled automatically',
      })),
    )
    progress.targetRecordsChecked += page.orders.length
    position = page.nextCursor ?? 'done'
    cursor.orphans[id] = position
    await save()
  }
}

/** Active reservations in the WMS whose reference names no order we know: they hold stock for nobody. */
async function scanInventoryOrphans(deps: ReconciliationDeps, _run: RunRow, targets: Targets, cursor: RunCursor, progress: Progress, record: Record_, save: () => Promise<void>): Promise<void> {
  const inventory = targets.inventory
  if (!inventory?.list) return
  const id = inventory.connection.id
  let position = cursor.orphans[id] ?? null
  // Every active reservation, whatever the window: an orphan that holds stock matters however old it is.
  while (position !== 'done') {
    const from = position
    const page = await readTarget(inventory.connection, deps.log, 'listing reservations', (ctx) => inventory.list!(ctx, { activeOnly: true, cursor: from, limit: deps.settings.batchSize }))
    const known = await knownOrderIds(deps.db, page.reservations.map((r) => r.reference))
    const orphans = page.reservations.filter((r) => r.status === 'active' && !known.has(r.reference.toLowerCase()))
    await record(
      orphans.map((r) => ({
        kind: 'orphan_in_target',
        orderId: null,
        connectionId: id,
        externalId: r.externalId,
        expected: null,
        actual: { reference: r.reference, status: r.status, lines: r.lines.map((l) => ({ sku: l.sku, requested: l.requested, reserved: l.reserved })) },
        repair: { type: 'release-reservation', externalId: r.externalId },
      })),
    )
    progress.targetRecordsChecked += page.reservations.length
    position = page.nextCursor ?? 'done'
    cursor.orphans[id] = position
    await save()
  }
}
