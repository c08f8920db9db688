/**
 * Lookup tables through real HTTP: replace, merge, CSV import (RFC 4180 quoting, line-numbered
 * errors), the audit log, and a mapping version that reads a table in preview.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { parseCsv, parseLookupCsv } from '../../src/mapping/lookup-tables.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

const inbound = 'demo-crm.to-canonical.order'

describe('parsing CSV', () => {
  it('reads quoted fields with commas, doubled quotes and line breaks, CRLF or LF, and skips blank lines', () => {
    const text = '\ufeffkey,value\r\nACC-7,"Hangzhou, Yuntu"\r\n\r\n"ACC,9","say ""hi"""\nmulti,"line one\nline two"\nlast,\n'
    expect(parseCsv(text)).toEqual({
      records: [
        { line: 1, fields: ['key', 'value'] },
        { line: 2, fields: ['ACC-7', 'Hangzhou, Yuntu'] },
        { line: 4, fields: ['ACC,9', 'say "hi"'] },
        { line: 5, fields: ['multi', 'line one\nline two'] },
        { line: 7, fields: ['last', ''] },
      ],
      issues: [],
    })
  })

  it('names the line of every problem', () => {
    expect(parseLookupCsv('key,value\na,1\nb,2,3\n,4\na,5\nc,"x"y\n')).toEqual({
      ok: false,
      issues: [
        { path: 'line 3', message: 'expected 2 fields (key,value), got 3; quote a field that contains a comma' },
        { path: 'line 4', message: 'a key must not be empty' },
        { path: 'line 5', message: 'the key "a" is already on line 2' },
        { path: 'line 6', message: expect.stringContaining('a closing quote must end the field') },
      ],
    })
    expect(parseLookupCsv('key,value\na,"never closed\nb,2\n')).toEqual({ ok: false, issues: [{ path: 'line 2', message: 'a quoted field is not closed' }] })
    expect(parseLookupCsv('id,code\na,1\n')).toMatchObject({ ok: false, issues: [{ path: 'line 1', message: expect.stringContaining('header key,value') }] })
    expect(parseLookupCsv('')).toMatchObject({ ok: false, issues: [{ path: 'line 1' }] })
    expect(parseLookupCsv('Key,Value\r\na,1')).toEqual({ ok: true, entries: { a: '1' } })
  })
})

describe('lookup tables through the API (pglite)', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite')
  })
  afterAll(() => stack?.close())

  const importCsv = async (table: string, csv: string, options: { mode?: string; contentType?: string } = {}) => {
    const response = await fetch(`${stack.url}/api/v1/lookups/${table}/import${options.mode ? `?mode=${options.mode}` : ''}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${testCredentials.adminKey}`, 'content-type': options.contentType ?? 'text/csv; charset=utf-8' },
      body: csv,
    })
    return { status: response.status, body: (await response.json()) as any }
  }

  it('replaces a table, reads it back and lists it with its size', async () => {
    const put = await stack.api('/api/v1/lookups/crm-accounts', { method: 'PUT', body: { entries: { 'ACC-7': 'C007', 'ACC-12': 'C012' } } })
    expect(put).toEqual({ status: 200, body: { table: 'crm-accounts', entries: 2, added: 2, changed: 0, removed: 0 } })
    expect((await stack.api('/api/v1/lookups/crm-accounts')).body).toEqual({ table: 'crm-accounts', entries: { 'ACC-12': 'C012', 'ACC-7': 'C007' } })
    const { body } = await stack.api('/api/v1/lookups')
    expect(body.tables).toEqual([{ table: 'crm-accounts', entries: 2, updatedAt: expect.any(String) }])
    expect((await stack.api('/api/v1/lookups/no-such-table')).status).toBe(404)
  })

  it('merges a change: null deletes a key, other keys stay', async () => {
    const patch = await stack.api('/api/v1/lookups/crm-accounts', { method: 'PATCH', body: { entries: { 'ACC-7': null, 'ACC-31': 'C031', 'ACC-12': 'C012' } } })
    expect(patch.body).toEqual({ table: 'crm-accounts', entries: 2, added: 1, changed: 0, removed: 1 })
    expect((await stack.api('/api/v1/lookups/crm-accounts')).body.entries).toEqual({ 'ACC-12': 'C012', 'ACC-31': 'C031' })
  })

  it('refuses bad names and bad entries with their paths', async () => {
    const badName = await stack.api('/api/v1/lookups/Bad_Name', { method: 'PUT', body: { entries: { a: 'b' } } })
    expect(badName.status).toBe(422)
    expect(badName.body.error.details).toEqual([{ path: 'table', message: expect.stringContaining('lookup table name') }])
    const nullValue = await stack.api('/api/v1/lookups/crm-accounts', { method: 'PUT', body: { entries: { a: 'b', c: null } } })
    expect(nullValue.status).toBe(422)
    expect(nullValue.body.error.details).toEqual([{ path: 'entries.c', message: 'a value must not be null' }])
    expect((await stack.api('/api/v1/lookups/crm-accounts', { method: 'PUT', body: { rows: [] } })).status).toBe(422)
  })

  it('imports CSV with quoted commas and doubled quotes, replacing the table by default', async () => {
    const csv = 'key,value\r\nACC-7,"C007, Hangzhou"\r\n"ACC,99","C""99"""\r\nACC-12,C012\r\n'
    const imported = await importCsv('crm-accounts', csv)
    expect(imported).toEqual({ status: 200, body: { table: 'crm-accounts', mode: 'replace', entries: 3, added: 2, changed: 0, removed: 1 } })
    expect((await stack.api('/api/v1/lookups/crm-accounts')).body.entries).toEqual({ 'ACC-7': 'C007, Hangzhou', 'ACC,99': 'C"99"', 'ACC-12': 'C012' })

    const merged = await importCsv('crm-accounts', 'key,value\nACC-31,C031\n', { mode: 'merge' })
    expect(merged.body).toMatchObject({ mode: 'merge', entries: 4, added: 1 })
  })

  it('refuses a malformed CSV with the line of each problem and leaves the table as it was', async () => {
    const malformed = await importCsv('crm-accounts', 'key,value\nACC-1,C001\nACC-2,C002,extra\n"ACC-3,C003\n')
    expect(malformed.status).toBe(422)
    expect(malformed.body.error).toMatchObject({ code: 'validation_failed', details: [{ path: 'line 3', message: expect.stringContaining('got 3') }, { path: 'line 4', message: 'a quoted field is not closed' }] })
    expect(Object.keys((await stack.api('/api/v1/lookups/crm-accounts')).body.entries)).toHaveLength(4)
    expect((await importCsv('crm-accounts', '{"a":"b"}', { contentType: 'application/json' })).status).toBe(415)
    expect((await importCsv('crm-accounts', 'key,value\na,b\n', { mode: 'append' })).status).toBe(400)
  })

  it('audits every change, small merges key by key', async () => {
    const { body } = await stack.api('/api/v1/audit?subject=lookup:crm-accounts')
    expect(body.entries.map((e: { action: string }) => e.action)).toEqual(['lookup.imported', 'lookup.imported', 'lookup.updated', 'lookup.replaced'])
    const updated = body.entries[2]
    expect(updated.before).toEqual({ entries: 2, values: { 'ACC-7': 'C007', 'ACC-31': null } })
    expect(updated.after).toEqual({ entries: 2, added: 1, changed: 0, removed: 1, values: { 'ACC-7': null, 'ACC-31': 'C031' } })
    expect(body.entries[1]).toMatchObject({ before: { entries: 2 }, after: { entries: 3, added: 2, removed: 1 }, actor: expect.stringContaining('bootstrap admin') })
  })

  it('resolves a lookup in a mapping version against the imported table in preview, and sees a change at once', async () => {
    const { body: active } = await stack.api(`/api/v1/mappings/${inbound}`)
    const fields = active.spec.fields.map((f: { to: string }) => (f.to === 'customer.externalId' ? { ...f, lookup: 'crm-accounts' } : f))
    const { body: saved } = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: { ...active.spec, fields } } })
    const document = sampleOrder(3) // account ACC-7
    const preview = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document, version: saved.version } })
    expect(preview.body.output.customer.externalId).toBe('C007, Hangzhou')
    expect(preview.body.diff).toContainEqual({ path: 'customer.externalId', kind: 'changed', before: 'ACC-7', after: 'C007, Hangzhou' })

    await stack.api('/api/v1/lookups/crm-accounts', { method: 'PATCH', body: { entries: { 'ACC-7': 'C777' } } })
    const after = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document, version: saved.version } })
    expect(after.body.output.customer.externalId).toBe('C777')

    const unknown = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document: { ...document, account: { id: 'ACC-404' } }, version: saved.version } })
    expect(unknown.body.errors).toEqual(['customer.externalId: "ACC-404" is not in the lookup table crm-accounts (from account.id)'])
  })

  it('lets ops read tables and only admins change them', async () => {
    const { body: ops } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'ops key', role: 'ops' } })
    const { body: viewer } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: 'viewer key', role: 'viewer' } })
    expect((await stack.api('/api/v1/lookups/crm-accounts', { key: ops.key })).status).toBe(200)
    expect((await stack.api('/api/v1/lookups/crm-accounts', { method: 'PATCH', body: { entries: { a: 'b' } }, key: ops.key })).status).toBe(403)
    expect((await stack.api('/api/v1/lookups', { key: viewer.key })).status).toBe(403)
    expect((await stack.api('/api/v1/lookups/crm-accounts', { method: 'PUT', body: { entries: {} }, key: viewer.key })).status).toBe(403)
  })
})
