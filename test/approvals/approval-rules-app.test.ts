/**
 * The approval rules routes inside the whole application (PGlite): registered under /api/v1 with
 * the roles route-policy.ts gives them, seeded from the configuration at start, and deciding the
 * orders that arrive once a version is saved or an older one activated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { approvalPolicySchema } from '../../src/approvals/approval-rules.schemas.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'
import { examplePolicy } from './example-policy.ts'

describe('approval rules in the running app', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite', { configure: (config) => ({ ...config, approval: approvalPolicySchema.parse(examplePolicy) }) })
  })
  afterAll(() => stack?.close())

  it('serves the rules seeded from the configuration, and previews an order', async () => {
    const { status, body } = await stack.api('/api/v1/approval-rules')
    expect(status).toBe(200)
    expect(body).toMatchObject({ version: 1, origin: 'config', ruleCount: 7 })
    const preview = await stack.api('/api/v1/approval-rules/evaluate', {
      method: 'POST',
      body: { order: { currency: 'CNY', total: '100000.01', customer: { externalId: 'ACC-7' }, lines: [{ sku: 'SKU-1' }] } },
    })
    expect(preview).toMatchObject({ status: 200, body: { version: 1, levels: ['sales_manager', 'finance'], matchedRule: 'cny-large' } })
  })

  it('asks for a key and an admin to change them', async () => {
    expect((await stack.api('/api/v1/approval-rules', { key: 'not-a-key' })).status).toBe(401)
    const created = await stack.api<{ key: string }>('/api/v1/keys', { method: 'POST', body: { name: 'dashboard', role: 'viewer' } })
    expect(created.status).toBe(201)
    expect((await stack.api('/api/v1/approval-rules/versions', { key: created.body.key })).status).toBe(200)
    expect((await stack.api('/api/v1/approval-rules', { method: 'PUT', body: { rules: [] }, key: created.body.key })).status).toBe(403)
    expect(await stack.api('/api/v1/approval-rules', { method: 'PUT', body: { rules: [] } })).toEqual({ status: 201, body: { version: 2, created: true, previousVersion: 1 } })
  })

  it('decides the orders that arrive after a version is saved, and after an older one is activated', async () => {
    const saved = await stack.api('/api/v1/approval-rules', {
      method: 'PUT',
      body: { rules: [{ id: 'watched-customer', when: { customers: ['ACC-WATCH'] }, require: ['warehouse'] }, { id: 'rest', when: {}, require: [] }] },
    })
    expect(saved.status).toBe(201)
    const watched = (externalId: string) => ({ ...sampleOrder(5, externalId), account: { id: 'ACC-WATCH', name: 'Watched Ltd' } })
    const stateOf = async (externalId: string) => (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]

    await stack.crm.send('order.created', watched('RULES-NEW'))
    const waiting = await stack.waitFor(async () => ((await stateOf('RULES-NEW'))?.state === 'pending_approval' ? stateOf('RULES-NEW') : undefined), 'RULES-NEW waiting')
    const warehouse = await stack.api<{ key: string }>('/api/v1/keys', { method: 'POST', body: { name: 'dock', role: 'approver', level: 'warehouse' } })
    const pending = (await stack.api('/api/v1/approvals?pending=true', { key: warehouse.body.key })).body.approvals
    expect(pending).toEqual([expect.objectContaining({ orderId: waiting.id, level: 'warehouse', rule: 'watched-customer' })])
    const decided = await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', body: { decision: 'approve', comment: 'dock has room' }, key: warehouse.body.key })
    expect(decided.status).toBe(200)
    await stack.waitFor(async () => (await stateOf('RULES-NEW'))?.state === 'pending_shipment', 'RULES-NEW past approval')

    // Back to version 1, which has no rule for the customer: the same kind of order needs none.
    expect((await stack.api('/api/v1/approval-rules/versions/1/activate', { method: 'POST', body: {} })).status).toBe(200)
    await stack.crm.send('order.created', watched('RULES-OLD'))
    await stack.waitFor(async () => (await stateOf('RULES-OLD'))?.state === 'pending_shipment', 'RULES-OLD through without approval')
    const { body: old } = await stack.api(`/api/v1/orders/${(await stateOf('RULES-OLD')).id}/timeline`)
    expect(old.timeline.map((t: { toState: string | null }) => t.toState)).not.toContain('pending_approval')
  })
})
