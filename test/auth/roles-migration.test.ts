/**
 * Migration 004 on keys made before it: `scope` becomes an approver's level or an integration
 * key's connection; keys that cannot have one are revoked, with an audit entry. PGlite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate } from '../../src/db/migrate.ts'
import { engines, migrateUpTo, openTestDatabase, type TestDatabase } from '../support/test-database.ts'

describe.each(engines)('migration 004_roles (%s)', (engine) => {
  let t: TestDatabase
  beforeAll(async () => {
    t = await openTestDatabase(engine, { migrate: false })
    await migrateUpTo(t.db, '004')
    const legacy = [
      ['k-admin', 'admin', null],
      ['k-int', 'integration', 'demo-crm'],
      ['k-int-none', 'integration', null],
      ['k-fin', 'approver', 'finance'],
      ['k-appr-none', 'approver', null],
      ['k-appr-odd', 'approver', 'ceo'],
      ['k-viewer', 'viewer', 'whatever'],
    ]
    for (const [id, role, scope] of legacy) await t.db.query('insert into api_keys (id, name, key_hash, role, scope) values ($1, $1, $1, $2, $3)', [id, role, scope])
    await migrate(t.db)
  })
  afterAll(() => t?.drop())

  it('moves scope into level or connection, and revokes keys that cannot have one', async () => {
    const rows = await t.db.query<{ id: string; level: string | null; connection_id: string | null; revoked: boolean }>(
      'select id, level, connection_id, revoked_at is not null as revoked from api_keys order by id',
    )
    expect(rows).toEqual([
      { id: 'k-admin', level: null, connection_id: null, revoked: false },
      { id: 'k-appr-none', level: null, connection_id: null, revoked: true },
      { id: 'k-appr-odd', level: null, connection_id: null, revoked: true },
      { id: 'k-fin', level: 'finance', connection_id: null, revoked: false },
      { id: 'k-int', level: null, connection_id: 'demo-crm', revoked: false },
      { id: 'k-int-none', level: null, connection_id: null, revoked: true },
      { id: 'k-viewer', level: null, connection_id: null, revoked: false },
    ])
    const audit = await t.db.query<{ subject: string; actor: string; action: string }>('select subject, actor, action from audit_log order by subject')
    expect(audit).toEqual(['k-appr-none', 'k-appr-odd', 'k-int-none'].map((id) => ({ subject: `key:${id}`, actor: 'migration 004_roles', action: 'key.revoked' })))
  })

  it('refuses an approver without a level and a connection on a key that is not an integration key', async () => {
    await expect(t.db.query(`insert into api_keys (id, name, key_hash, role) values ('x1', 'x', 'x1', 'approver')`)).rejects.toThrow(/api_keys_level/)
    await expect(t.db.query(`insert into api_keys (id, name, key_hash, role, level) values ('x2', 'x', 'x2', 'approver', 'ceo')`)).rejects.toThrow(/api_keys_level/)
    await expect(t.db.query(`insert into api_keys (id, name, key_hash, role, connection_id) values ('x3', 'x', 'x3', 'ops', 'demo-crm')`)).rejects.toThrow(/api_keys_connection/)
    await expect(t.db.query(`insert into api_keys (id, name, key_hash, role) values ('x4', 'x', 'x4', 'integration')`)).rejects.toThrow(/api_keys_connection/)
    await expect(t.db.query(`insert into api_keys (id, name, key_hash, role) values ('x5', 'x', 'x5', 'root')`)).rejects.toThrow(/api_keys_role/)
  })
})
