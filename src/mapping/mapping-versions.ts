/**
 * Mapping versions as admins manage them: list and read versions, save a new version, activate one
 * (only after its golden examples pass, and after a clean shadow run when asked), preview a version
 * on a document, shadow-run a draft over recent real documents, and replay an event with a chosen
 * version. All database access for mappings after start-up lives here; file sync stays in
 * mapping-catalog.ts. Applying a mapping stays pure: lookups come in as a snapshot.
 * Calls no connector: a connection is read only for which mapping it uses and which schema checks
 * the mapping's output.
 */
import { z } from 'zod'
import { recordAudit } from '../admin/audit-log.ts'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Database, Queryable } from '../db/database.ts'
import { mappedOrderSchema } from '../orders/order.schemas.ts'
import { ensureJob, ingestJobId, type QueueSet } from '../queue/queues.ts'
import { canonicalJson } from '../shared/canonical-json.ts'
import { issuesOf, type FieldIssue } from '../shared/field-issues.ts'
import { compileMapping, describeMappingError, MappingCompileError, type CompiledMapping } from './compile-mapping.ts'
import { diffDocuments, type ChangeKind, type FieldChange } from './document-diff.ts'
import { defaultExamplesDir, loadExamples, runExamples, type ExampleOutcome } from './golden-examples.ts'
import { applyMapping, fileSyncLockKey, UnknownMapping, type MappingCatalog, type ResolvedMapping } from './mapping-catalog.ts'
import { mappingSpecSchema, type LookupTables, type MappingError, type MappingResult, type MappingSpec } from './mapping.schemas.ts'

export interface MappingServiceDeps {
  db: Database
  catalog: MappingCatalog
  connections: ConnectionRegistry
  queues: QueueSet
  /** The golden examples; `mappings/examples/` unless a test points elsewhere. */
  examplesDir?: string
}

export type RefusalCode = 'not_found' | 'validation_failed' | 'examples_failed' | 'shadow_required' | 'not_replayable'

/** A request the service will not carry out, with a stable code and, where a field is at fault, its path. */
export class MappingRefusal extends Error {
  readonly code: RefusalCode
  readonly details?: FieldIssue[]
  /** More for the caller, e.g. the failing examples. */
  readonly data?: Record<string, unknown>
  constructor(code: RefusalCode, message: string, details?: FieldIssue[], data?: Record<string, unknown>) {
    super(message)
    this.name = 'MappingRefusal'
    this.code = code
    if (details) this.details = details
    if (data) this.data = data
  }
}

export const mappingSubject = (id: string) => `mapping:${id}`

/** Version numbers are int4 in the database. */
export const versionNumberSchema = z.number().int().positive().max(2_147_483_647)

// ---------------------------------------------------------------------------------------------
// Repository

export interface MappingVersionView {
  id: string
  version: number
  origin: string
  createdAt: string
  createdBy: string
  comment: string | null
}

interface VersionRow {
  mapping_id: string
  version: number
  spec: unknown
  origin: string
  created_at: Date
  created_by: string
  comment: string | null
}

const versionView = (r: VersionRow): MappingVersionView => ({
  id: r.mapping_id,
  version: r.version,
  origin: r.origin,
  createdAt: r.created_at.toISOString(),
  createdBy: r.created_by,
  comment: r.comment,
})

export async function listMappings(db: Queryable) {
  const rows = await db.query<{ id: string; active_version: number; latest_version: number; description: string | null; updated_at: Date }>(
    `select m.id, m.active_version, v.spec->>'description' as description,
            (select max(version) from mapping_versions where mapping_id = m.id) as latest_version,
            greatest(m.updated_at, (select max(created_at) from mapping_versions where mapping_id = m.id)) as updated_at
     from mappings m join mapping_versions v on v.mapping_id = m.id and v.version = m.active_version
     order by m.id`,
  )
  return rows.map((r) => ({ id: r.id, activeVersion: r.active_version, latestVersion: r.latest_version, description: r.description, updatedAt: r.updated_at.toISOString() }))
}

