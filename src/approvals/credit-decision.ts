/**
 * Whether finance approval can be given automatically from the customer's credit, as the finance
 * system reports it. Pure: the caller fetches the credit (CreditCapability) and records the decision.
 * Exact decimals only; a figure that is not a decimal, or in another currency, is never auto-approved.
 */
import type { CustomerCredit } from '../connector-kit/connector.ts'
import { addDecimals, compareDecimals, isDecimalString, trimDecimal } from '../shared/decimal.ts'

export interface CreditFigures {
  currency: string
  limit: string
  outstanding: string
  order: string
  /** outstanding + order: what the customer would owe if this order is approved. */
  exposure: string
  /** limit − exposure; negative when the order would go over the limit. */
  headroom: string
  overdue: boolean
}

export interface CreditDecision {
  /** True only when finance approval may be given without a person. */
  autoApprove: boolean
  reason: string
  /** For display; absent when the figures could not be computed (not decimals, or currency mismatch). */
  figures?: CreditFigures
}

/** The timeline entry of a credit check that left finance to a person: its reason and figures. */
export const creditCheckedEventKind = 'credit_checked'

const negate = (value: string) => (value.startsWith('-') ? value.slice(1) : `-${value}`)
const show = (value: string) => trimDecimal(value, 2)

/**
 * Auto-approves finance iff outstanding + order ≤ limit (exactly: at the limit is within it), the
 * customer has nothing overdue, and the credit is in the order's currency.
 *
 * @example
 * decideCredit({ limit: '50000.00', outstanding: '30000.00', currency: 'CNY', overdue: false }, { total: '20000.00', currency: 'CNY' })
 * // → { autoApprove: true, reason: 'within the credit limit: ...', figures: { exposure: '50000.00', headroom: '0.00', ... } }
 */
export function decideCredit(credit: CustomerCredit, orderTotal: { total: string; currency: string }): CreditDecision {
  if (credit.currency !== orderTotal.currency) {
    return {
      autoApprove: false,
      reason: `the credit limit is in ${credit.currency} and the order in ${orderTotal.currency}; they cannot be compared without an exchange rate, so finance must approve`,
    }
  }
  const notDecimal = (['limit', 'outstanding'] as const).filter((k) => !isDecimalString(credit[k]))
  if (notDecimal.length || !isDecimalString(orderTotal.total)) {
    const which = [...notDecimal.map((k) => `credit ${k}`), ...(isDecimalString(orderTotal.total) ? [] : ['order total'])]
    return { autoApprove: false, reason: `the ${which.join(' and ')} ${which.length === 1 ? 'is' : 'are'} not a decimal amount, so finance must approve` }
  }
  const exposure = addDecimals([credit.outstanding, orderTotal.total])
  const headroom = addDecimals([credit.limit, negate(exposure)])
  const figures: CreditFigures = {
    currency: credit.currency,
    limit: show(credit.limit),
    outstanding: show(credit.outstanding),
    order: show(orderTotal.total),
    exposure: show(exposure),
    headroom: show(headroom),
    overdue: credit.overdue,
  }
  const within = compareDecimals(exposure, credit.limit) <= 0
  const sums = `outstanding ${figures.outstanding} + order ${figures.order} = ${figures.exposure} ${figures.currency}, limit ${figures.limit}`
  if (credit.overdue) {
    return { autoApprove: false, figures, reason: `the customer has overdue invoices (${sums}), so finance must approve` }
  }
  if (!within) return { autoApprove: false, figures, reason: `over the credit limit by ${show(negate(headroom))} ${figures.currency} (${sums}), so finance must approve` }
  return { autoApprove: true, figures, reason: `within the credit limit: ${sums}` }
}
