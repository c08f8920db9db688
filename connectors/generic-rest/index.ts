/**
 * Generic REST ERP connector: creates and updates sales orders in any ERP with a plain JSON REST API
 * whose paths and id field are configurable. It decides between create and update; the client in
 * `client.ts` knows the URLs. It never retries by itself: the queue does, and `classify()` says how.
 */
import {
  classifyHttpError,
  defineConnector,
  type ConnectorContext,
  type Operation,
  type OperationContext,
  type RemoteRecord,
} from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { genericRestClient, genericRestConnectorId } from './client.ts'
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
  return client.createSalesOrder(input, ctx.idempotencyKey)
}

export const upsertSalesOrder: Operation<SalesOrderInput, RemoteRecord, GenericRestSettings, GenericRestSecrets> = {
  inputSchema: z.record(z.string(), z.unknown()),
  idempotency: 'native-key',
  run: runUpsert,
}

export const genericRest = defineConnector({
  manifest: {
    id: genericRestConnectorId,
    version: '0.1.0',
    displayName: 'Generic REST ERP',
    roles: ['erp'],
    settingsSchema,
    secretsSchema,
    limits: { concurrency: 8 },
  },
  check: async (ctx) => {
    await genericRestClient(ctx).health()
  },
  classify: (err) => classifyHttpError(err, genericRestConnectorId),
  salesOrders: { upsert: upsertSalesOrder, findByReference, cancel: (ctx: Context, existing: RemoteRecord) => genericRestClient(ctx).cancelSalesOrder(existing.externalId) },
})