export async function activeVersionOf(db: Queryable, id: string): Promise<number | undefined> {
  const [row] = await db.query<{ active_version: number }>('select active_version from mappings where id = $1', [id])
  return row?.active_version
}

export async function findVersion(db: Queryable, id: string, version: number): Promise<(MappingVersionView & { spec: unknown }) | undefined> {
  const [row] = await db.query<VersionRow>(
    'select mapping_id, version, spec, origin, created_at, created_by, comment from mapping_versions where mapping_id = $1 and version = $2',
    [id, version],
  )
  return row && { ...versionView(row), spec: row.spec }
}

/** Newest first, without the specs (a spec can be large; read one version for it). */
export async function listVersions(db: Queryable, id: string): Promise<MappingVersionView[]> {
  const rows = await db.query<VersionRow>(
    'select mapping_id, version, origin, created_at, created_by, comment from mapping_versions where mapping_id = $1 order by version desc',
    [id],
  )
  return rows.map(versionView)
}

interface ShadowRunRow {
  id: number
  version: number
  active_version: number
  at: Date
  documents: number
  clean: boolean
  report: ShadowReport
}

export async function latestShadowRun(db: Queryable, id: string, version: number) {
  const [row] = await db.query<ShadowRunRow>(
    'select id, version, active_version, at, documents, clean, report from mapping_shadow_runs where mapping_id = $1 and version = $2 order by id desc limit 1',
    [id, version],
  )
  return row && { id: row.id, activeVersion: row.active_version, at: row.at.toISOString(), documents: row.documents, clean: row.clean, summary: row.report.summary }
}

// ---------------------------------------------------------------------------------------------
// Validation

/**
 * Validates a spec from the API and compiles it. `spec.id` may be left out (it is the mapping in
 * the URL) but may not name another mapping. Paths in the issues start at `spec.`.
 */
export function validateSpec(id: string, raw: unknown): { spec: MappingSpec; compiled: CompiledMapping } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new MappingRefusal('validation_failed', 'the mapping spec is invalid', [{ path: 'spec', message: 'must be an object' }])
  }
  const given = raw as Record<string, unknown>
  if (given.id !== undefined && given.id !== id) {
    throw new MappingRefusal('validation_failed', 'the mapping spec is invalid', [{ path: 'spec.id', message: `must be "${id}", the mapping in the URL, or left out` }])
  }
  const parsed = mappingSpecSchema.safeParse({ ...given, id })
  if (!parsed.success) throw new MappingRefusal('validation_failed', 'the mapping spec is invalid', issuesOf(parsed.error, ['spec']))
  try {
    return { spec: parsed.data, compiled: compileMapping(parsed.data) }
  } catch (err) {
    if (err instanceof MappingCompileError) {
      throw new MappingRefusal('validation_failed', 'the mapping spec does not compile', err.issues.map((i) => ({ path: `spec.${i.path}`, message: i.message })))
    }
    throw err
  }
}

async function resolveVersion(deps: MappingServiceDeps, id: string, version: number): Promise<ResolvedMapping> {
  try {
    return await deps.catalog.version(id, version)
  } catch (err) {
    if (err instanceof UnknownMapping) throw new MappingRefusal('not_found', `mapping "${id}" has no version ${version}`)
    throw err
  }
}

async function requireActive(db: Queryable, id: string): Promise<number> {
  const active = await activeVersionOf(db, id)
  if (active === undefined) throw new MappingRefusal('not_found', `no mapping "${id}"`)
  return active
}

// ---------------------------------------------------------------------------------------------
// Where a mapping is used: which documents it reads and which schema checks what it writes

export interface MappingUse {
  connection: string
  purpose: string
}

export function usesOf(connections: ConnectionRegistry, id: string): MappingUse[] {
  return connections.all().flatMap((c) => Object.entries(c.mappings).filter(([, m]) => m === id).map(([purpose]) => ({ connection: c.id, purpose })))
}

