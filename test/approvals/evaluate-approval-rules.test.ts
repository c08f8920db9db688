/**
 * Approval rules as a pure function: the amount ladder per currency with its exact decimal edges,
 * customer, SKU and discount conditions, first match wins, the unmatched-currency default, and the
 * schema's errors with their field paths.
 */
import { describe, expect, it } from 'vitest'
import { approvalPolicySchema, type ApprovalOrderFacts } from '../../src/approvals/approval-rules.schemas.ts'
import { parseApprovalPolicy, ApprovalRulesRefusal } from '../../src/approvals/approval-rule-versions.ts'
import { evaluateApprovalRules } from '../../src/approvals/evaluate-approval-rules.ts'
import { withTotals } from '../../src/orders/order.schemas.ts'
import { examplePolicy } from './example-policy.ts'

const policy = approvalPolicySchema.parse(examplePolicy)

const order = (total: string, more: Partial<ApprovalOrderFacts> = {}): ApprovalOrderFacts => ({
  currency: 'CNY',
  total,
  customer: { externalId: 'ACC-7' },
  lines: [{ sku: 'SKU-100' }],
  ...more,
})

describe('the CNY amount ladder', () => {
  it.each([
    ['0.00', [], 'cny-small'],
    ['9999.99', [], 'cny-small'],
    ['9999.999', [], 'cny-small'],
    ['10000', ['sales_manager'], 'cny-mid'],
    ['10000.00', ['sales_manager'], 'cny-mid'],
    ['10000.000', ['sales_manager'], 'cny-mid'],
    ['10000.01', ['sales_manager'], 'cny-mid'],
    ['100000.00', ['sales_manager'], 'cny-mid'],
    ['100000.001', ['sales_manager', 'finance'], 'cny-large'],
    ['100000.01', ['sales_manager', 'finance'], 'cny-large'],
    ['99999999999999999999.99', ['sales_manager', 'finance'], 'cny-large'],
  ])('%s CNY needs %j (rule %s)', (total, levels, rule) => {
    const result = evaluateApprovalRules(policy, order(total))
    expect(result.levels).toEqual(levels)
    expect(result.matchedRule).toBe(rule)
  })

  it('says why, with the figures', () => {
    expect(evaluateApprovalRules(policy, order('10000.00')).reasons).toEqual([
      'rule "cny-mid" matched and requires sales_manager',
      'total 10000.00 CNY is at least 10000 and at most 100000',
    ])
    expect(evaluateApprovalRules(policy, order('5.00')).reasons[0]).toBe('rule "cny-small" matched and requires no approval')
  })

  it('works on a canonical order with its computed total', () => {
    const canonical = withTotals({ externalId: 'SO-1', customer: { externalId: 'ACC-7' }, currency: 'CNY', lines: [{ sku: 'SKU-1', quantity: '3', unitPrice: '3333.34' }] })
    expect(canonical.total).toBe('10000.02')
    expect(evaluateApprovalRules(policy, canonical)).toMatchObject({ levels: ['sales_manager'], matchedRule: 'cny-mid' })
  })
})

describe('currencies', () => {
  it('uses the ladder of the order currency only', () => {
    expect(evaluateApprovalRules(policy, order('15000', { currency: 'USD' }))).toMatchObject({ levels: ['sales_manager', 'finance'], matchedRule: 'usd-large' })
    // USD has thresholds, so an order below them needs nothing.
    expect(evaluateApprovalRules(policy, order('14999.99', { currency: 'USD' }))).toEqual({
      levels: [],
      matchedRule: null,
      reasons: ['no rule matched 14999.99 USD: no approval is required'],
    })
  })

  it('holds an order in a currency no rule has thresholds for at the top of the money ladder', () => {
    const result = evaluateApprovalRules(policy, order('1.00', { currency: 'EUR' }))
    expect(result.levels).toEqual(['sales_manager', 'finance'])
    expect(result.matchedRule).toBeNull()
    expect(result.reasons[0]).toContain('no rule has amount thresholds in EUR')
  })

  it('takes the unmatched-currency levels from the policy when configured', () => {
    const custom = approvalPolicySchema.parse({ ...examplePolicy, unmatchedCurrency: { require: ['finance'] } })
    expect(evaluateApprovalRules(custom, order('1.00', { currency: 'EUR' })).levels).toEqual(['finance'])
    const none = approvalPolicySchema.parse({ ...examplePolicy, unmatchedCurrency: { require: [] } })
    expect(evaluateApprovalRules(none, order('1.00', { currency: 'EUR' })).levels).toEqual([])
  })

  it('treats an empty policy as covering no currency', () => {
    const empty = approvalPolicySchema.parse({ rules: [] })
    expect(evaluateApprovalRules(empty, order('1.00')).levels).toEqual(['sales_manager', 'finance'])
  })

  it('holds an order whose total is not a decimal rather than guessing', () => {
    expect(evaluateApprovalRules(policy, order('1e6')).levels).toEqual(['sales_manager', 'finance'])
  })
})

