/**
 * The order's life as the pipeline runs it (DESIGN.md): every state change goes through
 * `transition`, which records it, tells the CRM (a status write-back step), schedules or cancels
 * reminders, and asks for the next step of the pipeline. Work is collected in a `UnitOfWork`
 * inside the caller's transaction; `finish` writes its history last in that transaction, and
 * `dispatch` enqueues its jobs once it has committed (the sweeper covers a lost enqueue).
 */
import type { Queue } from 'bullmq'
import { findApprovalRulesVersion, loadActiveApprovalRules, type ApprovalRulesVersion, type RequiredApprovals } from '../approvals/approval-rule-versions.ts'
import { evaluateApprovalRules } from '../approvals/evaluate-approval-rules.ts'
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Queryable } from '../db/database.ts'
import { enqueueNotificationJobs, emptyPlan, mergePlans, onOrderTransition, type NotificationPlan } from '../notifications/notification-schedule.ts'
import type { NotificationJob, NotificationSettings } from '../notifications/notification.schemas.ts'
import { ensureJob, syncJobId, type QueueSet, type SyncJob } from '../queue/queues.ts'
import type { ChangeInput } from '../status/change-feed.ts'
import { requestStockPush, stockReceivers, type StockPushJob } from '../stock/stock-push.ts'
import { recordHistory, type OrderEventInput } from './order.repository.ts'
import type { CanonicalOrder } from './order.schemas.ts'
import { assertTransition, type OrderState } from './order-state.ts'

export const operations = {
  creditCheck: 'credit.check',
  reserveStock: 'inventory.reserve',
  salesOrder: 'salesOrders.upsert',
  crmStatus: 'crm.status',
} as const

export interface UnitOfWork {
  events: OrderEventInput[]
  changes: ChangeInput[]
  /** `rerun`: the step finished this version already (e.g. a hold released); its finished job must be replaced. */
  jobs: (Omit<SyncJob, 'correlationId'> & { rerun?: boolean })[]
  notifications: NotificationPlan
  /** Inventory connections whose stock levels changed: CRMs that show stock hear of it. */
  stockChanged: string[]
}

export const newUnitOfWork = (): UnitOfWork => ({ events: [], changes: [], jobs: [], notifications: emptyPlan(), stockChanged: [] })

/** Adds what `from` leaves to do after commit (its jobs, reminders and stock pushes) to `into`. */
export function mergeDispatch(into: UnitOfWork, from: UnitOfWork): void {
  into.jobs.push(...from.jobs)
  into.notifications = mergePlans(into.notifications, from.notifications)
  into.stockChanged.push(...from.stockChanged)
}

/** What the write of a new state returns: the order's revision, and when it entered the state. */
export interface Entered {
  revision: number
  at: Date
}

/** What `transition` needs of an order; the caller holds its row lock. */
export interface OrderRef {
  id: string
  state: OrderState
  sourceConnection: string
  sourceVersion: number
  document: CanonicalOrder
}

export interface Lifecycle {
  /**
   * The approvals an order needs under the active rules. `activeVersion`: the active version as the
   * caller's statement already read it (null: none is active); otherwise it is read here.
   */
  approvalsFor(db: Queryable, order: CanonicalOrder, activeVersion?: number | null): Promise<RequiredApprovals>
  /** Moves the order to `to` and does everything that follows from it; mutates `order.state`. */
  transition(tx: Queryable, work: UnitOfWork, order: OrderRef, to: OrderState, cause: string, detail?: Record<string, unknown>): Promise<void>
  /**
   * Everything `transition` does but the write, for an order whose row is in `to` already (a new
   * order inserted approved); `entered` is what that write returned. Mutates `order.state`.
   */
  entered(tx: Queryable, work: UnitOfWork, order: OrderRef, to: OrderState, entered: Entered, cause: string, detail?: Record<string, unknown>): Promise<void>
  /** Asks for the first fulfilment step again (a new source version, or stock arrived for a hold). */
  resumeFulfilment(tx: Queryable, work: UnitOfWork, order: OrderRef): Promise<void>
  /** Asks for the ERP step after the stock was reserved (or when there is no inventory system). */
  requestSalesOrder(tx: Queryable, work: UnitOfWork, order: OrderRef): Promise<void>
  /** Tells the CRM the order's status again (its payment track changed, or a change was refused). */
  requestStatusWriteback(tx: Queryable, work: UnitOfWork, order: Pick<OrderRef, 'id' | 'sourceConnection'>): Promise<void>
  /** Marks a step pending for `version`; `onlyIfLinked` leaves targets that never saw the order alone. */
  requestStep(tx: Queryable, work: UnitOfWork, step: { orderId: string; connection: Connection; operation: string; version: number; onlyIfLinked?: boolean }): Promise<void>
  /** Writes the unit's history: the last statement of the caller's transaction. */
  finish(tx: Queryable, work: UnitOfWork): Promise<void>
  /** After commit: enqueue the unit's steps and reminders. */
  dispatch(work: UnitOfWork, correlationId: string): Promise<void>
  /** The connections that run sync steps, each with its own queue and worker. */
  stepConnections(): Connection[]
}

