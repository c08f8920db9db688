/**
 * The order lines an outbound message never carries. An outbound message holds only the Order's own
 * fields; after the event is stored (in the normalize worker, never while Salesforce waits for its
 * Ack), one SOQL query reads the Order's OrderItems and its Account, and they are attached to the
 * stored document in the REST shape the inbound mapping reads:
 *
 *   "Account":    { "attributes": {…}, "Id": "001…", "Name": "…" },
 *   "OrderItems": { "totalSize": 2, "done": true, "records": [ { "attributes": {…}, "Id": "802…",
 *                   "Product2": { "attributes": {…}, "ProductCode": "…" }, "Quantity": "2.0", "UnitPrice": "350.00" } ] }
 *
 * Numbers stay the text Salesforce wrote, like every value of the outbound message. A subquery with
 * more items than one answer holds is completed through its `nextRecordsUrl`s. The failures are
 * Salesforce's, classified by `classify()`: a transient one retries the event, a permanent one (the
 * Order was deleted, a configured field does not exist) puts it in needs-attention.
 */
import { SyncFailure, type ConnectorContext, type EnrichmentCapability } from '../../src/connector-kit/index.ts'
import { recordId, salesforceClient } from './client.ts'
import { salesforceConnectorId, type SalesforceSecrets, type SalesforceSettings } from './settings.ts'

/** A runaway locator chain ends here: 100 answers of child records are far more items than an order has. */
export const maxItemPages = 100

/** The one query: the Order's Account and its OrderItems, in their order on the Order. */
export function orderLinesQuery(orderId: string, skuField: string): string {
  const itemFields = [...new Set(['Id', skuField, 'Quantity', 'UnitPrice'])]
  return `SELECT Id, Account.Id, Account.Name, (SELECT ${itemFields.join(', ')} FROM OrderItems ORDER BY OrderItemNumber) FROM Order WHERE Id = '${recordId(orderId)}'`
}

const failure = (kind: 'not_found' | 'data' | 'bug', message: string) => new SyncFailure(kind, message, { connectorId: salesforceConnectorId })

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)

/** Reads the Order's lines and Account and returns the document with them attached. */
export async function enrichOrder(
  ctx: ConnectorContext<SalesforceSettings, SalesforceSecrets>,
  event: { externalId: string; document: Record<string, unknown> },
): Promise<Record<string, unknown>> {
  const client = salesforceClient(ctx)
  const answer = await client.query(orderLinesQuery(event.externalId, ctx.settings.skuField))
  const order = answer.records[0]
  if (!order) throw failure('not_found', `Salesforce has no Order ${event.externalId}: it was deleted, or the integration user may not see it`)

  // A subquery without rows answers null, not an empty result.
  const items = order.OrderItems ?? { totalSize: 0, done: true, records: [] }
  if (!isRecord(items) || !Array.isArray(items.records)) throw failure('bug', 'Salesforce answered OrderItems that are not a query result')
  const records = [...(items.records as Record<string, unknown>[])]
  let done = items.done === true
  let next = items.nextRecordsUrl
  for (let pages = 1; !done; pages++) {
    if (typeof next !== 'string') throw failure('bug', `Salesforce answered part of Order ${event.externalId}'s OrderItems without a nextRecordsUrl`)
    if (pages >= maxItemPages) throw failure('data', `Order ${event.externalId} has more OrderItems than ${maxItemPages} pages hold`)
    const more = await client.queryMore(next)
    if (!more.done && more.records.length === 0) throw failure('bug', `Salesforce answered an empty page of Order ${event.externalId}'s OrderItems that is not the last`)
    records.push(...more.records)
    done = more.done
    next = more.nextRecordsUrl
  }

  const account = isRecord(order.Account) ? { Account: order.Account } : {}
  return { ...event.document, ...account, OrderItems: { totalSize: records.length, done: true, records } }
}

export const salesforceOrderLines: EnrichmentCapability<SalesforceSettings, SalesforceSecrets> = {
  enrich: (ctx, event) => enrichOrder(ctx, event),
}
