/**
 * The automatic finance decision from the customer's credit: exact at the limit, never with
 * anything overdue, never across currencies, never on figures that are not decimals.
 */
import { describe, expect, it } from 'vitest'
import { decideCredit } from '../../src/approvals/credit-decision.ts'

const credit = (limit: string, outstanding: string, more: { currency?: string; overdue?: boolean } = {}) => ({ limit, outstanding, currency: more.currency ?? 'CNY', overdue: more.overdue ?? false })

describe('decideCredit', () => {
  it.each([
    ['50000.00', '30000.00', '19999.99', true],
    ['50000.00', '30000.00', '20000.00', true],
    ['50000.00', '30000.00', '20000', true],
    ['50000', '30000.000', '20000.0001', false],
    ['50000.00', '30000.00', '20000.01', false],
    ['0.00', '0.00', '0.00', true],
    ['0.00', '0.00', '0.01', false],
    ['100', '-50.00', '150.00', true],
  ])('limit %s, outstanding %s, order %s → auto %s', (limit, outstanding, total, auto) => {
    expect(decideCredit(credit(limit, outstanding), { total, currency: 'CNY' }).autoApprove).toBe(auto)
  })

  it('shows the figures at the limit', () => {
    expect(decideCredit(credit('50000.00', '30000.00'), { total: '20000.00', currency: 'CNY' })).toEqual({
      autoApprove: true,
      reason: 'within the credit limit: outstanding 30000.00 + order 20000.00 = 50000.00 CNY, limit 50000.00',
      figures: { currency: 'CNY', limit: '50000.00', outstanding: '30000.00', order: '20000.00', exposure: '50000.00', headroom: '0.00', overdue: false },
    })
  })

  it('shows by how much an order goes over', () => {
    const decision = decideCredit(credit('50000', '30000'), { total: '20000.5', currency: 'CNY' })
    expect(decision.autoApprove).toBe(false)
    expect(decision.figures).toMatchObject({ exposure: '50000.50', headroom: '-0.50' })
    expect(decision.reason).toBe('over the credit limit by 0.50 CNY (outstanding 30000.00 + order 20000.50 = 50000.50 CNY, limit 50000.00), so finance must approve')
  })

  it('never auto-approves a customer with overdue invoices, however small the order', () => {
    const decision = decideCredit(credit('50000.00', '0.00', { overdue: true }), { total: '1.00', currency: 'CNY' })
    expect(decision.autoApprove).toBe(false)
    expect(decision.reason).toContain('overdue')
    expect(decision.figures?.headroom).toBe('49999.00')
  })

  it('never compares across currencies', () => {
    const decision = decideCredit(credit('50000.00', '0.00', { currency: 'USD' }), { total: '1.00', currency: 'CNY' })
    expect(decision).toEqual({ autoApprove: false, reason: expect.stringContaining('the credit limit is in USD and the order in CNY') })
  })

  it('never auto-approves on figures that are not decimals', () => {
    expect(decideCredit(credit('5e4', '0'), { total: '1', currency: 'CNY' })).toEqual({ autoApprove: false, reason: 'the credit limit is not a decimal amount, so finance must approve' })
    expect(decideCredit(credit('1', 'n/a'), { total: '1,00', currency: 'CNY' }).reason).toBe('the credit outstanding and order total are not a decimal amount, so finance must approve')
  })
})