/** What consumes the output, checked after mapping just as the pipeline will check it. */
interface Contract {
  name: string
  check(value: unknown): FieldIssue[]
}

const schemaCheck = (schema: z.ZodType) => (value: unknown) => {
  const result = schema.safeParse(value)
  return result.success ? [] : issuesOf(result.error)
}

/** The schema the pipeline checks the output with: the canonical order (normalize) or the ERP operation's input (sync). */
function contractOf(connections: ConnectionRegistry, id: string): Contract | undefined {
  for (const use of usesOf(connections, id)) {
    if (use.purpose === 'inbound') return { name: 'the canonical order', check: schemaCheck(mappedOrderSchema) }
    const salesOrders = connections.get(use.connection)?.connector.salesOrders
    if (use.purpose === 'salesOrder' && salesOrders) return { name: `the ${use.connection} sales order`, check: schemaCheck(salesOrders.upsert.inputSchema) }
  }
  return undefined
}

interface Evaluation {
  /** The mapping's output, as JSON would carry it; null when mapping failed. */
  output: Record<string, unknown> | null
  errors: MappingError[]
}

// Through JSON, as the answer and stored documents are: `undefined` members vanish on both sides.
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

function checked(result: MappingResult, contract: Contract | undefined): Evaluation {
  if (!result.ok) return { output: null, errors: result.errors }
  const output = plain(result.value)
  const issues = contract?.check(output) ?? []
  return { output, errors: issues.map((i) => ({ target: i.path, message: `${i.message} (checked by ${contract!.name})` })) }
}

async function evaluate(compiled: CompiledMapping, document: unknown, lookups: LookupTables | undefined, contract: Contract | undefined): Promise<Evaluation> {
  return checked(await compiled.apply(document, { lookups }), contract)
}

async function lookupsFor(catalog: MappingCatalog, mappings: readonly CompiledMapping[]): Promise<LookupTables | undefined> {
  const tables = [...new Set(mappings.flatMap((m) => m.lookupTables))]
  return tables.length ? catalog.lookups(tables) : undefined
}

// ---------------------------------------------------------------------------------------------
// Service: read

export async function listMappingsWithUses(deps: Pick<MappingServiceDeps, 'db' | 'connections'>) {
  const mappings = await listMappings(deps.db)
  return mappings.map((m) => ({ ...m, usedBy: usesOf(deps.connections, m.id) }))
}

export async function getActiveVersion(db: Queryable, id: string) {
  const found = await findVersion(db, id, await requireActive(db, id))
  if (!found) throw new MappingRefusal('not_found', `no mapping "${id}"`)
  return found
}

export async function getVersion(db: Queryable, id: string, version: number) {
  const active = await requireActive(db, id)
  const found = await findVersion(db, id, version)
  if (!found) throw new MappingRefusal('not_found', `mapping "${id}" has no version ${version}`)
  // The editor shows whether an activation that requires a clean shadow run would pass.
  return { ...found, active: version === active, latestShadowRun: (await latestShadowRun(db, id, version)) ?? null }
}

export async function getVersions(db: Queryable, id: string) {
  const active = await requireActive(db, id)
  const versions = await listVersions(db, id)
  return { id, activeVersion: active, versions: versions.map((v) => ({ ...v, active: v.version === active })) }
}

// ---------------------------------------------------------------------------------------------
// Service: save and activate

export interface SaveResult {
  id: string
  version: number
  active: boolean
  /** False when the spec equals the latest version's: saving it again changes nothing. */
  created: boolean
}

/**
 * Saves a new version; it is not activated. A mapping that does not exist yet is created with
 * this version active, since there is no other version to run, once its examples (if any) pass.
 */
