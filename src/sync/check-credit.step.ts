/**
 * The credit check for an order that needs finance approval: the finance system's figures decide
 * whether finance approval is given automatically (recorded as such) or waits for a person, who
 * then sees the figures. When the system cannot be reached the step retries and the order waits:
 * it is never approved blind. An answer that arrives after a person decided, or after the order
 * changed, is not recorded: it is about a decision already made, or a version since replaced.
 */
import { SyncFailure } from '../connector-kit/index.ts'
import { creditCheckedEventKind, decideCredit } from '../approvals/credit-decision.ts'
import { approveLevel } from '../approvals/approval-decisions.ts'
import { callRemote, fail, operationContext, release, runLeasedStep, settleLink, settleStep, type Attempt, type StepOutcome, type SyncDeps } from './step-runtime.ts'

export const checkCreditStepId = 'check-credit'

export function checkCredit(deps: SyncDeps, attempt: Attempt): Promise<StepOutcome> {
  return runLeasedStep(deps, attempt, async (step) => {
    const { order } = step
    const credit = step.connection.connector.credit
    if (!credit) throw await fail(deps, step, new SyncFailure('config', `connection ${step.connection.id} cannot report customer credit`))
    const [pending] = await deps.db.query(`select 1 from approvals where order_id = $1 and level = 'finance' and status = 'pending'`, [order.id])
    if (!pending || order.state !== 'pending_approval') {
      await release(deps, step)
      return { result: 'skipped', reason: 'no finance approval is pending' }
    }
    const ctx = operationContext(deps, step, 'credit.check')
    const call = await callRemote(deps, step, ctx, () => credit.getCustomerCredit(ctx, order.document.customer.externalId))
    const decision = decideCredit(call.value, { total: order.total, currency: order.currency })

    await settleStep(deps, step, async (tx, locked, work, links) => {
      settleLink(links, step, [call], { externalId: null, done: 'synced' })
      // The call took time: decide only if finance still waits for this version of the order. A
      // newer version asked for its own check when its approvals started again.
      const [stillPending] = await tx.query(`select 1 from approvals where order_id = $1 and level = 'finance' and status = 'pending'`, [order.id])
      if (!locked || !stillPending || locked.state !== 'pending_approval' || locked.sourceVersion !== order.sourceVersion) return
      await tx.query(`update approvals set credit = $2 where order_id = $1 and level = 'finance'`, [order.id, JSON.stringify({ ...decision.figures, reason: decision.reason, autoApprove: decision.autoApprove })])
      if (decision.autoApprove) {
        await approveLevel(tx, deps.lifecycle, work, locked, { level: 'finance', by: `${step.connection.id} credit check`, automatic: true, comment: decision.reason })
      } else {
        work.events.push({ orderId: order.id, kind: creditCheckedEventKind, cause: `${step.connection.id} credit check`, detail: { reason: decision.reason, ...(decision.figures ? { figures: decision.figures } : {}) } })
      }
    })
    return { result: 'synced' }
  })
}