describe('customer, product and discount rules', () => {
  it('matches listed customers ahead of the amount ladder (first match wins)', () => {
    const result = evaluateApprovalRules(policy, order('5.00', { customer: { externalId: 'ACC-NEW' } }))
    expect(result).toEqual({
      levels: ['sales_manager', 'finance'],
      matchedRule: 'blocked-customer',
      reasons: ['rule "blocked-customer" matched and requires sales_manager, then finance', 'customer ACC-NEW is listed'],
    })
  })

  it('matches when any line has a listed SKU', () => {
    const result = evaluateApprovalRules(policy, order('5.00', { lines: [{ sku: 'SKU-1' }, { sku: 'SKU-HAZ' }, { sku: 'SKU-HAZ' }] }))
    expect(result).toMatchObject({ levels: ['warehouse'], matchedRule: 'controlled-sku' })
    expect(result.reasons[1]).toBe('SKU SKU-HAZ is listed')
  })

  it.each([
    [undefined, 'cny-small'],
    ['0', 'cny-small'],
    ['15', 'cny-small'],
    ['15.00', 'cny-small'],
    ['15.01', 'deep-discount'],
    ['40', 'deep-discount'],
  ])('a line discount of %s%% → %s', (discount, rule) => {
    const lines = [{ sku: 'SKU-1', discount: '5' }, { sku: 'SKU-2', ...(discount === undefined ? {} : { discount }) }]
    expect(evaluateApprovalRules(policy, order('5.00', { lines })).matchedRule).toBe(rule)
  })

  it('applies a discount rule when a discount cannot be read (the safe side)', () => {
    expect(evaluateApprovalRules(policy, order('5.00', { lines: [{ sku: 'SKU-1', discount: 'a lot' }] })).matchedRule).toBe('deep-discount')
  })

  it('needs every condition of a rule to hold', () => {
    const both = approvalPolicySchema.parse({
      rules: [{ id: 'big-acc7', when: { customers: ['ACC-7'], amount: { CNY: { min: '50000' } } }, require: ['finance'] }, { id: 'rest', when: { amount: { CNY: { min: '0' } } }, require: [] }],
    })
    expect(evaluateApprovalRules(both, order('50000.00')).matchedRule).toBe('big-acc7')
    expect(evaluateApprovalRules(both, order('49999.99')).matchedRule).toBe('rest')
    expect(evaluateApprovalRules(both, order('50000.00', { customer: { externalId: 'ACC-8' } })).matchedRule).toBe('rest')
  })
})

describe('the policy schema', () => {
  const issues = (raw: unknown) => {
    try {
      parseApprovalPolicy(raw)
    } catch (err) {
      expect(err).toBeInstanceOf(ApprovalRulesRefusal)
      return (err as ApprovalRulesRefusal).details
    }
    throw new Error('expected the policy to be refused')
  }

  it('names each problem by its field path', () => {
    expect(
      issues({
        rules: [
          { id: 'a', when: { amount: { CNY: { min: 10000.5 } } }, require: ['sales_manager'] },
          { id: 'a', when: { amount: { cny: { min: '1' } } }, require: ['boss'] },
          { id: 'c', when: { amount: { CNY: { min: '100', max: '10' } }, costomers: ['x'] }, require: ['finance', 'finance'] },
          { id: 'd', when: { maxLineDiscountPercent: {} }, require: [] },
          { id: 'e', when: { amount: { CNY: { min: '1', above: '2' } } } },
        ],
      }),
    ).toEqual(
      expect.arrayContaining([
        { path: 'rules[0].when.amount.CNY.min', message: expect.stringContaining('must be a decimal string such as "10000.00"') },
        { path: 'rules[1].when.amount.cny', message: '"cny" is not an ISO 4217 code such as CNY' },
        { path: 'rules[1].require[0]', message: expect.stringContaining('sales_manager') },
        { path: 'rules[2].when', message: 'Unrecognized key: "costomers"' },
        { path: 'rules[2].when.amount.CNY.max', message: 'the range is empty: its upper bound is not above its lower bound' },
        { path: 'rules[2].require[1]', message: 'finance is listed twice' },
        { path: 'rules[3].when.maxLineDiscountPercent', message: 'give at least one of min, above, max, below' },
        { path: 'rules[4].when.amount.CNY.above', message: 'give min or above, not both' },
        { path: 'rules[4].require', message: expect.any(String) },
      ]),
    )
  })

  it('refuses two rules with one id, once the rules are otherwise valid', () => {
    expect(issues({ rules: [{ id: 'a', require: [] }, { id: 'b', require: [] }, { id: 'a', require: ['finance'] }] })).toEqual([{ path: 'rules[2].id', message: 'duplicate rule id "a"' }])
  })

  it('refuses empty ranges and accepts whole numbers as exact amounts', () => {
    expect(issues({ rules: [{ id: 'x', when: { amount: { CNY: { above: '10', below: '10' } } }, require: [] }] })).toEqual([
      { path: 'rules[0].when.amount.CNY.below', message: 'the range is empty: its upper bound is not above its lower bound' },
    ])
    const parsed = parseApprovalPolicy({ rules: [{ id: 'x', when: { amount: { CNY: { min: 10000 } } }, require: [] }] })
    expect(parsed.rules[0]!.when.amount).toEqual({ CNY: { min: '10000' } })
    expect(parsed.unmatchedCurrency).toEqual({ require: ['sales_manager', 'finance'] })
  })
})
