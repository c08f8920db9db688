/**
 * Cross-reference tables for mapping lookups (e.g. CRM account id → ERP customer code): read,
 * replace, merge and import from CSV, each change in the audit log. A table exists while it has
 * entries. Mappings read the tables through the catalog's snapshot, never from here.
 */
import { z } from 'zod'
import { recordAudit } from '../admin/audit-log.ts'
import type { Database, Queryable } from '../db/database.ts'
import type { FieldIssue } from '../shared/field-issues.ts'

export const lookupTableNameSchema = z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, 'a lookup table name: lower-case letters, digits, . and -').max(100)

const keySchema = z.string().min(1, 'a key must not be empty').max(500, 'a key is at most 500 characters')
// A value can be any JSON (a code, or an object for a richer cross-reference); null means "no entry".
const valueSchema = z.json().refine((v) => v !== null, 'a value must not be null')

/** At most this many entries per table: a snapshot of every table a mapping reads is held in memory. */
export const maxLookupEntries = 200_000

export const replaceEntriesSchema = z.object({ entries: z.record(keySchema, valueSchema) })
/** In a merge, null deletes the key. */
export const mergeEntriesSchema = z.object({ entries: z.record(keySchema, z.json()) })

export type LookupEntries = Record<string, unknown>

export const lookupSubject = (table: string) => `lookup:${table}`

export async function listLookupTables(db: Queryable) {
  const rows = await db.query<{ table_name: string; entries: number; updated_at: Date }>(
    'select table_name, count(*)::int as entries, max(updated_at) as updated_at from lookup_entries group by table_name order by table_name',
  )
  return rows.map((r) => ({ table: r.table_name, entries: r.entries, updatedAt: r.updated_at.toISOString() }))
}

/** The table's entries by key, or undefined when it has none. */
export async function readLookupTable(db: Queryable, table: string): Promise<LookupEntries | undefined> {
  const rows = await db.query<{ key: string; value: unknown }>('select key, value from lookup_entries where table_name = $1 order by key', [table])
  return rows.length ? Object.fromEntries(rows.map((r) => [r.key, r.value])) : undefined
}

export class LookupTooLarge extends Error {}

// Keys whose value changed, listed in the audit entry up to this many; beyond it only counts.
const maxAuditedKeys = 100

interface Counts {
  entries: number
  added: number
  changed: number
  removed: number
}

function compare(before: LookupEntries, after: LookupEntries): Counts {
  let added = 0
  let changed = 0
  for (const [k, v] of Object.entries(after)) {
    if (!Object.hasOwn(before, k)) added++
    else if (JSON.stringify(before[k]) !== JSON.stringify(v)) changed++
  }
  const removed = Object.keys(before).filter((k) => !Object.hasOwn(after, k)).length
  return { entries: Object.keys(after).length, added, changed, removed }
}

async function entriesIn(tx: Queryable, table: string): Promise<LookupEntries> {
  // Locks the table's rows so concurrent writers to one table take turns.
  const rows = await tx.query<{ key: string; value: unknown }>('select key, value from lookup_entries where table_name = $1 for update', [table])
  return Object.fromEntries(rows.map((r) => [r.key, r.value]))
}

async function insertEntries(tx: Queryable, table: string, entries: LookupEntries) {
  if (!Object.keys(entries).length) return
  // One parameter however many entries: PostgreSQL allows at most 65535 bind parameters.
  await tx.query(
    `insert into lookup_entries (table_name, key, value) select $1, e.key, e.value from jsonb_each($2::jsonb) e
     on conflict (table_name, key) do update set value = excluded.value, updated_at = now()`,
    [table, JSON.stringify(entries)],
  )
}

/** Replaces the whole table; an empty `entries` deletes it. */
export async function replaceLookupTable(
  db: Database,
  input: { table: string; entries: LookupEntries; actor: string; action?: 'lookup.replaced' | 'lookup.imported' },
): Promise<Counts> {
  if (Object.keys(input.entries).length > maxLookupEntries) throw new LookupTooLarge(`a lookup table holds at most ${maxLookupEntries} entries`)
  return db.transaction(async (tx) => {
    const before = await entriesIn(tx, input.table)
    const counts = compare(before, input.entries)
    await tx.query('delete from lookup_entries where table_name = $1', [input.table])
    await insertEntries(tx, input.table, input.entries)
    await recordAudit(tx, {
      actor: input.actor,
      action: input.action ?? 'lookup.replaced',
      subject: lookupSubject(input.table),
      before: { entries: Object.keys(before).length },
      after: counts,
    })
    return counts
  })
}

