import { describe, expect, it } from 'vitest'
import type { ApprovalLevel, Principal, Role } from '../../src/auth/api-keys.ts'
import { projectOrderFor } from '../../src/auth/projection.ts'

const principal = (role: Role, level: ApprovalLevel | null = null): Principal => ({ keyId: 'k', name: 'n', role, level, connection: null })

const order = {
  id: '3f1e7a52-9c1b-4b8e-9f57-2a0b3f4d5e6f',
  connection: 'demo-crm',
  externalId: 'SO-1',
  state: 'approved',
  version: 2,
  revision: 3,
  currency: 'CNY',
  total: '398.00',
  document: {
    externalId: 'SO-1',
    customer: { externalId: 'ACC-7', name: 'Hangzhou Yuntu Trading', creditLimit: '50000.00', address: { city: 'Hangzhou' } },
    currency: 'CNY',
    owner: 'rep-1',
    orderedAt: '2026-11-26T08:00:00Z',
    shippingAddress: { line1: '1 West Lake Rd', city: 'Hangzhou' },
    shippingCost: '20.00',
    requestedDeliveryDate: '2026-12-01',
    lines: [{ sku: 'SKU-100', quantity: '2', unitPrice: '199.00', lineTotal: '398.00', discountPercent: '5', description: 'Widget' }],
    total: '398.00',
    credit: { exposure: '12000.00', available: '38000.00' },
  },
  links: [{ connection: 'demo-erp', operation: 'salesOrders.upsert', externalId: 'E-1', status: 'needs_attention', lastSyncedVersion: 1, lastError: { kind: 'data', message: 'total 398.00 over limit' }, updatedAt: 'x' }],
  timeline: [{ at: 'x', kind: 'updated', fromState: null, toState: null, cause: 'demo-crm', detail: { total: '398.00' } }],
  createdAt: 'x',
  updatedAt: 'y',
}

/** What the credit check writes in a timeline: a check that left finance to a person, and one that approved. */
const creditTimeline = [
  { at: 'a', kind: 'credit_checked', fromState: null, toState: null, cause: 'demo-erp credit check', detail: { reason: 'over the credit limit by 500.00 CNY (outstanding 49000.00 + order 1500.00 = 50500.00 CNY, limit 50000.00)', figures: { limit: '50000.00', outstanding: '49000.00', exposure: '50500.00', headroom: '-500.00', overdue: false } } },
  { at: 'b', kind: 'approval', fromState: null, toState: null, cause: 'demo-erp credit check', detail: { level: 'finance', decision: 'approve', automatic: true, comment: 'within the credit limit: outstanding 100.00 + order 398.00 = 498.00 CNY, limit 50000.00' } },
  { at: 'c', kind: 'approval', fromState: null, toState: null, cause: 'approver key sm', detail: { level: 'sales_manager', decision: 'approve', automatic: false, comment: 'good customer' } },
]

