/**
 * `orderbridge mappings validate | preview | test`: checks mapping files, previews one mapping on a
 * document, and runs the golden examples, from files alone, for a customer's own CI. Needs no
 * environment, database or Redis, and opens no connection.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { formatIssues, issuesOf, type FieldIssue } from '../shared/field-issues.ts'
import { compileMapping, describeMappingError, MappingCompileError } from '../mapping/compile-mapping.ts'
import type { FieldChange } from '../mapping/document-diff.ts'
import { loadExamples, runExamples } from '../mapping/golden-examples.ts'
import { applyMapping, createFileCatalog, loadMappingFiles } from '../mapping/mapping-catalog.ts'
import { mappingSpecSchema, type LookupTables, type MappingSpec } from '../mapping/mapping.schemas.ts'

export const mappingsUsage = `usage:
  orderbridge mappings validate [files...] [--mappings DIR]
                             check mapping files (default: every file in DIR, ./mappings)
  orderbridge mappings preview <id> <document.json> [--lookups lookups.json] [--mappings DIR]
                             apply mapping <id> to a document and print the output
  orderbridge mappings test [--dir EXAMPLES] [--mappings DIR]
                             run the golden examples (default EXAMPLES: DIR/examples)`

export interface Output {
  out(line: string): void
  err(line: string): void
}

const consoleOutput: Output = { out: (line) => console.log(line), err: (line) => console.error(line) }

/** A problem the user must fix in how the command was called; printed with the usage. */
class UsageError extends Error {}

/** Runs a `mappings` subcommand and answers with the exit code: 0 when everything is fine, else 1. */
export async function runMappingsCommand(args: readonly string[], io: Output = consoleOutput, cwd: string = process.cwd()): Promise<number> {
  const [sub, ...rest] = args
  try {
    if (sub === 'validate') return validateCommand(rest, io, cwd)
    if (sub === 'preview') return await previewCommand(rest, io, cwd)
    if (sub === 'test') return await testCommand(rest, io, cwd)
    throw new UsageError(sub ? `unknown mappings command "${sub}"` : 'which mappings command?')
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.err(`orderbridge: ${(err as Error).message}\n\n${mappingsUsage}`)
      return 1
    }
    if (err instanceof CommandFailure) {
      io.err(`orderbridge: ${err.message}`)
      return 1
    }
    throw err
  }
}

/** A failure with a message fit for the user (a file that cannot be read, an unknown id). */
class CommandFailure extends Error {}

/** parseArgs throws a TypeError with a code such as ERR_PARSE_ARGS_UNKNOWN_OPTION. */
function isParseArgsError(err: unknown): boolean {
  const code: unknown = err instanceof TypeError ? (err as NodeJS.ErrnoException).code : undefined
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}

const mappingFilePattern = /\.(ya?ml|json)$/

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new CommandFailure(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

function readJson(file: string, what: string): unknown {
  const text = readText(file)
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new CommandFailure(`${what} ${file} is not valid JSON: ${(err as Error).message}`)
  }
}

