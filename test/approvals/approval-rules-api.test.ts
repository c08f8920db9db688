/**
 * The approval rules admin API on PGlite and PostgreSQL: seeding from the configuration file,
 * saving versions (422 with field paths), listing, rollback by activation, the audit log, the
 * preview, and who may call what (the roles approvalRuleRouteAccess declares for route-policy.ts).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listAudit } from '../../src/admin/audit-log.ts'
import { requiredApprovals, seedApprovalRules } from '../../src/approvals/approval-rule-versions.ts'
import { approvalPolicySchema } from '../../src/approvals/approval-rules.schemas.ts'
import { approvalRuleRouteAccess, approvalRuleRoutes } from '../../src/approvals/approval-rules.routes.ts'
import type { Principal, Role } from '../../src/auth/api-keys.ts'
import { requireRoles } from '../../src/auth/auth.plugin.ts'
import { validateConfig } from '../../src/config.ts'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'
import { examplePolicy } from './example-policy.ts'

const principals: Record<string, Principal> = Object.fromEntries(
  (['admin', 'ops', 'viewer', 'integration', 'approver'] as const).map((role) => [
    `${role}-key`,
    { keyId: `${role}-id`, name: role, role, level: role === 'approver' ? 'finance' : null, connection: role === 'integration' ? 'demo-crm' : null } as Principal,
  ]),
)

/** The routes as the app serves them: under /api/v1, each with the roles its policy entry names. */
async function buildRulesApp(db: TestDatabase['db']): Promise<FastifyInstance> {
  const app = Fastify()
  const resolve = async (key: string) => principals[key]
  app.addHook('onRoute', (route) => {
    const method = [route.method].flat()[0]!
    const roles = approvalRuleRouteAccess[`${method === 'HEAD' ? 'GET' : method} ${route.url}`]
    if (!roles) throw new Error(`no access rule for ${method} ${route.url}`)
    route.onRequest = [requireRoles(resolve, roles as Role[])]
  })
  await app.register(approvalRuleRoutes, { db, prefix: '/api/v1' })
  await app.ready()
  return app
}