describe('projectOrderFor', () => {
  it.each(['admin', 'ops'] as const)('shows %s keys the whole order', (role) => {
    expect(projectOrderFor(principal(role), order)).toBe(order)
  })

  it('shows a finance approver amounts and credit figures', () => {
    expect(projectOrderFor(principal('approver', 'finance'), order)).toEqual(order)
    expect(projectOrderFor(principal('approver', 'finance'), { ...order, timeline: creditTimeline })).toEqual({ ...order, timeline: creditTimeline })
  })

  it.each([
    ['a sales manager', principal('approver', 'sales_manager')],
    ['a viewer', principal('viewer')],
    ['an integration key', principal('integration')],
  ])('shows %s amounts but no credit figures', (_, reader) => {
    const seen = projectOrderFor(reader, order) as typeof order
    expect(seen.total).toBe('398.00')
    expect(seen.document.lines[0]).toMatchObject({ unitPrice: '199.00', lineTotal: '398.00' })
    expect(seen.document).not.toHaveProperty('credit')
    expect(seen.document.customer).not.toHaveProperty('creditLimit')
    expect(seen.document.customer).toHaveProperty('address')
  })

  it('shows a sales manager the credit check in the timeline without its reason, figures or the automatic approval’s comment', () => {
    const seen = projectOrderFor(principal('approver', 'sales_manager'), { ...order, timeline: creditTimeline })
    expect(seen.timeline).toEqual([
      { at: 'a', kind: 'credit_checked', fromState: null, toState: null, cause: 'demo-erp credit check' },
      { at: 'b', kind: 'approval', fromState: null, toState: null, cause: 'demo-erp credit check', detail: { level: 'finance', decision: 'approve', automatic: true } },
      creditTimeline[2],
    ])
    expect(JSON.stringify(seen)).not.toMatch(/50000|headroom|outstanding/)
  })

  it('shows the warehouse lines, quantities and addresses, and no price, amount, total or credit', () => {
    const seen = projectOrderFor(principal('approver', 'warehouse'), order)
    expect(seen).toEqual({
      id: order.id,
      connection: 'demo-crm',
      externalId: 'SO-1',
      state: 'approved',
      version: 2,
      revision: 3,
      createdAt: 'x',
      updatedAt: 'y',
      document: {
        externalId: 'SO-1',
        owner: 'rep-1',
        orderedAt: '2026-11-26T08:00:00Z',
        shippingAddress: { line1: '1 West Lake Rd', city: 'Hangzhou' },
        requestedDeliveryDate: '2026-12-01',
        customer: { externalId: 'ACC-7', name: 'Hangzhou Yuntu Trading', address: { city: 'Hangzhou' } },
        lines: [{ sku: 'SKU-100', quantity: '2', description: 'Widget' }],
      },
      links: [{ connection: 'demo-erp', operation: 'salesOrders.upsert', externalId: 'E-1', status: 'needs_attention', lastSyncedVersion: 1, updatedAt: 'x' }],
      timeline: [{ at: 'x', kind: 'updated', fromState: null, toState: null, cause: 'demo-crm' }],
    })
    expect(JSON.stringify(seen)).not.toMatch(/199|398|credit|20\.00/)
  })

  it('shows the warehouse a pending approval without its total or credit figures', () => {
    const pending = {
      orderId: order.id,
      externalId: 'SO-1',
      sourceConnection: 'demo-crm',
      customer: { externalId: 'ACC-7', name: 'Hangzhou Yuntu Trading', creditLimit: '1' },
      currency: 'CNY',
      total: '398.00',
      level: 'warehouse',
      rule: 'big-orders',
      waitingSince: 'x',
      credit: { exposure: '12000.00' },
      approvals: [{ level: 'warehouse', status: 'pending', decidedBy: null, automatic: false, limit: '5000' }],
    }
    expect(projectOrderFor(principal('approver', 'warehouse'), pending)).toEqual({
      orderId: order.id,
      externalId: 'SO-1',
      sourceConnection: 'demo-crm',
      customer: { externalId: 'ACC-7', name: 'Hangzhou Yuntu Trading' },
      level: 'warehouse',
      rule: 'big-orders',
      waitingSince: 'x',
      approvals: [{ level: 'warehouse', status: 'pending', decidedBy: null, automatic: false }],
    })
  })

  it('shows the warehouse approval and reconciliation entries without their causes, which quote amounts', () => {
    const timeline = [
      { at: 'a', kind: 'transition', fromState: 'received', toState: 'pending_approval', cause: 'approval rules v1: rule "large" matched and requires finance; total 398.00 CNY is at least 100', detail: null },
      { at: 'b', kind: 'transition', fromState: 'pending_approval', toState: 'rejected', cause: 'rejected by approver key f (finance): owes 398.00 already', detail: null },
      { at: 'c', kind: 'reconciliation', fromState: null, toState: null, cause: 'reconciliation 4: total_mismatch at demo-erp; 398.00 ≠ 399.00', detail: null },
      { at: 'd', kind: 'transition', fromState: 'reserved', toState: 'pending_shipment', cause: 'demo-erp created sales order E-1', detail: null },
    ]
    expect(projectOrderFor(principal('approver', 'warehouse'), { ...order, timeline }).timeline).toEqual([
      { at: 'a', kind: 'transition', fromState: 'received', toState: 'pending_approval' },
      { at: 'b', kind: 'transition', fromState: 'pending_approval', toState: 'rejected' },
      { at: 'c', kind: 'reconciliation', fromState: null, toState: null },
      { at: 'd', kind: 'transition', fromState: 'reserved', toState: 'pending_shipment', cause: 'demo-erp created sales order E-1' },
    ])
  })

  it('hides a field added to orders later from the warehouse until it is allowed', () => {
    const seen = projectOrderFor(principal('approver', 'warehouse'), { ...order, margin: '12%', approval: { amount: '1' }, document: { ...order.document, rebate: '3.00' } })
    expect(seen).not.toHaveProperty('margin')
    expect(seen).not.toHaveProperty('approval')
    expect(seen.document).not.toHaveProperty('rebate')
  })
})
