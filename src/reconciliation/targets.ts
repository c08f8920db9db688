/**
 * Which systems a run compares and how it reads them: the pipeline's ERP (sales orders, invoices),
 * its WMS (reservations) and every CRM that takes status back, each through the capabilities its
 * connector implements. Batched reads are used where the connector has them; otherwise one call per
 * order, a few at a time. Remote calls retry what is retryable a few times, then fail the run.
 */
import type { Connection, ConnectionRegistry } from '../connections/connection-registry.ts'
import {
  isSyncFailure,
  SyncFailure,
  type ConnectorContext,
  type InvoiceCapability,
  type Logger,
  type RemoteCrmOrder,
  type RemoteReservation,
  type RemoteSalesOrder,
  type RemoteSalesOrderPage,
} from '../connector-kit/index.ts'

type Ctx = ConnectorContext

export interface ErpTarget {
  connection: Connection
  findMany(ctx: Ctx, references: readonly string[]): Promise<RemoteSalesOrder[]>
  listSince?(ctx: Ctx, query: { since?: string; cursor: string | null; limit: number }): Promise<RemoteSalesOrderPage>
  invoices?: InvoiceCapability<unknown, unknown>
}

export interface InventoryTarget {
  connection: Connection
  findMany(ctx: Ctx, references: readonly string[]): Promise<RemoteReservation[]>
  list?(ctx: Ctx, query: { activeOnly: boolean; since?: string; cursor: string | null; limit: number }): Promise<{ reservations: RemoteReservation[]; nextCursor: string | null }>
}

export interface CrmTarget {
  connection: Connection
  fetchMany(ctx: Ctx, crmOrderIds: readonly string[]): Promise<RemoteCrmOrder[]>
}

export interface Targets {
  erp?: ErpTarget
  inventory?: InventoryTarget
  /** By connection id: the CRMs whose orders' status is compared. */
  crms: Map<string, CrmTarget>
}

/** At most this many single calls at once for a connector without batched reads. */
const singleCallConcurrency = 8

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await fn(items[i]!)
      }
    }),
  )
  return out
}

function erpTarget(connection: Connection): ErpTarget | undefined {
  const so = connection.connector.salesOrders
  if (!so) return undefined
  const findMany: ErpTarget['findMany'] = so.findManyByReference
    ? (ctx, refs) => so.findManyByReference!(ctx, refs)
    : async (ctx, refs) => {
        // No batched read: one lookup per order, then the order itself when the connector can read it.
        const found = await mapLimit(refs, singleCallConcurrency, async (reference) => {
          const record = await so.findByReference(ctx, reference)
          if (!record) return []
          const full = so.fetch ? await so.fetch(ctx, record.externalId) : undefined
          return [full ?? { externalId: record.externalId, reference, status: 'open' as const }]
        })
        return found.flat()
      }
  return {
    connection,
    findMany,
    ...(so.listSince ? { listSince: (ctx: Ctx, q: Parameters<NonNullable<ErpTarget['listSince']>>[1]) => so.listSince!(ctx, q) } : {}),
    ...(connection.connector.invoices ? { invoices: connection.connector.invoices } : {}),
  }
}

function inventoryTarget(connection: Connection): InventoryTarget | undefined {
  const inv = connection.connector.inventory
  if (!inv) return undefined
  const findMany: InventoryTarget['findMany'] = inv.findManyReservations
    ? (ctx, refs) => inv.findManyReservations!(ctx, refs)
    : async (ctx, refs) => {
        // Without batched reads only the open reservation each order has can be seen.
        const found = await mapLimit(refs, singleCallConcurrency, async (reference) => {
          const reservation = await inv.findReservation(ctx, reference)
          return reservation ? [{ ...reservation, reference, status: 'active' as const }] : []
        })
        return found.flat()
      }
  return { connection, findMany, ...(inv.listReservations ? { list: (ctx: Ctx, q: Parameters<NonNullable<InventoryTarget['list']>>[1]) => inv.listReservations!(ctx, q) } : {}) }
}

function crmTarget(connection: Connection): CrmTarget | undefined {
  const crm = connection.connector.crm
  if (!crm || !(crm.enabled?.(connection.settings) ?? true)) return undefined
  if (crm.fetchOrders) return { connection, fetchMany: (ctx, ids) => crm.fetchOrders!(ctx, ids) }
  if (!crm.fetchOrder) return undefined
  return {
    connection,
    fetchMany: async (ctx, ids) => (await mapLimit(ids, singleCallConcurrency, (id) => crm.fetchOrder!(ctx, id))).filter((o): o is RemoteCrmOrder => o !== undefined),
  }
}

/** Every connection a run can compare: the pipeline's ERP and WMS, and the CRMs that can be read back. */
export function reconcilableConnections(connections: ConnectionRegistry): Connection[] {
  const targets = planTargets(connections)
  return [...(targets.erp ? [targets.erp.connection] : []), ...(targets.inventory ? [targets.inventory.connection] : []), ...[...targets.crms.values()].map((c) => c.connection)]
}

/** The targets of a run: all reconcilable connections, or those of `only`. */
export function planTargets(connections: ConnectionRegistry, only?: readonly string[]): Targets {
  const wanted = (c: Connection) => only === undefined || only.includes(c.id)
  const { erp, inventory } = connections.pipeline
  const crms = new Map<string, CrmTarget>()
  for (const c of connections.all()) {
    if (c.id === erp.id || c.id === inventory?.id || !wanted(c)) continue
    const target = crmTarget(c)
    if (target) crms.set(c.id, target)
  }
  const erpT = wanted(erp) ? erpTarget(erp) : undefined
  const inventoryT = inventory && wanted(inventory) ? inventoryTarget(inventory) : undefined
  return { ...(erpT ? { erp: erpT } : {}), ...(inventoryT ? { inventory: inventoryT } : {}), crms }
}

/** A run that cannot go on: the message is safe to show (the cause is logged, not stored). */
export class ReconciliationFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ReconciliationFailure'
  }
}

const attempts = 4

export function contextFor(connection: Connection, log: Logger): Ctx {
  return { connectionId: connection.id, settings: connection.settings, secrets: connection.secrets, log }
}

/** One read from a target: retryable failures are tried again (honouring Retry-After, up to 10 s), others end the run. */
export async function readTarget<T>(connection: Connection, log: Logger, what: string, call: (ctx: Ctx) => Promise<T>): Promise<T> {
  const ctx = contextFor(connection, log)
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(ctx)
    } catch (err) {
      const failure: SyncFailure = isSyncFailure(err) ? err : connection.connector.classify(err, ctx)
      if (!failure.retryable || attempt >= attempts) {
        log.warn({ connectorId: connection.id, kind: failure.kind, err }, `reconciliation: ${what} failed`)
        throw new ReconciliationFailure(`${connection.id}: ${what} failed (${failure.kind}): ${failure.message}`, { cause: failure })
      }
      await new Promise((r) => setTimeout(r, Math.min(failure.details.retryAfterMs ?? 250 * 2 ** attempt, 10_000)))
    }
  }
}
