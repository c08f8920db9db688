/**
 * Key management through the API, on PostgreSQL with a second API process sharing the database
 * and Redis: create (the key shown once), validation with field paths, list (no secrets), revoke
 * (refused at once by every process, audited without the key), and the last admin key kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../../src/config.ts'
import { demoConfig } from '../../src/demo/demo-environment.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { startOrderbridge, type RunningOrderbridge } from '../../src/server.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

describe('API keys (postgres, two API processes)', () => {
  let stack: TestStack
  let second: RunningOrderbridge

  beforeAll(async () => {
    stack = await startTestStack('postgres')
    // Another API process on the same database and Redis, as a replica behind a load balancer would be.
    const env = loadEnv({ ...stack.env, PORT: '0' })
    second = await startOrderbridge({ mode: 'api', env, config: demoConfig(testCredentials, { erpUrl: stack.erp.url, wmsUrl: stack.erp.url }), logger: createLogger('silent') })
  }, 60_000)
  afterAll(async () => {
    await second?.close()
    await stack?.close()
  })

  const statusAt = async (url: string, key: string, path = '/api/v1/orders') => (await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${key}` } })).status

  it('creates a key, shows it once, and lists keys without keys or hashes', async () => {
    const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'picking', role: 'approver', level: 'warehouse' } })
    expect(created.status).toBe(201)
    expect(created.body).toEqual({ id: expect.any(String), name: 'picking', role: 'approver', level: 'warehouse', connection: null, createdAt: expect.any(String), key: expect.stringMatching(/^obk_/) })
    expect(await statusAt(stack.url, created.body.key)).toBe(200)

    const { status, body } = await stack.api('/api/v1/keys')
    expect(status).toBe(200)
    const listed = body.keys.find((k: { id: string }) => k.id === created.body.id)
    expect(listed).toEqual({ id: created.body.id, name: 'picking', role: 'approver', level: 'warehouse', connection: null, createdAt: created.body.createdAt, revokedAt: null, lastUsedAt: expect.any(String) })
    expect(body.keys.find((k: { name: string }) => k.name === 'bootstrap admin')).toMatchObject({ role: 'admin', revokedAt: null })
    const text = JSON.stringify(body)
    expect(text).not.toContain(created.body.key)
    expect(text).not.toContain(testCredentials.adminKey)
    expect(text).not.toMatch(/hash/i)
  })

  it('takes an integration key for a configured connection only', async () => {
    const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'erp feed', role: 'integration', connection: 'demo-erp' } })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ role: 'integration', connection: 'demo-erp', level: null })
  })

  it.each([
    [{ name: 'a', role: 'approver' }, [{ path: 'level', message: 'required for an approver key: one of sales_manager, finance, warehouse' }]],
    [{ name: 'a', role: 'approver', level: 'ceo' }, [{ path: 'level', message: expect.stringContaining('sales_manager') }]],
    [{ name: 'a', role: 'ops', level: 'finance' }, [{ path: 'level', message: 'only approver keys have a level, not ops keys' }]],
    [{ name: 'a', role: 'integration' }, [{ path: 'connection', message: 'required for an integration key: the connection it may see' }]],
    [{ name: 'a', role: 'integration', connection: 'nowhere' }, [{ path: 'connection', message: 'no connection "nowhere" is configured' }]],
    [{ name: 'a', role: 'viewer', connection: 'demo-crm' }, [{ path: 'connection', message: 'only integration keys have a connection, not viewer keys' }]],
    [{ name: ' ', role: 'superuser' }, [{ path: 'name', message: expect.any(String) }, { path: 'role', message: expect.any(String) }]],
    [{ name: 'a', role: 'integration', scope: 'demo-crm' }, [{ path: 'scope', message: 'not a field of a key (name, role, level, connection)' }, { path: 'connection', message: expect.stringContaining('required') }]],
  ])('refuses %j with the field at fault', async (body, details) => {
    const { status, body: answer } = await stack.api('/api/v1/keys', { method: 'POST', body })
    expect(status).toBe(422)
    expect(answer.error).toEqual({ code: 'validation_failed', message: 'the key description is invalid', details })
  })

  it('revokes a key at once in every process, and says so in the audit log without the key', async () => {
    const { body: created } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'short-lived', role: 'viewer' } })
    // Both processes have the key cached now.
    for (let i = 0; i < 3; i++) {
      expect(await statusAt(stack.url, created.key)).toBe(200)
      expect(await statusAt(second.url!, created.key)).toBe(200)
    }
    const revoked = await stack.api(`/api/v1/keys/${created.id}`, { method: 'DELETE' })
    expect(revoked.status).toBe(200)
    expect(revoked.body).toMatchObject({ id: created.id, revokedAt: expect.any(String) })
    expect(await statusAt(second.url!, created.key)).toBe(401)
    expect(await statusAt(stack.url, created.key)).toBe(401)

    // Again: nothing changes, and it is not audited twice.
    const again = await stack.api(`/api/v1/keys/${created.id}`, { method: 'DELETE' })
    expect([again.status, again.body.revokedAt]).toEqual([200, revoked.body.revokedAt])

    const { body: audit } = await stack.api(`/api/v1/audit?subject=key:${created.id}`)
    expect(audit.entries.map((e: { action: string }) => e.action)).toEqual(['key.revoked', 'key.created'])
    expect(audit.entries[1].after).toEqual({ name: 'short-lived', role: 'viewer', level: null, connection: null })
    expect(audit.entries[0].actor).toContain('bootstrap admin')
    expect(JSON.stringify(audit)).not.toContain(created.key)

    const listed = (await stack.api('/api/v1/keys')).body.keys.find((k: { id: string }) => k.id === created.id)
    expect(listed.revokedAt).toBe(revoked.body.revokedAt)
  })

  it('revokes from the other process too', async () => {
    const { body: created } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'other way round', role: 'ops' } })
    expect(await statusAt(stack.url, created.key)).toBe(200)
    const revoked = await fetch(`${second.url}/api/v1/keys/${created.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${testCredentials.adminKey}` } })
    expect(revoked.status).toBe(200)
    expect(await statusAt(stack.url, created.key)).toBe(401)
  })

  it('answers 404 for a key that does not exist, and keeps the last admin key', async () => {
    expect((await stack.api('/api/v1/keys/nope', { method: 'DELETE' })).status).toBe(404)
    const { body } = await stack.api('/api/v1/keys')
    const bootstrap = body.keys.find((k: { name: string }) => k.name === 'bootstrap admin')
    const refused = await stack.api(`/api/v1/keys/${bootstrap.id}`, { method: 'DELETE' })
    expect([refused.status, refused.body.error.code]).toEqual([409, 'last_admin_key'])

    // With a second admin, the first can go; the new one manages keys from then on.
    const { body: other } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'second admin', role: 'admin' } })
    expect((await stack.api(`/api/v1/keys/${bootstrap.id}`, { method: 'DELETE', key: other.key })).status).toBe(200)
    expect((await stack.api('/api/v1/keys')).status).toBe(401)
    expect((await stack.api('/api/v1/keys', { key: other.key })).status).toBe(200)
  })
})