describe.each(engines)('approval rules through the API (%s)', (engine) => {
  let test: TestDatabase
  let app: FastifyInstance
  beforeAll(async () => {
    test = await openTestDatabase(engine)
    app = await buildRulesApp(test.db)
  })
  afterAll(async () => {
    await app?.close()
    await test?.drop()
  })

  const call = async (method: 'GET' | 'PUT' | 'POST', url: string, body?: unknown, key = 'admin-key') => {
    const response = await app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body !== undefined ? { payload: body as object } : {}) })
    return { status: response.statusCode, body: response.json() }
  }
  const sampleOrder = { currency: 'CNY', customer: { externalId: 'ACC-7' }, lines: [{ sku: 'SKU-1', quantity: '2', unitPrice: '5000.00' }] }

  it('answers 404 before anything is configured, and the pipeline then requires no approval', async () => {
    expect(await call('GET', '/api/v1/approval-rules')).toEqual({ status: 404, body: { error: { code: 'not_configured', message: expect.any(String) } } })
    expect(await requiredApprovals(test.db, { currency: 'CNY', total: '1000000.00', customer: { externalId: 'A' }, lines: [] })).toEqual({
      levels: [],
      matchedRule: null,
      reasons: ['no approval rules are configured: approved by policy'],
      rulesVersion: null,
    })
  })

  it('seeds version 1 from the configuration file once, then leaves the database in charge', async () => {
    const configured = validateConfig(
      { connections: [{ id: 'erp', connector: 'generic-rest' }], pipeline: { erp: 'erp' }, approval: examplePolicy },
      'test configuration',
    ).approval
    expect(await seedApprovalRules(test.db, configured)).toEqual({ seeded: true, activeVersion: 1, differsFromConfig: false })
    expect(await seedApprovalRules(test.db, configured)).toEqual({ seeded: false, activeVersion: 1, differsFromConfig: false })

    const { status, body } = await call('GET', '/api/v1/approval-rules', undefined, 'viewer-key')
    expect(status).toBe(200)
    expect(body).toMatchObject({ version: 1, active: true, origin: 'config', createdBy: 'configuration file', ruleCount: 7, unmatchedCurrency: { require: ['sales_manager', 'finance'] } })
    expect(body.rules.map((r: { id: string }) => r.id)).toEqual(['blocked-customer', 'controlled-sku', 'deep-discount', 'cny-small', 'cny-mid', 'cny-large', 'usd-large'])
    expect(body.rules[6].when.amount.USD.min).toBe('15000')

    expect(await requiredApprovals(test.db, { currency: 'CNY', total: '10000.00', customer: { externalId: 'A' }, lines: [{ sku: 'X' }] })).toMatchObject({
      levels: ['sales_manager'],
      matchedRule: 'cny-mid',
      rulesVersion: 1,
    })
  })

  it('refuses invalid rules with each field path, and stores nothing', async () => {
    const { status, body } = await call('PUT', '/api/v1/approval-rules', {
      rules: [{ id: 'x', when: { amount: { CNY: { min: 9999.5 } } }, require: ['sales_manager', 'cfo'] }],
      unmatchedCurrency: { require: 'finance' },
      comment: 'broken',
    })
    expect(status).toBe(422)
    expect(body.error.code).toBe('validation_failed')
    expect(body.error.details).toEqual(
      expect.arrayContaining([
        { path: 'rules[0].when.amount.CNY.min', message: expect.stringContaining('decimal string') },
        { path: 'rules[0].require[1]', message: expect.any(String) },
        { path: 'unmatchedCurrency.require', message: expect.any(String) },
      ]),
    )
    expect((await call('GET', '/api/v1/approval-rules/versions')).body.versions).toHaveLength(1)
  })

  it('saves a new active version with an audit entry; the same rules again change nothing', async () => {
    const raised = { ...examplePolicy, rules: examplePolicy.rules.map((r) => (r.id === 'cny-mid' ? { ...r, require: ['sales_manager', 'finance'] } : r)), comment: 'mid orders need finance too' }
    const saved = await call('PUT', '/api/v1/approval-rules', raised)
    expect(saved).toEqual({ status: 201, body: { version: 2, created: true, previousVersion: 1 } })
    expect(await call('PUT', '/api/v1/approval-rules', raised)).toEqual({ status: 200, body: { version: 2, created: false, previousVersion: 2 } })

    const active = await call('GET', '/api/v1/approval-rules', undefined, 'ops-key')
    expect(active.body).toMatchObject({ version: 2, origin: 'api', createdBy: 'admin (key admin-id)', comment: 'mid orders need finance too' })

    const [entry] = await listAudit(test.db, { subject: 'approval-rules', limit: 1 })
    expect(entry).toMatchObject({ actor: 'admin (key admin-id)', action: 'approval_rules.saved', before: { version: 1 }, after: { version: 2 } })
    expect((entry!.after as { policy: { rules: { id: string; require: string[] }[] } }).policy.rules[4]).toMatchObject({ id: 'cny-mid', require: ['sales_manager', 'finance'] })
  })

  it('lists versions newest first, reads one, and rolls back by activating an older one', async () => {
    const list = await call('GET', '/api/v1/approval-rules/versions', undefined, 'viewer-key')
    expect(list.body.versions.map((v: { version: number; active: boolean }) => [v.version, v.active])).toEqual([
      [2, true],
      [1, false],
    ])
    expect((await call('GET', '/api/v1/approval-rules/versions/1')).body).toMatchObject({ version: 1, active: false, rules: expect.any(Array) })
    expect((await call('GET', '/api/v1/approval-rules/versions/9')).status).toBe(404)
    expect((await call('GET', '/api/v1/approval-rules/versions/x')).status).toBe(404)

    const before = await call('POST', '/api/v1/approval-rules/evaluate', { order: sampleOrder })
    expect(before.body).toMatchObject({ version: 2, total: '10000.00', levels: ['sales_manager', 'finance'], matchedRule: 'cny-mid' })

    expect(await call('POST', '/api/v1/approval-rules/versions/1/activate')).toEqual({ status: 200, body: { version: 1, previousVersion: 2, changed: true } })
    expect(await call('POST', '/api/v1/approval-rules/versions/1/activate')).toEqual({ status: 200, body: { version: 1, previousVersion: 1, changed: false } })
    expect((await call('POST', '/api/v1/approval-rules/versions/7/activate')).status).toBe(404)
    expect((await call('GET', '/api/v1/approval-rules')).body.version).toBe(1)
    expect((await call('POST', '/api/v1/approval-rules/evaluate', { order: sampleOrder })).body).toMatchObject({ version: 1, levels: ['sales_manager'] })

    const [entry] = await listAudit(test.db, { subject: 'approval-rules', limit: 1 })
    expect(entry).toMatchObject({ action: 'approval_rules.activated', before: { version: 2 }, after: { version: 1 } })
    // A later save numbers after the newest version, not after the active one.
    const saved = await call('PUT', '/api/v1/approval-rules', { rules: [] })
    expect(saved.body).toEqual({ version: 3, created: true, previousVersion: 1 })
    expect(await seedApprovalRules(test.db, approvalPolicySchema.parse(examplePolicy))).toEqual({ seeded: false, activeVersion: 3, differsFromConfig: true })
    await call('POST', '/api/v1/approval-rules/versions/1/activate')
  })

  it('previews a stored version, a draft, and the credit decision', async () => {
    const preview = await call('POST', '/api/v1/approval-rules/evaluate', { order: { ...sampleOrder, currency: 'EUR' }, version: 2 }, 'viewer-key')
    expect(preview).toEqual({
      status: 200,
      body: { version: 2, total: '10000.00', currency: 'EUR', levels: ['sales_manager', 'finance'], matchedRule: null, reasons: [expect.stringContaining('no rule has amount thresholds in EUR')] },
    })
    const draft = await call('POST', '/api/v1/approval-rules/evaluate', {
      order: { currency: 'CNY', total: '10.00', customer: { externalId: 'ACC-1' }, lines: [{ sku: 'SKU-1', discount: '30' }] },
      draft: { rules: [{ id: 'discounts', when: { maxLineDiscountPercent: { min: '30' } }, require: ['sales_manager'] }] },
      credit: { limit: '100.00', outstanding: '95.00', currency: 'CNY', overdue: false },
    })
    expect(draft.body).toMatchObject({
      version: null,
      levels: ['sales_manager'],
      matchedRule: 'discounts',
      credit: { autoApprove: false, figures: { exposure: '105.00', headroom: '-5.00' } },
    })
    const badDraft = await call('POST', '/api/v1/approval-rules/evaluate', { order: sampleOrder, draft: { rules: [{ id: 'x', require: ['ceo'] }] } })
    expect(badDraft.status).toBe(422)
    expect(badDraft.body.error.details).toEqual([{ path: 'draft.rules[0].require[0]', message: expect.any(String) }])
    const badOrder = await call('POST', '/api/v1/approval-rules/evaluate', { order: { currency: 'cny', customer: {}, lines: [{ sku: 'A', quantity: 1 }] } })
    expect(badOrder.status).toBe(422)
    expect(badOrder.body.error.details.map((d: { path: string }) => d.path)).toEqual(
      expect.arrayContaining(['order.currency', 'order.customer.externalId', 'order.lines[0].quantity']),
    )
    expect((await call('POST', '/api/v1/approval-rules/evaluate', { order: sampleOrder, version: 99 })).status).toBe(404)
  })

  it('lets admins change, and admins, ops and viewers read and preview', async () => {
    for (const key of ['ops-key', 'viewer-key', 'integration-key', 'approver-key']) {
      expect((await call('PUT', '/api/v1/approval-rules', { rules: [] }, key)).status).toBe(403)
      expect((await call('POST', '/api/v1/approval-rules/versions/1/activate', undefined, key)).status).toBe(403)
    }
    for (const key of ['integration-key', 'approver-key']) {
      expect((await call('GET', '/api/v1/approval-rules', undefined, key)).status).toBe(403)
      expect((await call('POST', '/api/v1/approval-rules/evaluate', { order: sampleOrder }, key)).status).toBe(403)
    }
    expect((await call('GET', '/api/v1/approval-rules/versions', undefined, 'nobody')).status).toBe(401)
  })
})

describe('approval rules in the configuration file', () => {
  it('are validated with paths under approval', () => {
    expect(() =>
      validateConfig(
        { connections: [{ id: 'erp', connector: 'generic-rest' }], pipeline: { erp: 'erp' }, approval: { rules: [{ id: 'x', when: { amount: { CNY: { min: 0.1 } } }, require: [] }] } },
        'orderbridge.yaml',
      ),
    ).toThrow(/approval\.rules\[0\]\.when\.amount\.CNY\.min: must be a decimal string/)
  })
})
