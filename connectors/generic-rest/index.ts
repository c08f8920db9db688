/**
 * Generic REST ERP connector: creates and updates sales orders in any ERP with a plain JSON REST API
 * whose paths and id field are configurable, reads customer credit, and turns the ERP's signed
 * invoice and payment webhooks into fulfilment events. It decides between create and update; the
 * client in `client.ts` knows the URLs. It never retries by itself: the queue does, and `classify()`
 * says how.
 */
import {
  classifyHttpError,
  defineConnector,
  type ConnectorContext,
  type Operation,
  type OperationContext,
  type RemoteRecord,
  type TargetField,
} from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { genericRestClient, genericRestConnectorId } from './client.ts'
import { erpEventToInbound, erpWebhookBodySchema } from './events.ts'
import { genericRestInvoices, genericRestSalesOrderReads } from './reconciliation.ts'
import { secretsSchema, settingsSchema, type GenericRestSecrets, type GenericRestSettings } from './settings.ts'

export { genericRestConnectorId } from './client.ts'

type Context = ConnectorContext<GenericRestSettings, GenericRestSecrets>
type SalesOrderInput = Record<string, unknown>

async function findByReference(ctx: Context, reference: string): Promise<RemoteRecord | undefined> {
  const found = await genericRestClient(ctx).findSalesOrdersByReference(reference)
  if (found.length > 1) {
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: genericRestConnectorId, reference, matches: found.length }, 'ERP holds several sales orders under one reference; using the first')
  }
  return found[0]
}

async function runUpsert(
  ctx: OperationContext<GenericRestSettings, GenericRestSecrets>,
  input: SalesOrderInput,
  existing: RemoteRecord | undefined,
): Promise<RemoteRecord> {
  const client = genericRestClient(ctx)
  if (existing) {
    await client.updateSalesOrder(existing.externalId, input)
    return { externalId: existing.externalId }
  }
  if (input.reference !== ctx.reference) {
    // The mapping must put our reference in the document, or a retry's lookup cannot find the order.
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: genericRestConnectorId, reference: ctx.reference }, 'sales order document does not carry our reference')
  }
  if (ctx.mayHaveWritten) {
    // An earlier attempt may have created the order and lost the answer: look before creating again.
    const found = await findByReference(ctx, ctx.reference)
    if (found) {
      await client.updateSalesOrder(found.externalId, input)
      return found
    }
  }
  const created = await client.createSalesOrder(input, ctx.idempotencyKey)
  if (!ctx.mayHaveWritten || (await client.fetchSalesOrder(created.externalId))) return created
  // We just looked and found nothing under our reference, yet the create answered with an id: the ERP
  // replayed the answer it keeps for this key, naming an order deleted since (a re-sync after
  // reconciliation found it missing). Create it under a key of its own, which a retry repeats.
  return client.createSalesOrder(input, `${ctx.idempotencyKey}-after-${created.externalId}`)
}

export const upsertSalesOrder: Operation<SalesOrderInput, RemoteRecord, GenericRestSettings, GenericRestSecrets> = {
  inputSchema: z.record(z.string(), z.unknown()),
  idempotency: 'native-key',
  run: runUpsert,
}

/**
 * The sales-order fields the mapping editor offers. The connector sends the mapped document as it is,
 * so only `reference` is its own requirement; the rest is the REST ERP API's convention (what the
 * demo ERP and the shipped mapping use). The field that holds the ERP's id (`salesOrders.idField`)
 * is the ERP's to assign and is never offered.
 */
export async function describeGenericRestFields(ctx: Context, target: string): Promise<TargetField[]> {
  if (target !== 'salesOrder') return []
  const { findByReferencePath, idField } = ctx.settings.salesOrders
  const fields: TargetField[] = [
    {
      path: 'reference',
      type: 'string',
      required: true,
      description: `Our order id. The ERP must store and return it: ${findByReferencePath} finds the order by it, so a retry never creates a second one.`,
    },
    { path: 'customerCode', type: 'string', required: false, description: `The ERP's customer id; the credit check reads ${ctx.settings.credit.customerCreditPath} with it.` },
    { path: 'customerName', type: 'string', required: false },
    { path: 'currency', type: 'string', required: true, description: 'ISO 4217 code, e.g. CNY.' },
    { path: 'total', type: 'decimal', required: false, description: 'Order total as a decimal string; counts towards the customer\'s outstanding credit.' },
    { path: 'salesRep', type: 'string', required: false },
    { path: 'crmOrderNumber', type: 'string', required: false, description: 'The CRM\'s order number, for people looking at the ERP.' },
    { path: 'lines', type: 'array', required: true, description: 'At least one line.' },
    { path: 'lines[].itemCode', type: 'string', required: true, description: 'The ERP\'s item code (SKU).' },
    { path: 'lines[].qty', type: 'decimal', required: true },
    { path: 'lines[].price', type: 'decimal', required: true, description: 'Unit price as a decimal string.' },
    { path: 'lines[].amount', type: 'decimal', required: false, description: 'Line total as a decimal string.' },
  ]
  return fields.filter((field) => field.path !== idField)
}

export const genericRest = defineConnector({
  manifest: {
    id: genericRestConnectorId,
    version: '0.2.0',
    displayName: 'Generic REST ERP',
    roles: ['erp'],
    settingsSchema,
    secretsSchema,
    limits: { concurrency: 8 },
  },
  // The health endpoint is usually open; a lookup by reference proves the token too.
  check: async (ctx) => {
    const client = genericRestClient(ctx)
    await client.health()
    await client.findSalesOrdersByReference('orderbridge-connection-check')
  },
  classify: (err) => classifyHttpError(err, genericRestConnectorId),
  describeFields: describeGenericRestFields,
  salesOrders: { upsert: upsertSalesOrder, findByReference, cancel: (ctx: Context, existing: RemoteRecord) => genericRestClient(ctx).cancelSalesOrder(existing.externalId), ...genericRestSalesOrderReads },
  invoices: genericRestInvoices,
  credit: { getCustomerCredit: (ctx, customerId) => genericRestClient(ctx).customerCredit(customerId) },
  webhooks: {
    verification: 'standard-webhooks',
    bodySchema: erpWebhookBodySchema,
    toEvent: erpEventToInbound,
  },
})
