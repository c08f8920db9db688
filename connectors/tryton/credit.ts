/**
 * A customer's credit as Tryton's credit-limit modules see it, for orderbridge's credit check
 * (finance approval). The party is found by code (= the CRM account id):
 *
 * - `limit`: the party's `credit_limit_amount`; a party without one (Tryton: no limit) or not yet in
 *   Tryton reports `credit.limitWhenUnset` (default "0": finance decides);
 * - `outstanding`: the party's `credit_amount`, which is what Tryton's own confirm check adds the sale
 *   to: the receivable balance plus the untaxed amount of confirmed sales not yet invoiced;
 * - `overdue`: posted, unreconciled receivable lines of the party whose maturity date has passed
 *   leave something owed;
 * - `currency`: the company's, in which Tryton keeps these amounts.
 */
import type { ConnectorContext, CustomerCredit } from '../../src/connector-kit/index.ts'
import { models, type Row } from './models.ts'
import type { TrytonSecrets, TrytonSettings } from './settings.ts'
import { addDecimals, compareDecimals, date, negateDecimal, trimDecimal } from './values.ts'

type Context = ConnectorContext<TrytonSettings, TrytonSecrets>

interface PartyCreditRow extends Row {
  credit_limit_amount: string | null
  credit_amount: string | null
  receivable: string | null
}

export async function getCustomerCredit(ctx: Context, customerId: string): Promise<CustomerCredit> {
  const m = models(ctx)
  const [currency, [party]] = await Promise.all([
    m.companyCurrency(),
    m.searchRead<PartyCreditRow>('party.party', [['code', '=', customerId]], ['credit_limit_amount', 'credit_amount', 'receivable'], { limit: 1 }),
  ])
  const unset = ctx.settings.credit.limitWhenUnset
  if (!party) return { limit: trimDecimal(unset, 2), outstanding: '0.00', currency: currency.code, overdue: false }
  const today = await m.client.call<string>('model.ir.date.today', [])
  const lines = await m.searchRead<Row & { debit: string; credit: string }>(
    'account.move.line',
    [
      ['party', '=', party.id],
      ['account.type.receivable', '=', true],
      ['reconciliation', '=', null],
      ['move.state', '=', 'posted'],
      ['maturity_date', '<', date(today)],
    ],
    ['debit', 'credit'],
  )
  const overdueAmount = addDecimals('0', ...lines.map((line) => addDecimals(line.debit, negateDecimal(line.credit))))
  return {
    limit: trimDecimal(party.credit_limit_amount ?? unset, 2),
    outstanding: trimDecimal(party.credit_amount ?? party.receivable ?? '0', 2),
    currency: currency.code,
    overdue: compareDecimals(overdueAmount, '0') > 0,
  }
}