/** Sets the given keys and deletes those whose value is null; other keys stay. */
export async function mergeLookupTable(
  db: Database,
  input: { table: string; entries: LookupEntries; actor: string; action?: 'lookup.updated' | 'lookup.imported' },
): Promise<Counts> {
  return db.transaction(async (tx) => {
    const before = await entriesIn(tx, input.table)
    const after: LookupEntries = { ...before }
    const set: LookupEntries = {}
    const deleted: string[] = []
    for (const [k, v] of Object.entries(input.entries)) {
      if (v === null) {
        if (Object.hasOwn(after, k)) deleted.push(k)
        delete after[k]
      } else {
        set[k] = v
        after[k] = v
      }
    }
    if (Object.keys(after).length > maxLookupEntries) throw new LookupTooLarge(`a lookup table holds at most ${maxLookupEntries} entries`)
    const counts = compare(before, after)
    if (deleted.length) await tx.query('delete from lookup_entries where table_name = $1 and key = any($2::text[])', [input.table, deleted])
    await insertEntries(tx, input.table, set)
    // Small edits are audited key by key, with old and new values; large ones by counts.
    const touched = Object.keys(input.entries).filter((k) => JSON.stringify(before[k] ?? null) !== JSON.stringify(after[k] ?? null))
    const detail = touched.length <= maxAuditedKeys
    await recordAudit(tx, {
      actor: input.actor,
      action: input.action ?? 'lookup.updated',
      subject: lookupSubject(input.table),
      before: { entries: Object.keys(before).length, ...(detail ? { values: Object.fromEntries(touched.map((k) => [k, before[k] ?? null])) } : {}) },
      after: { ...counts, ...(detail ? { values: Object.fromEntries(touched.map((k) => [k, after[k] ?? null])) } : {}) },
    })
    return counts
  })
}

// ---------------------------------------------------------------------------------------------
// CSV

/** One record of a CSV text, with the line it starts on (1-based, as an editor shows it). */
export interface CsvRecord {
  line: number
  fields: string[]
}

/**
 * Parses CSV as RFC 4180 describes it: comma-separated fields, records ending in CRLF or LF,
 * fields in double quotes may hold commas, line breaks and doubled quotes (`""`). A leading
 * byte-order mark and blank lines are skipped. Errors name the line.
 */
export function parseCsv(text: string): { records: CsvRecord[]; issues: FieldIssue[] } {
  const records: CsvRecord[] = []
  const issues: FieldIssue[] = []
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0
  let line = 1
  const n = text.length
  while (i < n) {
    const start = line
    const fields: string[] = []
    let broken = false
    // One record: fields until an unquoted line break or the end.
    for (;;) {
      let field = ''
      if (text[i] === '"') {
        const quoteLine = line
        i++
        let closed = false
        while (i < n) {
          const c = text[i]!
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"'
              i += 2
              continue
            }
            i++
            closed = true
            break
          }
          if (c === '\n') line++
          field += c
          i++
        }
        if (!closed) {
          issues.push({ path: `line ${quoteLine}`, message: 'a quoted field is not closed' })
          return { records, issues }
        }
        if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          issues.push({ path: `line ${line}`, message: 'a closing quote must end the field (write "" for a quote inside a quoted field)' })
          broken = true
        }
      }
      // Unquoted text (or, after a malformed quoted field, the rest of it).
      while (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        if (text[i] === '"' && !broken) {
          issues.push({ path: `line ${line}`, message: 'a quote inside an unquoted field (quote the whole field and write "" for the quote)' })
          broken = true
        }
        field += text[i]
        i++
      }
      fields.push(field)
      if (text[i] === ',') {
        i++
        continue
      }
      break
    }
    // The record's line break: CRLF, LF, or a lone CR.
    if (text[i] === '\r') i++
    if (text[i] === '\n') i++
    line++
    const blank = fields.length === 1 && fields[0] === ''
    if (!blank && !broken) records.push({ line: start, fields })
  }
  return { records, issues }
}

/**
 * A lookup table from CSV: a `key,value` header, then one entry per record. Values are strings;
 * a key may appear once.
 */
export function parseLookupCsv(text: string): { ok: true; entries: Record<string, string> } | { ok: false; issues: FieldIssue[] } {
  const { records, issues } = parseCsv(text)
  const [header, ...rows] = records
  if (!header) return { ok: false, issues: issues.length ? issues : [{ path: 'line 1', message: 'the CSV is empty; it needs a key,value header row' }] }
  if (header.fields.length !== 2 || header.fields[0]!.trim().toLowerCase() !== 'key' || header.fields[1]!.trim().toLowerCase() !== 'value') {
    issues.unshift({ path: `line ${header.line}`, message: `the first row must be the header key,value (got ${header.fields.join(',')})` })
  }
  const entries: Record<string, string> = {}
  const lineOf = new Map<string, number>()
  for (const { line, fields } of rows) {
    if (fields.length !== 2) {
      issues.push({ path: `line ${line}`, message: `expected 2 fields (key,value), got ${fields.length}; quote a field that contains a comma` })
      continue
    }
    const [key, value] = fields as [string, string]
    const keyProblem = keySchema.safeParse(key)
    if (!keyProblem.success) {
      issues.push({ path: `line ${line}`, message: keyProblem.error.issues[0]!.message })
      continue
    }
    const earlier = lineOf.get(key)
    if (earlier !== undefined) {
      issues.push({ path: `line ${line}`, message: `the key ${JSON.stringify(key)} is already on line ${earlier}` })
      continue
    }
    lineOf.set(key, line)
    entries[key] = value
  }
  issues.sort((a, b) => Number(a.path.slice(5)) - Number(b.path.slice(5)))
  return issues.length ? { ok: false, issues: issues.slice(0, 100) } : { ok: true, entries }
}