export async function saveVersion(deps: MappingServiceDeps, input: { id: string; spec: unknown; comment?: string; actor: string }): Promise<SaveResult> {
  const { id, actor } = input
  const { spec, compiled } = validateSpec(id, input.spec)
  if ((await activeVersionOf(deps.db, id)) === undefined) await requirePassingExamples(deps, id, compiled, 1)

  const saved = await deps.db.transaction(async (tx) => {
    // The same lock as file sync: both number versions as max + 1.
    await tx.query('select pg_advisory_xact_lock($1)', [fileSyncLockKey])
    const [latest] = await tx.query<{ version: number; spec: unknown }>('select version, spec from mapping_versions where mapping_id = $1 order by version desc limit 1', [id])
    const active = await activeVersionOf(tx, id)
    if (latest && canonicalJson(latest.spec) === canonicalJson(spec)) return { id, version: latest.version, active: active === latest.version, created: false }
    const version = (latest?.version ?? 0) + 1
    await tx.query(`insert into mapping_versions (mapping_id, version, spec, origin, created_by, comment) values ($1, $2, $3, 'api', $4, $5)`, [
      id,
      version,
      JSON.stringify(spec),
      actor,
      input.comment ?? null,
    ])
    const activate = active === undefined
    if (activate) await tx.query('insert into mappings (id, active_version) values ($1, $2)', [id, version])
    await recordAudit(tx, { actor, action: 'mapping.version_created', subject: mappingSubject(id), before: latest ? { version: latest.version } : undefined, after: { version, activated: activate } })
    return { id, version, active: activate, created: true }
  })
  if (saved.created && saved.active) deps.catalog.invalidate()
  return saved
}

function describeDifference(d: FieldChange): string {
  const show = (v: unknown) => JSON.stringify(v)
  if (d.kind === 'added') return `not expected, got ${show(d.after)}`
  if (d.kind === 'removed') return `expected ${show(d.before)}, got nothing`
  return `expected ${show(d.before)}, got ${show(d.after)}`
}

async function requirePassingExamples(deps: MappingServiceDeps, id: string, compiled: CompiledMapping, version: number): Promise<ExampleOutcome[]> {
  let outcomes: ExampleOutcome[]
  try {
    outcomes = await runExamples(compiled, loadExamples(id, deps.examplesDir ?? defaultExamplesDir))
  } catch (err) {
    // A broken example folder must not let a version through unchecked.
    throw new MappingRefusal('examples_failed', `the golden examples of "${id}" cannot be read: ${(err as Error).message}`)
  }
  const failed = outcomes.filter((o) => !o.passed)
  if (failed.length) {
    throw new MappingRefusal(
      'examples_failed',
      `${failed.length} of ${outcomes.length} golden examples of "${id}" fail with version ${version}`,
      failed.flatMap((o) => o.differences.map((d) => ({ path: `${o.name}: ${d.path || '(root)'}`, message: describeDifference(d) }))),
      { examples: failed },
    )
  }
  return outcomes
}

export interface ActivationResult {
  id: string
  version: number
  previousVersion: number
  changed: boolean
  examples: { run: number; passed: number }
}

/**
 * Makes `version` the one in force; rollback is activating an older version. The version's golden
 * examples must pass; with `requireCleanShadow`, its latest shadow run, against the version active
 * now, must be clean. This process sees the change at once, others within the catalog's TTL.
 */
