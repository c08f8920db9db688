/**
 * The approval policy as admins write it (config file `approval:` and the admin API): ordered rules,
 * each with conditions and the approval levels it requires, and what an order in a currency no rule
 * has thresholds for requires. Schemas only; evaluation is in evaluate-approval-rules.ts.
 */
import { z } from 'zod'
import { compareDecimals } from '../shared/decimal.ts'

/** Approval levels, in their usual order of escalation. */
export const approvalLevels = ['sales_manager', 'finance', 'warehouse'] as const
export const approvalLevelSchema = z.enum(approvalLevels)
export type ApprovalLevel = z.infer<typeof approvalLevelSchema>

/**
 * What an order in a currency that no rule has amount thresholds for requires, unless configured.
 * Amounts cannot be compared across currencies without exchange rates orderbridge does not have, so
 * a USD order cannot be placed on a CNY ladder: it might be of any size. The safe answer is the top
 * of the money ladder (sales manager, then finance), never "no approval". `warehouse` is not a money
 * level, so it is not included by default.
 */
export const defaultUnmatchedCurrencyLevels: readonly ApprovalLevel[] = ['sales_manager', 'finance']

const nonNegativeDecimal = /^\d+(\.\d+)?$/

/**
 * A decimal amount: a string such as "10000.00". A whole number is accepted too (YAML `10000` is
 * exact) and becomes a string; a number with a fraction is refused, because it was a float once.
 */
export const amountSchema = z.preprocess(
  (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? String(v) : v),
  z
    .string({ error: 'must be a decimal string such as "10000.00" (quote amounts with a fraction: they must not pass through a float)' })
    .regex(nonNegativeDecimal, 'must be a non-negative decimal such as "10000.00"'),
)

const bounds = ['min', 'above', 'max', 'below'] as const

/**
 * A range of decimals. `min` and `max` include their bound, `above` and `below` exclude it:
 * `{ min: "10000", max: "100000" }` holds 10000.00 and 100000.00; `{ above: "100000" }` does not
 * hold 100000.00.
 */
export const decimalRangeSchema = z
  .strictObject({
    min: amountSchema.optional().describe('at least this (inclusive)'),
    above: amountSchema.optional().describe('more than this (exclusive)'),
    max: amountSchema.optional().describe('at most this (inclusive)'),
    below: amountSchema.optional().describe('less than this (exclusive)'),
  })
  .superRefine((r, ctx) => {
    if (bounds.every((b) => r[b] === undefined)) ctx.addIssue({ code: 'custom', message: 'give at least one of min, above, max, below' })
    if (r.min !== undefined && r.above !== undefined) ctx.addIssue({ code: 'custom', path: ['above'], message: 'give min or above, not both' })
    if (r.max !== undefined && r.below !== undefined) ctx.addIssue({ code: 'custom', path: ['below'], message: 'give max or below, not both' })
    const lower = r.min ?? r.above
    const upper = r.max ?? r.below
    if (lower !== undefined && upper !== undefined) {
      const c = compareDecimals(lower, upper)
      const empty = c > 0 || (c === 0 && (r.above !== undefined || r.below !== undefined))
      if (empty) ctx.addIssue({ code: 'custom', path: [r.max !== undefined ? 'max' : 'below'], message: 'the range is empty: its upper bound is not above its lower bound' })
    }
  })
export type DecimalRange = z.infer<typeof decimalRangeSchema>

export const currencyCodeSchema = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY')

const levelListSchema = z.array(approvalLevelSchema).superRefine((levels, ctx) => {
  levels.forEach((level, i) => {
    if (levels.indexOf(level) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `${level} is listed twice` })
  })
})

export const approvalRuleSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/, 'lower-case letters, digits, _ and -')
    .max(100)
    .describe('Names the rule in evaluations, timelines and the audit log'),
  description: z.string().max(500).optional(),
  /** Every condition given must hold; a rule without conditions matches every order. */
  when: z
    .strictObject({
      amount: z
        .record(z.string(), decimalRangeSchema)
        .superRefine((m, ctx) => {
          if (!Object.keys(m).length) ctx.addIssue({ code: 'custom', message: 'name at least one currency, e.g. CNY: { min: "10000" }' })
          for (const code of Object.keys(m)) {
            if (!currencyCodeSchema.safeParse(code).success) ctx.addIssue({ code: 'custom', path: [code], message: `"${code}" is not an ISO 4217 code such as CNY` })
          }
        })
        .optional()
        .describe('The order total, per currency; an order in a currency not listed does not match'),
      customers: z.array(z.string().min(1)).min(1).optional().describe('Customer ids (customer.externalId); one must be the order customer'),
      skus: z.array(z.string().min(1)).min(1).optional().describe('Product SKUs; the rule matches when any line has one of them'),
      maxLineDiscountPercent: decimalRangeSchema.optional().describe('The largest line discount, in percent (a line without a discount counts as 0)'),
    })
    .default({}),
  require: levelListSchema.describe('The approval levels required, in the order they approve; [] for none'),
})
export type ApprovalRule = z.infer<typeof approvalRuleSchema>

/**
 * The whole policy. Rules are tried in order and the first that matches decides. When none
 * matches: an order in a currency some rule has `amount` thresholds for needs no approval (it is
 * below every threshold); an order in any other currency needs `unmatchedCurrency.require`.
 */
export const approvalPolicySchema = z
  .strictObject({
    rules: z.array(approvalRuleSchema).max(1000),
    unmatchedCurrency: z
      .strictObject({ require: levelListSchema })
      .default({ require: [...defaultUnmatchedCurrencyLevels] })
      .describe('What an order in a currency that no rule has amount thresholds for requires'),
  })
  .superRefine((policy, ctx) => {
    const seen = new Set<string>()
    policy.rules.forEach((rule, i) => {
      if (seen.has(rule.id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `duplicate rule id "${rule.id}"` })
      seen.add(rule.id)
    })
  })
export type ApprovalPolicy = z.infer<typeof approvalPolicySchema>
export type ApprovalPolicyInput = z.input<typeof approvalPolicySchema>

/**
 * What evaluation reads of an order. A canonical order (src/orders/order.schemas.ts) fits as is;
 * `discount` on a line is its discount in percent of the list price, as a decimal string.
 */
export interface ApprovalOrderFacts {
  currency: string
  /** The order total, a decimal string in `currency`. */
  total: string
  customer: { externalId: string }
  lines: readonly { sku: string; discount?: string }[]
}

export interface ApprovalEvaluation {
  /** The levels that must approve, in order; empty when none. */
  levels: ApprovalLevel[]
  /** The id of the rule that decided, or null when no rule matched. */
  matchedRule: string | null
  /** Why, for the timeline and the preview. */
  reasons: string[]
}
