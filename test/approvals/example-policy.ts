import type { ApprovalPolicyInput } from '../../src/approvals/approval-rules.schemas.ts'

/** The example ladder in CNY, a USD ladder, and rules by customer, SKU and discount ahead of them. */
export const examplePolicy: ApprovalPolicyInput = {
  rules: [
    { id: 'blocked-customer', when: { customers: ['ACC-RISK', 'ACC-NEW'] }, require: ['sales_manager', 'finance'] },
    { id: 'controlled-sku', when: { skus: ['SKU-HAZ'] }, require: ['warehouse'] },
    { id: 'deep-discount', when: { maxLineDiscountPercent: { above: '15' } }, require: ['sales_manager'] },
    { id: 'cny-small', when: { amount: { CNY: { below: '10000' } } }, require: [] },
    { id: 'cny-mid', when: { amount: { CNY: { min: '10000', max: '100000' } } }, require: ['sales_manager'] },
    { id: 'cny-large', when: { amount: { CNY: { above: '100000' } } }, require: ['sales_manager', 'finance'] },
    { id: 'usd-large', when: { amount: { USD: { min: 15000 } } }, require: ['sales_manager', 'finance'] },
  ],
}
