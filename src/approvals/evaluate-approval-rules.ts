/**
 * Which approvals an order needs, from the approval policy: a pure function of the policy and the
 * order. No I/O, no clock; amounts are compared as exact decimals, never as floats.
 */
import { compareDecimals, isDecimalString } from '../shared/decimal.ts'
import type { ApprovalEvaluation, ApprovalOrderFacts, ApprovalPolicy, ApprovalRule, DecimalRange } from './approval-rules.schemas.ts'

/** The currencies some rule has amount thresholds for. */
export function coveredCurrencies(policy: Pick<ApprovalPolicy, 'rules'>): Set<string> {
  return new Set(policy.rules.flatMap((r) => Object.keys(r.when.amount ?? {})))
}

/** True when `value` lies in `range` (see decimalRangeSchema for which bounds are inclusive). */
export function inRange(value: string, range: DecimalRange): boolean {
  if (range.min !== undefined && compareDecimals(value, range.min) < 0) return false
  if (range.above !== undefined && compareDecimals(value, range.above) <= 0) return false
  if (range.max !== undefined && compareDecimals(value, range.max) > 0) return false
  if (range.below !== undefined && compareDecimals(value, range.below) >= 0) return false
  return true
}

/** `at least 10000 and at most 100000`: a range as a reason reads it. */
export function describeRange(range: DecimalRange): string {
  const parts: string[] = []
  if (range.min !== undefined) parts.push(`at least ${range.min}`)
  if (range.above !== undefined) parts.push(`above ${range.above}`)
  if (range.max !== undefined) parts.push(`at most ${range.max}`)
  if (range.below !== undefined) parts.push(`below ${range.below}`)
  return parts.join(' and ')
}

/** The largest line discount in percent ("0" when no line has one), or undefined when one is not a decimal. */
function largestDiscount(order: ApprovalOrderFacts): string | undefined {
  let largest = '0'
  for (const line of order.lines) {
    if (line.discount === undefined) continue
    if (!isDecimalString(line.discount)) return undefined
    if (compareDecimals(line.discount, largest) > 0) largest = line.discount
  }
  return largest
}

/** Why the rule matches the order, one reason per condition; undefined when it does not match. */
function matchRule(rule: ApprovalRule, order: ApprovalOrderFacts): string[] | undefined {
  const reasons: string[] = []
  const { amount, customers, skus, maxLineDiscountPercent } = rule.when
  if (amount) {
    const range = amount[order.currency]
    if (!range || !inRange(order.total, range)) return undefined
    reasons.push(`total ${order.total} ${order.currency} is ${describeRange(range)}`)
  }
  if (customers) {
    if (!customers.includes(order.customer.externalId)) return undefined
    reasons.push(`customer ${order.customer.externalId} is listed`)
  }
  if (skus) {
    const listed = [...new Set(order.lines.map((l) => l.sku).filter((sku) => skus.includes(sku)))]
    if (!listed.length) return undefined
    reasons.push(`${listed.length === 1 ? 'SKU' : 'SKUs'} ${listed.join(', ')} ${listed.length === 1 ? 'is' : 'are'} listed`)
  }
  if (maxLineDiscountPercent) {
    const largest = largestDiscount(order)
    // A discount that cannot be read cannot be shown to be small: the rule applies (the safe side).
    if (largest === undefined) reasons.push('a line discount is not a decimal, so it cannot be shown to be within bounds')
    else if (!inRange(largest, maxLineDiscountPercent)) return undefined
    else reasons.push(`the largest line discount, ${largest}%, is ${describeRange(maxLineDiscountPercent)}`)
  }
  if (!reasons.length) reasons.push('the rule has no conditions')
  return reasons
}

/**
 * The approvals `order` needs under `policy`. Rules are tried in order; the first whose every
 * condition holds decides, and its `require` list (possibly empty) is the answer. When none
 * matches, an order in a currency that some rule has amount thresholds for needs no approval; an
 * order in any other currency needs `policy.unmatchedCurrency.require`.
 *
 * @example
 * evaluateApprovalRules(policy, { currency: 'CNY', total: '10000.00', customer: { externalId: 'ACC-7' }, lines: [{ sku: 'SKU-1' }] })
 * // → { levels: ['sales_manager'], matchedRule: 'cny-mid', reasons: ['rule "cny-mid" matched and requires sales_manager', 'total 10000.00 CNY is at least 10000 and below 100000'] }
 */
export function evaluateApprovalRules(policy: ApprovalPolicy, order: ApprovalOrderFacts): ApprovalEvaluation {
  const unmatched = policy.unmatchedCurrency.require
  if (!isDecimalString(order.total)) {
    return { levels: [...unmatched], matchedRule: null, reasons: [`the order total "${order.total}" is not a decimal, so the unmatched-currency levels apply`] }
  }
  for (const rule of policy.rules) {
    const why = matchRule(rule, order)
    if (!why) continue
    const requires = rule.require.length ? `requires ${rule.require.join(', then ')}` : 'requires no approval'
    return { levels: [...rule.require], matchedRule: rule.id, reasons: [`rule "${rule.id}" matched and ${requires}`, ...why] }
  }
  if (coveredCurrencies(policy).has(order.currency)) {
    return { levels: [], matchedRule: null, reasons: [`no rule matched ${order.total} ${order.currency}: no approval is required`] }
  }
  const levels = unmatched.length ? unmatched.join(', then ') : 'no approval'
  return {
    levels: [...unmatched],
    matchedRule: null,
    reasons: [`no rule has amount thresholds in ${order.currency} and no rule matched; amounts cannot be compared across currencies, so the unmatched-currency policy requires ${levels}`],
  }
}
