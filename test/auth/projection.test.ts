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

describe('projectOrderFor', () => {
  it.each(['admin', 'ops', 'viewer', 'integration'] as const)('shows %s keys the whole order', (role) => {
    expect(projectOrderFor(principal(role), order)).toBe(order)
  })

  it('shows a finance approver amounts and credit figures', () => {
    expect(projectOrderFor(principal('approver', 'finance'), order)).toEqual(order)
  })

  it('shows a sales manager amounts but no credit figures', () => {
    const seen = projectOrderFor(principal('approver', 'sales_manager'), order) as typeof order
    expect(seen.total).toBe('398.00')
    expect(seen.document.lines[0]).toMatchObject({ unitPrice: '199.00', lineTotal: '398.00' })
    expect(seen.document).not.toHaveProperty('credit')
    expect(seen.document.customer).not.toHaveProperty('creditLimit')
    expect(seen.document.customer).toHaveProperty('address')
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

  it('hides a field added to orders later from the warehouse until it is allowed', () => {
    const seen = projectOrderFor(principal('approver', 'warehouse'), { ...order, margin: '12%', approval: { amount: '1' }, document: { ...order.document, rebate: '3.00' } })
    expect(seen).not.toHaveProperty('margin')
    expect(seen).not.toHaveProperty('approval')
    expect(seen.document).not.toHaveProperty('rebate')
  })
})