export interface LifecycleOptions {
  connections: ConnectionRegistry
  notifications: Pick<NotificationSettings, 'rules'>
  queues?: Pick<QueueSet, 'sync'>
  notificationQueue?: Queue<NotificationJob>
  stockPushQueue?: Queue<StockPushJob>
}

const writesBack = (c: Connection) => Boolean(c.connector.crm && (c.connector.crm.enabled?.(c.settings) ?? true))

export function createLifecycle(options: LifecycleOptions): Lifecycle {
  const { connections } = options
  const { erp, inventory } = connections.pipeline
  // A saved version never changes (a change is a new version), so each is read from the database once.
  const rulesByVersion = new Map<number, Promise<ApprovalRulesVersion | undefined>>()
  const rulesVersion = (db: Queryable, version: number) => {
    let rules = rulesByVersion.get(version)
    if (!rules) {
      rules = findApprovalRulesVersion(db, version)
      rulesByVersion.set(version, rules)
      rules.catch(() => rulesByVersion.delete(version))
    }
    return rules
  }

  // A transition can schedule or cancel reminders only when some rule waits, or fires on entering
  // `to`, or watches invoices (which a final state cancels); otherwise it spares the queries.
  const rules = options.notifications.rules
  const anyWaiting = rules.some((r) => r.trigger.on === 'waiting')
  const anyInvoice = rules.some((r) => r.trigger.on === 'invoice_due' || r.trigger.on === 'invoice_overdue')
  const remindersCare = (to: OrderState) =>
    anyWaiting || rules.some((r) => r.trigger.on === 'entered' && r.trigger.states.includes(to)) || (anyInvoice && (to === 'cancelled' || to === 'rejected' || to === 'completed'))

  const crmOf = (sourceConnection: string): Connection | undefined => {
    const connection = connections.get(sourceConnection)
    return connection && writesBack(connection) ? connection : undefined
  }

  const lifecycle: Lifecycle = {
    async approvalsFor(db, order, activeVersion) {
      const active = activeVersion === undefined ? await loadActiveApprovalRules(db) : activeVersion === null ? undefined : await rulesVersion(db, activeVersion)
      if (!active) return { levels: [], matchedRule: null, reasons: ['no approval rules are configured: approved by policy'], rulesVersion: null }
      return { ...evaluateApprovalRules(active.policy, order), rulesVersion: active.version }
    },

    async transition(tx, work, order, to, cause, detail) {
      assertTransition(order.state, to)
      const [row] = await tx.query<Entered>(
        'update orders set state = $2, revision = revision + 1, updated_at = now(), state_entered_at = now() where id = $1 returning revision, state_entered_at as at',
        [order.id, to],
      )
      await lifecycle.entered(tx, work, order, to, row!, cause, detail)
    },

    async entered(tx, work, order, to, row, cause, detail) {
      const from = order.state
      assertTransition(from, to)
      order.state = to
      work.events.push({ orderId: order.id, kind: 'transition', from, to, cause, ...(detail ? { detail } : {}) })
      work.changes.push({ type: 'order.state_changed', orderId: order.id, data: { from, to, ...(detail ? { detail } : {}) } })
      if (remindersCare(to)) work.notifications = mergePlans(work.notifications, await onOrderTransition(tx, options.notifications, { orderId: order.id, from, to, at: row.at }))
      const crm = crmOf(order.sourceConnection)
      if (crm) await lifecycle.requestStep(tx, work, { orderId: order.id, connection: crm, operation: operations.crmStatus, version: row.revision })

      if (to === 'approved') await lifecycle.resumeFulfilment(tx, work, order)
      if (to === 'reserved') await lifecycle.requestSalesOrder(tx, work, order)
      if (to === 'cancelled') {
        // Undo what the targets hold: the steps see the order cancelled and release or cancel.
        if (inventory) await lifecycle.requestStep(tx, work, { orderId: order.id, connection: inventory, operation: operations.reserveStock, version: order.sourceVersion, onlyIfLinked: true })
        await lifecycle.requestStep(tx, work, { orderId: order.id, connection: erp, operation: operations.salesOrder, version: order.sourceVersion, onlyIfLinked: true })
      }
      // Rejected for stock after its sales order was asked for: the ERP step cancels what it made.
      // (The stock step gave back its reservation as it rejected; approval rejects before any step.)
      if (to === 'rejected') await lifecycle.requestStep(tx, work, { orderId: order.id, connection: erp, operation: operations.salesOrder, version: order.sourceVersion, onlyIfLinked: true })
    },

    async resumeFulfilment(tx, work, order) {
      if (inventory) await lifecycle.requestStep(tx, work, { orderId: order.id, connection: inventory, operation: operations.reserveStock, version: order.sourceVersion })
      else await lifecycle.requestSalesOrder(tx, work, order)
    },

    async requestSalesOrder(tx, work, order) {
      await lifecycle.requestStep(tx, work, { orderId: order.id, connection: erp, operation: operations.salesOrder, version: order.sourceVersion })
    },

    async requestStatusWriteback(tx, work, order) {
      const crm = crmOf(order.sourceConnection)
      if (!crm) return
      const [row] = await tx.query<{ revision: number }>('update orders set revision = revision + 1 where id = $1 returning revision', [order.id])
      await lifecycle.requestStep(tx, work, { orderId: order.id, connection: crm, operation: operations.crmStatus, version: row!.revision })
    },

    async requestStep(tx, work, step) {
      const [linked] = await tx.query<{ rerun: boolean }>(
        `with earlier as (select status, target_version, last_synced_version from links where order_id = $1 and connection_id = $2 and operation = $3),
         requested as (${
           step.onlyIfLinked
             ? `update links set status = 'pending', target_version = greatest(coalesce(target_version, 0), $4), updated_at = now()
                where order_id = $1 and connection_id = $2 and operation = $3 returning order_id`
             : `insert into links (order_id, connection_id, operation, status, target_version) values ($1, $2, $3, 'pending', $4)
                on conflict (order_id, connection_id, operation) do update set status = 'pending', target_version = greatest(coalesce(links.target_version, 0), $4), updated_at = now()
                returning order_id`
         })
         select coalesce((select status not in ('pending', 'retrying') and coalesce(target_version, last_synced_version, 0) >= $4 from earlier), false) as rerun from requested`,
        [step.orderId, step.connection.id, step.operation, step.version],
      )
      // A link that had finished this version (synced, held, dead…) is asked for it again: the job
      // that ran it keeps its id in the queue for a while, so it must be replaced, not added.
      if (linked) work.jobs.push({ orderId: step.orderId, connectionId: step.connection.id, operation: step.operation, sourceVersion: step.version, ...(linked.rerun ? { rerun: true } : {}) })
    },

    finish: (tx, work) => recordHistory(tx, work.events, work.changes),

    async dispatch(work, correlationId) {
      if (options.queues) {
        const byConnection = new Map<string, SyncJob[]>()
        for (const { rerun, ...job } of work.jobs) {
          if (rerun) await ensureJob(options.queues.sync(job.connectionId), job.operation, { ...job, correlationId }, syncJobId(job))
          else byConnection.set(job.connectionId, [...(byConnection.get(job.connectionId) ?? []), { ...job, correlationId }])
        }
        for (const [connectionId, jobs] of byConnection) {
          await options.queues.sync(connectionId).addBulk(jobs.map((data) => ({ name: data.operation, data, opts: { jobId: syncJobId(data) } })))
        }
      }
      if (options.notificationQueue && (work.notifications.schedule.length || work.notifications.cancel.length)) {
        await enqueueNotificationJobs(options.notificationQueue, work.notifications)
      }
      if (options.stockPushQueue) {
        for (const inventoryId of new Set(work.stockChanged)) await requestStockPush(options.stockPushQueue, stockReceivers(connections), inventoryId)
      }
    },

    stepConnections() {
      const all = [erp, ...(inventory ? [inventory] : []), ...connections.all().filter(writesBack)]
      return [...new Map(all.map((c) => [c.id, c])).values()]
    },
  }
  return lifecycle
}