export async function activateVersion(
  deps: MappingServiceDeps,
  input: { id: string; version: number; requireCleanShadow: boolean; actor: string },
): Promise<ActivationResult> {
  const { id, version } = input
  const current = await requireActive(deps.db, id)
  const target = await resolveVersion(deps, id, version)
  if (current === version) return { id, version, previousVersion: current, changed: false, examples: { run: 0, passed: 0 } }

  if (input.requireCleanShadow) {
    const run = await latestShadowRun(deps.db, id, version)
    const hint = `run POST /api/v1/mappings/${id}/shadow with version ${version}`
    if (!run) throw new MappingRefusal('shadow_required', `version ${version} has no shadow run; ${hint}`)
    if (!run.clean) throw new MappingRefusal('shadow_required', `the latest shadow run of version ${version} (run ${run.id}) is not clean`, undefined, { shadowRun: run })
    if (run.activeVersion !== current) {
      throw new MappingRefusal('shadow_required', `the latest shadow run of version ${version} compared it with version ${run.activeVersion}, but version ${current} is active now; ${hint}`, undefined, { shadowRun: run })
    }
  }
  const outcomes = await requirePassingExamples(deps, id, target.compiled, version)

  const previousVersion = await deps.db.transaction(async (tx) => {
    const [row] = await tx.query<{ active_version: number }>('select active_version from mappings where id = $1 for update', [id])
    const previous = row!.active_version
    await tx.query('update mappings set active_version = $2, updated_at = now() where id = $1', [id, version])
    await recordAudit(tx, { actor: input.actor, action: 'mapping.activated', subject: mappingSubject(id), before: { version: previous }, after: { version } })
    return previous
  })
  deps.catalog.invalidate()
  return { id, version, previousVersion, changed: previousVersion !== version, examples: { run: outcomes.length, passed: outcomes.length } }
}

// ---------------------------------------------------------------------------------------------
// Service: preview

export const previewRequestSchema = z
  .object({
    document: z.unknown().refine((d) => d !== undefined, 'a document to map is required'),
    version: versionNumberSchema.optional(),
    spec: z.unknown().optional().describe('an unsaved spec, to preview an edit before saving it'),
  })
  .refine((b) => b.version === undefined || b.spec === undefined, { message: 'give a version or a spec, not both', path: ['spec'] })

export async function previewMapping(deps: MappingServiceDeps, input: { id: string; document: unknown; version?: number; spec?: unknown }) {
  const { id, document } = input
  const activeVersion = await activeVersionOf(deps.db, id)
  let draft: { version: number | null; compiled: CompiledMapping }
  if (input.spec !== undefined) draft = { version: null, compiled: validateSpec(id, input.spec).compiled }
  else if (input.version !== undefined) draft = await resolveVersion(deps, id, input.version)
  else if (activeVersion !== undefined) draft = await resolveVersion(deps, id, activeVersion)
  else throw new MappingRefusal('not_found', `no mapping "${id}"`)

  const contract = contractOf(deps.connections, id)
  const run = async (compiled: CompiledMapping) => checked(await applyMapping(deps.catalog, { id, version: draft.version ?? 0, compiled }, document), contract)
  const mine = await run(draft.compiled)
  const active = activeVersion === undefined ? undefined : activeVersion === draft.version ? mine : await run((await resolveVersion(deps, id, activeVersion)).compiled)
  return {
    id,
    version: draft.version,
    output: mine.output,
    errors: mine.errors.map(describeMappingError),
    fieldErrors: mine.errors,
    activeVersion: activeVersion ?? null,
    activeOutput: active?.output ?? null,
    activeErrors: active ? active.errors.map(describeMappingError) : [],
    // Only two outputs compare; when either side failed, its errors say why.
    diff: mine.output && active?.output ? diffDocuments(active.output, mine.output) : null,
  }
}

// ---------------------------------------------------------------------------------------------
// Service: shadow run

export const shadowRequestSchema = z.object({
  version: versionNumberSchema,
  last: z.number().int().min(1).max(1000).default(100),
})

type DocumentSource = { kind: 'inbox'; connections: string[] } | { kind: 'orders'; connections: string[] } | { kind: 'none' }

function documentSourceOf(connections: ConnectionRegistry, id: string): DocumentSource {
  const uses = usesOf(connections, id)
  const inbound = uses.filter((u) => u.purpose === 'inbound').map((u) => u.connection)
  if (inbound.length) return { kind: 'inbox', connections: inbound }
  const outbound = uses.filter((u) => u.purpose === 'salesOrder').map((u) => u.connection)
  if (outbound.length) return { kind: 'orders', connections: outbound }
  return { kind: 'none' }
}

