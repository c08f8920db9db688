/**
 * Tell the CRM where its order stands: state, payment state, ERP order number, invoice, tracking
 * and amount paid, through the CRM connection's `updateOrderStatus`; in `comment`, why its latest
 * change was refused, or why the order was rejected. The update carries the whole current status,
 * so one call brings the CRM up to date however many changes it missed.
 */
import { SyncFailure, type OrderStatusUpdate } from '../connector-kit/index.ts'
import { callRemote, fail, operationContext, release, runLeasedStep, settleLink, settleStep, type Attempt, type StepOutcome, type SyncDeps } from './step-runtime.ts'

export const writeBackStatusStepId = 'write-back-status'

export function writeBackStatus(deps: SyncDeps, attempt: Attempt): Promise<StepOutcome> {
  return runLeasedStep(deps, attempt, async (step) => {
    const { order, link } = step
    const crm = step.connection.connector.crm
    if (!crm) throw await fail(deps, step, new SyncFailure('config', `connection ${step.connection.id} cannot take status updates`))
    if (link.lastSyncedVersion >= link.targetVersion) {
      await release(deps, step, { caughtUp: true })
      return { result: 'skipped', reason: `status ${link.targetVersion} is already written back` }
    }
    const update = await currentStatus(deps, order.id)
    const ctx = operationContext(deps, step, 'crm.status')
    const call = await callRemote(deps, step, ctx, () => crm.updateOrderStatus(ctx, order.externalId, update))
    await settleStep(deps, step, async (tx, _locked, work, links) => {
      settleLink(links, step, [call], { externalId: order.externalId, done: 'synced' })
      work.events.push({ orderId: order.id, kind: 'external_call', cause: `${step.connection.id}: status ${update.state} written back`, detail: { ...update } })
    })
    return { result: 'synced', externalId: order.externalId }
  })
}

/** The order's status as the CRM should see it now, from the database. */
async function currentStatus(deps: SyncDeps, orderId: string): Promise<OrderStatusUpdate> {
  const [row] = await deps.db.query<{
    state: string
    payment_state: string
    amount_paid: string
    currency: string
    erp_number: string | null
    invoice_number: string | null
    carrier: string | null
    tracking_number: string | null
    refusal: string | null
    rejection: string | null
  }>(
    `select o.state, o.payment_state, o.amount_paid::text as amount_paid, o.currency,
       (select external_id from links where order_id = o.id and operation = 'salesOrders.upsert') as erp_number,
       (select invoice_number from invoices where order_id = o.id order by id desc limit 1) as invoice_number,
       (select carrier from shipments where order_id = o.id order by id desc limit 1) as carrier,
       (select tracking_number from shipments where order_id = o.id order by id desc limit 1) as tracking_number,
       (select detail ->> 'reason' from order_events where order_id = o.id and kind = 'refused' and (detail ->> 'sourceVersion')::bigint > o.source_version
         order by id desc limit 1) as refusal,
       (select comment from approvals where order_id = o.id and status = 'rejected' limit 1) as rejection
     from orders o where o.id = $1`,
    [orderId],
  )
  const r = row!
  // A refused change is newer than the order's version (the order keeps what it had) until the CRM
  // sends one that is applied, so every write-back until then says why it was not.
  const comment = r.refusal ? `change refused: ${r.refusal}` : r.rejection
  return {
    state: r.state,
    paymentState: r.payment_state,
    paidAmount: r.amount_paid,
    currency: r.currency,
    ...(r.erp_number ? { erpOrderNumber: r.erp_number } : {}),
    ...(r.invoice_number ? { invoiceNumber: r.invoice_number } : {}),
    ...(r.carrier ? { carrier: r.carrier } : {}),
    ...(r.tracking_number ? { trackingNumber: r.tracking_number } : {}),
    ...(comment ? { comment } : {}),
  }
}