/** Reads, validates and compiles one mapping file; the issues name field paths within it. */
export function checkMappingFile(file: string): { spec?: MappingSpec; issues: FieldIssue[] } {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return { issues: [{ path: '', message: code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? (err as Error).message})` }] }
  }
  let raw: unknown
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    return { issues: [{ path: '', message: `not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}` }] }
  }
  const parsed = mappingSpecSchema.safeParse(raw)
  if (!parsed.success) return { issues: issuesOf(parsed.error) }
  try {
    compileMapping(parsed.data)
  } catch (err) {
    if (err instanceof MappingCompileError) return { issues: err.issues }
    throw err
  }
  return { spec: parsed.data, issues: [] }
}

function validateCommand(args: readonly string[], io: Output, cwd: string): number {
  const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { mappings: { type: 'string', default: 'mappings' } } })
  const dir = path.resolve(cwd, values.mappings)
  const files = positionals.length ? positionals.map((f) => path.resolve(cwd, f)) : listMappingFiles(dir)
  if (!files.length) throw new CommandFailure(`no mapping files in ${path.relative(cwd, dir) || '.'}`)

  let failed = 0
  const owners = new Map<string, string>()
  for (const file of files) {
    const shown = path.relative(cwd, file) || file
    const { spec, issues } = checkMappingFile(file)
    // Two files with one id would silently replace each other in the catalog.
    const other = spec && owners.get(spec.id)
    if (spec && other) issues.push({ path: 'id', message: `"${spec.id}" is also the id of ${other}` })
    if (spec && !other) owners.set(spec.id, shown)
    if (issues.length) {
      failed++
      io.out(`${shown}:\n${formatIssues(issues)}`)
    } else {
      io.out(`ok ${shown}`)
    }
  }
  return failed ? 1 : 0
}

function listMappingFiles(dir: string): string[] {
  if (!existsSync(dir)) throw new CommandFailure(`no folder ${dir}`)
  return readdirSync(dir)
    .filter((f) => mappingFilePattern.test(f))
    .sort()
    .map((f) => path.join(dir, f))
}

function loadSpecs(dir: string): MappingSpec[] {
  try {
    return loadMappingFiles(dir).map((f) => f.spec)
  } catch (err) {
    throw new CommandFailure((err as Error).message)
  }
}

const lookupTablesSchema = z.record(z.string(), z.record(z.string(), z.unknown()))

/** The same shape as an examples folder's lookups.json: `{table: {key: value}}`. */
function readLookups(file: string): LookupTables {
  const parsed = lookupTablesSchema.safeParse(readJson(file, 'the lookups file'))
  if (!parsed.success) throw new CommandFailure(`the lookups file ${file} is not {"table": {"key": value}}:\n${formatIssues(issuesOf(parsed.error))}`)
  return parsed.data
}

async function previewCommand(args: readonly string[], io: Output, cwd: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { lookups: { type: 'string' }, mappings: { type: 'string', default: 'mappings' } },
  })
  const [id, documentFile, ...extra] = positionals
  if (!id || !documentFile || extra.length) throw new UsageError('preview needs a mapping id and a document file')
  const document = readJson(path.resolve(cwd, documentFile), 'the document')
  const lookups = values.lookups === undefined ? {} : readLookups(path.resolve(cwd, values.lookups))
  const specs = loadSpecs(path.resolve(cwd, values.mappings))
  const catalog = createFileCatalog(specs, lookups)
  if (!catalog.has(id)) throw new CommandFailure(`no mapping with id "${id}"; known: ${specs.map((s) => s.id).join(', ')}`)

  const result = await applyMapping(catalog, await catalog.active(id), document)
  if (result.ok) {
    io.out(JSON.stringify(result.value, null, 2))
    return 0
  }
  // stdout stays for the output document, so it can be redirected to a file.
  for (const error of result.errors) io.err(describeMappingError(error))
  return 1
}

/** `lines[0].sku: expected "A", got "B"`, from the expected document's side. */
export function describeDifference(change: FieldChange): string {
  const at = change.path || '(the whole document)'
  const show = (v: unknown) => JSON.stringify(v)
  if (change.kind === 'added') return `${at}: not expected, got ${show(change.after)}`
  if (change.kind === 'removed') return `${at}: expected ${show(change.before)}, got nothing`
  return `${at}: expected ${show(change.before)}, got ${show(change.after)}`
}

async function testCommand(args: readonly string[], io: Output, cwd: string): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { dir: { type: 'string' }, mappings: { type: 'string', default: 'mappings' } } })
  if (positionals.length) throw new UsageError(`test takes no arguments, got ${positionals.join(' ')}`)
  const mappingsDir = path.resolve(cwd, values.mappings)
  const examplesDir = path.resolve(cwd, values.dir ?? path.join(values.mappings, 'examples'))
  const specs = loadSpecs(mappingsDir).sort((a, b) => a.id.localeCompare(b.id))

  let passed = 0
  let failed = 0
  const fail = (name: string, lines: string[]) => {
    failed++
    io.out([`FAIL ${name}`, ...lines.map((l) => `  ${l}`)].join('\n'))
  }
  for (const spec of specs) {
    let examples
    try {
      examples = loadExamples(spec.id, examplesDir)
    } catch (err) {
      fail(spec.id, [(err as Error).message])
      continue
    }
    if (!examples.length) {
      io.out(`SKIP ${spec.id} (no golden examples)`)
      continue
    }
    for (const outcome of await runExamples(compileMapping(spec), examples)) {
      if (outcome.passed) {
        passed++
        io.out(`PASS ${spec.id}/${outcome.name}`)
      } else {
        fail(`${spec.id}/${outcome.name}`, outcome.differences.map(describeDifference))
      }
    }
  }
  // Examples for a mapping that is gone, or whose id was misspelt, would otherwise never run.
  const ids = new Set(specs.map((s) => s.id))
  const folders = existsSync(examplesDir) ? readdirSync(examplesDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name) : []
  for (const folder of folders.sort()) if (!ids.has(folder)) fail(folder, ['no mapping has this id'])

  io.out(`${passed} passed, ${failed} failed`)
  return failed ? 1 : 0
}