async function recentDocuments(db: Queryable, source: DocumentSource, last: number): Promise<{ ref: string; document: unknown }[]> {
  if (source.kind === 'inbox') {
    const rows = await db.query<{ id: number; document: unknown }>(
      'select id, document from inbox_events where connection_id = any($1::text[]) order by id desc limit $2',
      [source.connections, last],
    )
    return rows.map((r) => ({ ref: String(r.id), document: r.document }))
  }
  if (source.kind === 'orders') {
    // Every order goes to the pipeline's ERP; the document is what the sync step maps (with our id).
    const rows = await db.query<{ id: string; document: Record<string, unknown> }>('select id, document from orders order by updated_at desc, id limit $1', [last])
    return rows.map((r) => ({ ref: r.id, document: { ...r.document, id: r.id } }))
  }
  return []
}

export interface ShadowSample {
  ref: string
  changes: FieldChange[]
  newErrors: string[]
}

export interface ShadowReport {
  runId: number
  at: string
  id: string
  version: number
  activeVersion: number
  /** Where the documents came from: inbox events of the connections that map with it, or orders. */
  source: DocumentSource
  documents: number
  changedDocuments: number
  clean: boolean
  /** Field changes by kind, over all documents; errors by document. */
  summary: { changed: number; emptied: number; typeChanged: number; added: number; removed: number; newErrors: number; fixedErrors: number }
  /** Each changed field, list indexes folded (`lines[*].qty`), with how many documents show it. */
  fields: { path: string; kind: ChangeKind; documents: number }[]
  samples: ShadowSample[]
}

const maxSamples = 50
const maxFields = 100

/**
 * Maps the last `last` real documents with the draft and with the active version and reports the
 * differences. Clean means nothing got worse: no field emptied or removed, no type changed and no
 * new error (changed and added values are what a new version is for). A run over no documents
 * tested nothing and is not clean.
 */
export async function shadowRun(deps: MappingServiceDeps, input: { id: string; version: number; last: number }): Promise<ShadowReport> {
  const { id, version } = input
  const activeVersion = await requireActive(deps.db, id)
  const draft = await resolveVersion(deps, id, version)
  const active = await resolveVersion(deps, id, activeVersion)
  const source = documentSourceOf(deps.connections, id)
  const documents = await recentDocuments(deps.db, source, input.last)
  const lookups = await lookupsFor(deps.catalog, [draft.compiled, active.compiled])
  const contract = contractOf(deps.connections, id)

  const summary = { changed: 0, emptied: 0, typeChanged: 0, added: 0, removed: 0, newErrors: 0, fixedErrors: 0 }
  const counterOf: Record<ChangeKind, keyof typeof summary> = { changed: 'changed', emptied: 'emptied', type_changed: 'typeChanged', added: 'added', removed: 'removed' }
  const fields = new Map<string, { path: string; kind: ChangeKind; documents: number }>()
  const samples: ShadowSample[] = []
  let changedDocuments = 0
  for (const { ref, document } of documents) {
    const before = await evaluate(active.compiled, document, lookups, contract)
    const after = await evaluate(draft.compiled, document, lookups, contract)
    const beforeErrors = new Set(before.errors.map(describeMappingError))
    const newErrors = after.errors.map(describeMappingError).filter((e) => !beforeErrors.has(e))
    if (newErrors.length) summary.newErrors++
    if (before.errors.length && !after.errors.length) summary.fixedErrors++
    const changes = before.output && after.output ? diffDocuments(before.output, after.output) : []
    const seen = new Set<string>()
    for (const change of changes) {
      summary[counterOf[change.kind]]++
      const path = change.path.replace(/\[\d+\]/g, '[*]')
      const key = `${change.kind} ${path}`
      if (seen.has(key)) continue
      seen.add(key)
      const field = fields.get(key) ?? fields.set(key, { path, kind: change.kind, documents: 0 }).get(key)!
      field.documents++
    }
    if (changes.length || newErrors.length) {
      changedDocuments++
      if (samples.length < maxSamples) samples.push({ ref, changes, newErrors })
    }
  }
  const clean = documents.length > 0 && summary.emptied === 0 && summary.removed === 0 && summary.typeChanged === 0 && summary.newErrors === 0

  const report = {
    id,
    version,
    activeVersion,
    source,
    documents: documents.length,
    changedDocuments,
    clean,
    summary,
    fields: [...fields.values()].sort((a, b) => b.documents - a.documents || a.path.localeCompare(b.path)).slice(0, maxFields),
    samples,
  }
  const [run] = await deps.db.query<{ id: number; at: Date }>(
    'insert into mapping_shadow_runs (mapping_id, version, active_version, documents, clean, report) values ($1, $2, $3, $4, $5, $6) returning id, at',
    [id, version, activeVersion, documents.length, clean, JSON.stringify(report)],
  )
  return { runId: run!.id, at: run!.at.toISOString(), ...report }
}

