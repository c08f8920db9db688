/**
 * Tryton 6.0 as ERP and inventory, live over JSON-RPC: sales orders (create with lines, quote,
 * confirm; find by our reference; cancel), customers (parties by code, created when missing),
 * stock per product in a warehouse (quantity and forecast), customer credit (credit-limit modules),
 * a poller for shipments, invoices and payments, since Tryton does not push, and the reads
 * reconciliation compares with (sales by reference or page by page, customer invoices).
 *
 * It must not: retry by itself (the queue does; `classify()` says how), keep anything but the login
 * session in memory, or send a JS number where Tryton wants a Decimal. Tryton has no idempotency
 * keys: our order id in the sale's reference is how a retry finds what an earlier attempt wrote.
 */
import { defineConnector, type ConnectorContext, type Operation, type RemoteRecord } from '../../src/connector-kit/index.ts'
import { trytonClient } from './client.ts'
import { getCustomerCredit } from './credit.ts'
import { classifyTrytonError } from './errors.ts'
import { findReservation, getStock, release, reserve } from './inventory.ts'
import { fetchFulfilmentChanges, pollResource } from './poll.ts'
import { findReservationsByReferences, trytonInvoices, trytonSalesOrderReads } from './reconciliation.ts'
import { cancelSale, describeSaleFields, findSaleByReference, trytonSaleSchema, upsertSale, type TrytonSale } from './sales.ts'
import { secretsSchema, settingsSchema, trytonConnectorId, type TrytonSecrets, type TrytonSettings } from './settings.ts'

export { trytonConnectorId, settingsSchema, secretsSchema, type TrytonSettings, type TrytonSecrets } from './settings.ts'
export { trytonSaleSchema, type TrytonSale } from './sales.ts'

/** Looks the sale up by our reference before it creates one; continues one an earlier attempt left in draft or quotation. */
export const upsertTrytonSale: Operation<TrytonSale, RemoteRecord, TrytonSettings, TrytonSecrets> = {
  inputSchema: trytonSaleSchema,
  idempotency: 'lookup-by-reference',
  run: upsertSale,
}

export const tryton = defineConnector<TrytonSettings, TrytonSecrets>({
  manifest: {
    id: trytonConnectorId,
    version: '1.0.0',
    displayName: 'Tryton 6.0 (JSON-RPC)',
    roles: ['erp', 'inventory'],
    settingsSchema,
    secretsSchema,
    // Tryton's werkzeug server is threaded; confirms of one credit-limited customer lock tables.
    limits: { concurrency: 4 },
  },
  // Logs in (or reuses the session) and reads the user's preferences: proves URL, database, login and rights.
  check: async (ctx: ConnectorContext<TrytonSettings, TrytonSecrets>) => {
    await trytonClient(ctx).call('model.res.user.get_preferences', [true])
  },
  classify: (err) => classifyTrytonError(err),
  describeFields: async (_ctx, target) => (target === 'salesOrder' ? describeSaleFields() : []),
  salesOrders: {
    upsert: upsertTrytonSale as Operation<Record<string, unknown>, RemoteRecord, TrytonSettings, TrytonSecrets>,
    findByReference: findSaleByReference,
    cancel: cancelSale,
    // Reconciliation: sales by id, by many references at once, and page by page (reconciliation.ts).
    ...trytonSalesOrderReads,
  },
  invoices: trytonInvoices,
  inventory: { getStock, reserve, findReservation, release, findManyReservations: findReservationsByReferences },
  credit: { getCustomerCredit },
  poll: {
    resource: pollResource,
    intervalMs: (settings) => settings.poll?.intervalMs,
    fetchChanges: fetchFulfilmentChanges,
  },
})
