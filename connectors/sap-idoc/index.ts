/**
 * SAP IDoc connector, role `erp`: sends sales orders to SAP ERP / S/4HANA as ORDERS05 IDocs over
 * HTTP (SOAP to /sap/bc/srt/idoc or SAP Cloud Integration, or bare IDoc XML to /sap/bc/idoc_xml or
 * a middleware endpoint). A new order goes as message type ORDERS, a new version of it as ORDCHG.
 * The external id is the IDoc number SAP answers with.
 *
 * IDoc inbound is asynchronous and has no idempotency of its own: SAP creates the sales order when
 * it processes the IDoc, and a second IDoc makes a second order. Our reference travels as the
 * customer's purchase order number (E1EDK02 qualifier 001, BELNR) and every attempt gets its own
 * DOCNUM. After an attempt whose answer was lost, the connector asks the configured status service
 * for IDocs with our BELNR before sending again, and without one it does not send blind (unless
 * told to). A cancel is an ORDCHG whose header action is 003 (delete), sent under a DOCNUM and an
 * exactly-once message id (ARCKEY) that are the same on every retry. It never retries by itself.
 *
 * Where configured (settings `inbound`), it also reads what SAP sends back to
 * `POST /webhooks/<connection>` (customWebhooks, inbound.ts): DESADV → shipped (and delivered),
 * INVOIC → invoiced, ORDRSP checked and acknowledged.
 */
import { SyncFailure, defineConnector, type Operation, type OperationContext, type RemoteRecord } from '../../src/connector-kit/index.ts'
import { sapIdocClient, type SapIdocClient, type SapIdocContext } from './client.ts'
import { classifySapIdocError, sapIdocConnectorId } from './errors.ts'
import { belnrOf, cancellationDocument, docnumFor, messageIdFor, orders05Fields, orders05InputSchema, withReference, type Orders05Document } from './idoc.ts'
import { acknowledgeSapIdocDelivery, inboundContentTypes, receiveSapIdocDelivery, refuseSapIdocDelivery } from './inbound.ts'
import { secretsSchema, settingsSchema, type SapIdocSecrets, type SapIdocSettings } from './settings.ts'

export { sapIdocConnectorId } from './errors.ts'

/** The IDoc that created the order: of the create message type, the lowest number; else the lowest of any. */
async function lookupOrder(ctx: SapIdocContext, client: SapIdocClient, reference: string): Promise<RemoteRecord | undefined> {
  const entries = await client.lookup(belnrOf(reference))
  if (entries.length === 0) return undefined
  const creates = entries.filter((e) => e.messageType === undefined || e.messageType === ctx.settings.controlRecord.messageType)
  const [first] = (creates.length ? creates : entries).map((e) => e.idocNumber).sort()
  return first === undefined ? undefined : { externalId: first }
}

async function findByReference(ctx: SapIdocContext, reference: string): Promise<RemoteRecord | undefined> {
  return lookupOrder(ctx, sapIdocClient(ctx), reference)
}

async function runUpsert(ctx: OperationContext<SapIdocSettings, SapIdocSecrets>, input: Orders05Document, existing: RemoteRecord | undefined): Promise<RemoteRecord> {
  const client = sapIdocClient(ctx)
  const { controlRecord } = ctx.settings
  const belnr = belnrOf(ctx.reference)
  const { document, replaced } = withReference(input, ctx.reference, existing !== undefined)
  if (replaced) {
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId: sapIdocConnectorId, reference: ctx.reference }, 'the IDoc carried another purchase order number in E1EDK02 001; our reference replaces it')
  }
  if (existing) {
    // A new version: the change message (ORDCHG) finds the sales order by sold-to party and BELNR.
    await client.send(document, controlRecord.changeMessageType)
    return { externalId: existing.externalId }
  }
  if (ctx.mayHaveWritten) {
    if (ctx.settings.statusLookup) {
      const found = await lookupOrder(ctx, client, ctx.reference)
      if (found) return found
    } else if (ctx.settings.whenUncertain === 'refuse') {
      throw new SyncFailure(
        'data',
        `an earlier attempt may have delivered the IDoc for purchase order number ${belnr}, and without a status service the connector cannot tell; check for it in SAP (WE02, BELNR ${belnr}) and configure statusLookup, or set whenUncertain: resend`,
        { connectorId: sapIdocConnectorId },
      )
    } else {
      ctx.log.warn({ connectionId: ctx.connectionId, connectorId: sapIdocConnectorId, reference: ctx.reference }, 'sending the IDoc again without knowing whether the earlier one arrived (whenUncertain: resend)')
    }
  }
  const sent = await client.send(document, controlRecord.messageType)
  return { externalId: sent.idocNumber ?? sent.docnum }
}