// ---------------------------------------------------------------------------------------------
// Service: replay

export const replayRequestSchema = z.object({
  mappingVersion: z
    .union([z.literal('original'), z.literal('active'), versionNumberSchema])
    .default('active')
    .describe('original: the version the event was first mapped with; active: the one in force; or a version number'),
})

/**
 * Sends an event that needs attention through normalize again, with the chosen mapping version.
 * Only events in needs_attention: a processed or stale event has had its effect, and a pending one
 * is on its way. The job is enqueued after commit; if that fails, the sweeper enqueues it.
 */
export async function replayEvent(deps: MappingServiceDeps, input: { eventId: number; mappingVersion: 'original' | 'active' | number; actor: string }) {
  const { eventId } = input
  const forced = await deps.db.transaction(async (tx) => {
    const [event] = await tx.query<{ connection_id: string; status: string; mapping_version: number | null; first_mapping_version: number | null; errors: unknown }>(
      'select connection_id, status, mapping_version, first_mapping_version, errors from inbox_events where id = $1 for update',
      [eventId],
    )
    if (!event) throw new MappingRefusal('not_found', `no event ${eventId}`)
    if (event.status !== 'needs_attention') throw new MappingRefusal('not_replayable', `event ${eventId} is ${event.status}; only an event that needs attention can be replayed`)
    let version: number | null
    if (input.mappingVersion === 'original') version = event.first_mapping_version ?? event.mapping_version
    else if (input.mappingVersion === 'active') version = null
    else {
      const mappingId = deps.connections.get(event.connection_id)?.mappings.inbound
      const exists = mappingId && (await findVersion(tx, mappingId, input.mappingVersion))
      if (!exists) {
        const message = mappingId ? `mapping "${mappingId}" has no version ${input.mappingVersion}` : `connection "${event.connection_id}" has no inbound mapping`
        throw new MappingRefusal('validation_failed', 'the mapping version cannot be used', [{ path: 'mappingVersion', message }])
      }
      version = input.mappingVersion
    }
    await tx.query(`update inbox_events set status = 'pending', errors = null, processed_at = null, mapping_version = $2 where id = $1`, [eventId, version])
    await recordAudit(tx, {
      actor: input.actor,
      action: 'event.replayed',
      subject: `event:${eventId}`,
      before: { status: event.status, mappingVersion: event.mapping_version, errors: event.errors },
      after: { status: 'pending', mappingVersion: version, requested: input.mappingVersion },
    })
    return version
  })
  const enqueued = await ensureJob(deps.queues.ingest, 'normalize', { inboxIds: [eventId], correlationId: `replay-inbox-${eventId}` }, ingestJobId([eventId])).then(
    () => true,
    () => false,
  )
  return { eventId: String(eventId), status: 'pending' as const, mappingVersion: forced ?? ('active' as const), enqueued }
}
