/**
 * What reconciliation reads from the generic REST ERP: sales orders one at a time, by many
 * references at once, or a page at a time (to find orphans), and invoices. Reads only; the client
 * knows the URLs and field names (settings `reconciliation`).
 */
import type { InvoiceCapability, SalesOrderCapability } from '../../src/connector-kit/index.ts'
import { genericRestClient } from './client.ts'
import type { GenericRestSecrets, GenericRestSettings } from './settings.ts'

type Reads = Required<Pick<SalesOrderCapability<GenericRestSettings, GenericRestSecrets>, 'fetch' | 'findManyByReference' | 'listSince'>>

export const genericRestSalesOrderReads: Reads = {
  fetch: (ctx, externalId) => genericRestClient(ctx).fetchSalesOrder(externalId),
  findManyByReference: (ctx, references) => genericRestClient(ctx).findSalesOrdersByReferences(references),
  listSince: (ctx, query) => genericRestClient(ctx).listSalesOrders(query),
}

export const genericRestInvoices: InvoiceCapability<GenericRestSettings, GenericRestSecrets> = {
  list: (ctx, query) => genericRestClient(ctx).listInvoices(query),
}
