/**
 * The approval rules routes inside the whole application (PGlite): registered under /api/v1 with
 * the roles route-policy.ts gives them, and seeded from the configuration at start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
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
})
