/**
 * The mappings in force. Files in `mappings/` are loaded and validated at start; in the database
 * every change is a new version and one version per mapping is active. A compiled version never
 * changes, so it is cached for good; which version is active, and lookup tables, are re-read after
 * a short time, so an activation in one process reaches every process within `ttlMs`.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { recordAudit } from '../admin/audit-log.ts'
import type { Database, Queryable } from '../db/database.ts'
import { canonicalJson } from '../shared/canonical-json.ts'
import { formatIssues, issuesOf } from '../shared/field-issues.ts'
import { compileMapping, type CompiledMapping } from './compile-mapping.ts'
import { mappingSpecSchema, type LookupTables, type MappingResult, type MappingSpec } from './mapping.schemas.ts'

export const defaultMappingsDir = fileURLToPath(new URL('../../mappings/', import.meta.url))

export interface MappingFile {
  file: string
  spec: MappingSpec
}

/** Reads and validates every mapping file; one error lists every invalid file with its field paths. */
export function loadMappingFiles(dir: string = defaultMappingsDir): MappingFile[] {
  const problems: string[] = []
  const loaded = readdirSync(dir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .flatMap((file) => {
      const text = readFileSync(path.join(dir, file), 'utf8')
      let raw: unknown
      try {
        raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)
      } catch (err) {
        problems.push(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`)
        return []
      }
      const result = mappingSpecSchema.safeParse(raw)
      if (!result.success) {
        problems.push(`${file}:\n${formatIssues(issuesOf(result.error))}`)
        return []
      }
      return [{ file, spec: result.data }]
    })
  if (problems.length) throw new Error(`invalid mapping files:\n${problems.join('\n')}`)
  return loaded
}

export function loadMappingSpecs(dir?: string): MappingSpec[] {
  return loadMappingFiles(dir).map((f) => f.spec)
}

export interface ResolvedMapping {
  id: string
  version: number
  compiled: CompiledMapping
}

export interface MappingCatalog {
  /** Ids known to this process; the connection registry checks references against them at start. */
  has(id: string): boolean
  active(id: string): Promise<ResolvedMapping>
  version(id: string, version: number): Promise<ResolvedMapping>
  lookups(tables: readonly string[]): Promise<LookupTables>
  /** Forgets cached activations and lookups (after a change made in this process). */
  invalidate(): void
}

/** Applies a resolved mapping with a snapshot of the lookup tables it reads. */
export async function applyMapping(catalog: MappingCatalog, mapping: ResolvedMapping, document: unknown): Promise<MappingResult> {
  const lookups = mapping.compiled.lookupTables.length ? await catalog.lookups(mapping.compiled.lookupTables) : undefined
  return mapping.compiled.apply(document, { lookups })
}

/** A catalog of the files alone: each mapping has one version (1). For the offline CLI and tests. */
export function createFileCatalog(specs: readonly MappingSpec[], lookups: LookupTables = {}): MappingCatalog {
  const byId = new Map(specs.map((s) => [s.id, { id: s.id, version: 1, compiled: compileMapping(s) }]))
  const get = (id: string) => {
    const found = byId.get(id)
    if (!found) throw new Error(`no mapping with id "${id}"`)
    return found
  }
  return {
    has: (id) => byId.has(id),
    active: async (id) => get(id),
    version: async (id, version) => {
      if (version !== 1) throw new Error(`mapping "${id}" has no version ${version}`)
      return get(id)
    },
    lookups: async (tables) => Object.fromEntries(tables.map((t) => [t, lookups[t] ?? {}])),
    invalidate: () => {},
  }
}

export class UnknownMapping extends Error {}

export function createDatabaseCatalog(db: Queryable, knownIds: Iterable<string>, options: { ttlMs?: number } = {}): MappingCatalog {
  const ttlMs = options.ttlMs ?? 1_000
  const ids = new Set(knownIds)
  const compiled = new Map<string, ResolvedMapping>()
  let activeCache = { at: 0, versions: new Map<string, number>() }
  const lookupCache = new Map<string, { at: number; entries: Record<string, unknown> }>()

  async function version(id: string, v: number): Promise<ResolvedMapping> {
    const cacheKey = `${id}@${v}`
    const hit = compiled.get(cacheKey)
    if (hit) return hit
    const [row] = await db.query<{ spec: unknown }>('select spec from mapping_versions where mapping_id = $1 and version = $2', [id, v])
    if (!row) throw new UnknownMapping(`mapping "${id}" has no version ${v}`)
    const resolved = { id, version: v, compiled: compileMapping(mappingSpecSchema.parse(row.spec)) }
    compiled.set(cacheKey, resolved)
    return resolved
  }

  return {
    has: (id) => ids.has(id),
    async active(id) {
      if (Date.now() - activeCache.at > ttlMs) {
        const rows = await db.query<{ id: string; active_version: number }>('select id, active_version from mappings')
        activeCache = { at: Date.now(), versions: new Map(rows.map((r) => [r.id, r.active_version])) }
        for (const r of rows) ids.add(r.id)
      }
      const v = activeCache.versions.get(id)
      if (v === undefined) throw new UnknownMapping(`no mapping with id "${id}"`)
      return version(id, v)
    },
    version,
    async lookups(tables) {
      const stale = tables.filter((t) => Date.now() - (lookupCache.get(t)?.at ?? 0) > ttlMs)
      if (stale.length) {
        const rows = await db.query<{ table_name: string; key: string; value: unknown }>('select table_name, key, value from lookup_entries where table_name = any($1::text[])', [stale])
        const fresh = new Map(stale.map((t) => [t, {} as Record<string, unknown>]))
        for (const r of rows) fresh.get(r.table_name)![r.key] = r.value
        for (const [t, entries] of fresh) lookupCache.set(t, { at: Date.now(), entries })
      }
      return Object.fromEntries(tables.map((t) => [t, lookupCache.get(t)!.entries]))
    },
    invalidate() {
      activeCache = { at: 0, versions: new Map() }
      lookupCache.clear()
    },
  }
}

// Several processes may start at once; one of them brings the files in, the others find it done.
export const fileSyncLockKey = 7_000_003

/**
 * Brings the mapping files into the database. A new file becomes version 1, active. A changed file
 * becomes a new version, activated only if the active version was the file's previous one: a version
 * an admin activated through the API is never replaced by a deploy.
 */
export async function syncMappingFiles(db: Database, files: readonly MappingFile[]): Promise<{ created: string[]; activated: string[] }> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [fileSyncLockKey])
    const created: string[] = []
    const activated: string[] = []
    for (const { file, spec } of files) {
      const [latestFile] = await tx.query<{ version: number; spec: unknown }>(
        `select version, spec from mapping_versions where mapping_id = $1 and origin = 'file' order by version desc limit 1`,
        [spec.id],
      )
      if (latestFile && canonicalJson(latestFile.spec) === canonicalJson(spec)) continue
      const [{ next }] = (await tx.query<{ next: number }>('select coalesce(max(version), 0) + 1 as next from mapping_versions where mapping_id = $1', [spec.id])) as [{ next: number }]
      await tx.query(`insert into mapping_versions (mapping_id, version, spec, origin, created_by, comment) values ($1, $2, $3, 'file', $4, $5)`, [
        spec.id,
        next,
        JSON.stringify(spec),
        `file:${file}`,
        latestFile ? 'the file changed' : 'loaded from the file',
      ])
      created.push(`${spec.id}@${next}`)
      const [current] = await tx.query<{ active_version: number }>('select active_version from mappings where id = $1', [spec.id])
      if (!current || current.active_version === latestFile?.version) {
        await tx.query('insert into mappings (id, active_version) values ($1, $2) on conflict (id) do update set active_version = $2, updated_at = now()', [spec.id, next])
        activated.push(`${spec.id}@${next}`)
      }
      await recordAudit(tx, { actor: `file:${file}`, action: 'mapping.version_created', subject: `mapping:${spec.id}`, before: latestFile ? { version: latestFile.version } : undefined, after: { version: next, activated: activated.includes(`${spec.id}@${next}`) } })
    }
    return { created, activated }
  })
}