export const upsertSalesOrder: Operation<Orders05Document, RemoteRecord, SapIdocSettings, SapIdocSecrets> = {
  inputSchema: orders05InputSchema,
  // Holds with statusLookup (a lookup before any resend) and with whenUncertain: refuse (no blind
  // resend); whenUncertain: resend gives it up, as the README says.
  idempotency: 'lookup-by-reference',
  run: runUpsert,
}

/**
 * Deletes the sales order through the order change IDoc: ORDCHG with E1EDK01 ACTION 003 and our
 * purchase order number, plus SAP's sales order number when the status service names it (SAP then
 * finds the order by it; otherwise by purchase order number and sold-to party). The DOCNUM and the
 * message id (ARCKEY) come from the idempotency key, so a retry repeats the same IDoc and SAP's
 * SOAP inbound takes it once. Like every IDoc, HTTP 200 means SAP took it; whether the order could
 * be deleted (no deliveries yet) SAP shows in the IDoc's status.
 */
async function cancelSalesOrder(ctx: OperationContext<SapIdocSettings, SapIdocSecrets>, existing: RemoteRecord): Promise<void> {
  const client = sapIdocClient(ctx)
  let salesOrder: string | undefined
  if (ctx.settings.statusLookup) {
    const entries = await client.lookup(belnrOf(ctx.reference))
    const create = entries.filter((e) => e.salesOrder && (e.messageType === undefined || e.messageType === ctx.settings.controlRecord.messageType)).sort((a, b) => a.idocNumber.localeCompare(b.idocNumber))[0]
    salesOrder = (create ?? entries.find((e) => e.salesOrder))?.salesOrder
  }
  const sent = await client.send(cancellationDocument(ctx.reference, salesOrder), ctx.settings.controlRecord.changeMessageType, {
    docnum: docnumFor(ctx.idempotencyKey),
    messageId: messageIdFor(ctx.idempotencyKey),
  })
  ctx.log.info(
    { connectionId: ctx.connectionId, connectorId: sapIdocConnectorId, reference: ctx.reference, externalId: existing.externalId, docnum: sent.docnum, idocNumber: sent.idocNumber, bySalesOrder: salesOrder !== undefined },
    'sent the order change IDoc that deletes the sales order (ACTION 003)',
  )
}

export const sapIdoc = defineConnector({
  manifest: {
    id: sapIdocConnectorId,
    version: '0.1.0',
    displayName: 'SAP IDoc (ORDERS05)',
    roles: ['erp'],
    settingsSchema,
    secretsSchema,
    limits: { concurrency: 4 },
  },
  check: (ctx) => sapIdocClient(ctx).check(),
  classify: (err) => classifySapIdocError(err, sapIdocConnectorId),
  salesOrders: { upsert: upsertSalesOrder, findByReference, cancel: cancelSalesOrder },
  customWebhooks: {
    verification: 'custom',
    contentTypes: inboundContentTypes,
    receive: receiveSapIdocDelivery,
    acknowledge: acknowledgeSapIdocDelivery,
    refuse: refuseSapIdocDelivery,
  },
  describeFields: async (_ctx, target) => (target === 'salesOrder' ? orders05Fields() : []),
})
