/**
 * Status written back to the CRM's order through /cgi/crm/v2/data/update: each part of the update
 * goes to the SalesOrderObj field the connection names (custom fields are tenant-specific), so a
 * repeated update sets the same values again and changes nothing. Workflows are not triggered by
 * default, so a CRM workflow that pushes orders to us does not fire on our own writeback.
 *
 * Notes go to records of a configured object that looks up the order (the follow-up record
 * ActiveRecordObj is not used: how it links to an order is not in the published API docs).
 */
import { SyncFailure, type OperationContext, type OrderStatusUpdate } from '../../src/connector-kit/index.ts'
import { fxiaokeClient } from './client.ts'
import type { FxRecord } from './records.ts'
import { fxiaokeConnectorId, type FxiaokeSecrets, type FxiaokeSettings, type WritebackFields } from './settings.ts'

type Context = OperationContext<FxiaokeSettings, FxiaokeSecrets>

/** The SalesOrderObj fields one update sets; parts without a configured field are left out. */
export function statusFields(update: OrderStatusUpdate, writeback: NonNullable<FxiaokeSettings['writeback']>): FxRecord {
  const values: Record<keyof WritebackFields, string | undefined> = {
    state: writeback.values.state?.[update.state] ?? update.state,
    paymentState: update.paymentState === undefined ? undefined : (writeback.values.paymentState?.[update.paymentState] ?? update.paymentState),
    erpOrderNumber: update.erpOrderNumber,
    invoiceNumber: update.invoiceNumber,
    carrier: update.carrier,
    trackingNumber: update.trackingNumber,
    // Fxiaoke takes amounts as strings; ours are decimal strings already.
    paidAmount: update.paidAmount,
    comment: update.comment,
  }
  const fields: FxRecord = {}
  for (const [part, apiName] of Object.entries(writeback.fields) as [keyof WritebackFields, string | undefined][]) {
    const value = values[part]
    if (apiName !== undefined && value !== undefined) fields[apiName] = value
  }
  return fields
}

export async function updateOrderStatus(ctx: Context, crmOrderId: string, update: OrderStatusUpdate): Promise<void> {
  const writeback = ctx.settings.writeback
  if (!writeback) {
    // Enabled for stock only: no status field is configured, so there is nothing to write.
    if (ctx.settings.stock !== undefined) return
    throw new SyncFailure('config', 'the connection has no writeback fields, so nothing can be written to the CRM', { connectorId: fxiaokeConnectorId })
  }
  const fields = statusFields(update, writeback)
  if (!Object.keys(fields).length) return
  await fxiaokeClient(ctx).update(ctx.settings.objects.order, crmOrderId, fields, { triggerWorkFlow: writeback.triggerWorkFlow, triggerApprovalFlow: writeback.triggerApprovalFlow })
}

export async function addNote(ctx: Context, crmOrderId: string, note: { title: string; body: string }): Promise<void> {
  const notes = ctx.settings.notes
  if (!notes) throw new SyncFailure('config', 'the connection has no notes object configured, so notes cannot be added in the CRM', { connectorId: fxiaokeConnectorId })
  const client = fxiaokeClient(ctx)
  // No idempotency keys in the API: when an earlier attempt may have created the note, look for it first.
  if (notes.keyField !== undefined && ctx.mayHaveWritten) {
    const found = await client.query(notes.objectApiName, {
      offset: 0,
      limit: 1,
      filters: [{ field_name: notes.keyField, operator: 'EQ', field_values: [ctx.idempotencyKey] }],
      orders: [],
    })
    if (found.length) return
  }
  await client.create(notes.objectApiName, {
    [notes.orderField]: crmOrderId,
    [notes.titleField]: note.title,
    [notes.bodyField]: note.body,
    ...(notes.keyField !== undefined ? { [notes.keyField]: ctx.idempotencyKey } : {}),
  })
}
