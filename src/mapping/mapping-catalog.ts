/**
 * The mappings in force: loaded from `mappings/*.yaml|json` at start, validated, compiled once.
 * Reads files at load time only; applying a mapping does no I/O.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { formatIssues, issuesOf } from '../shared/field-issues.ts'
import { compileMapping, type CompiledMapping } from './compile-mapping.ts'
import { mappingSpecSchema, type MappingSpec } from './mapping.schemas.ts'

export interface MappingCatalog {
  get(id: string): CompiledMapping
  has(id: string): boolean
  ids(): string[]
}

export const defaultMappingsDir = fileURLToPath(new URL('../../mappings/', import.meta.url))

export function loadMappingSpecs(dir: string = defaultMappingsDir): MappingSpec[] {
  return readdirSync(dir)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .map((file) => {
      const text = readFileSync(path.join(dir, file), 'utf8')
      const raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)
      const result = mappingSpecSchema.safeParse(raw)
      if (!result.success) throw new Error(`mapping ${file} is invalid:\n${formatIssues(issuesOf(result.error))}`)
      return result.data
    })
}

export function createMappingCatalog(specs: readonly MappingSpec[]): MappingCatalog {
  const compiled = new Map(specs.map((spec) => [spec.id, compileMapping(spec)]))
  return {
    get(id) {
      const mapping = compiled.get(id)
      if (!mapping) throw new Error(`no mapping with id "${id}"`)
      return mapping
    },
    has: (id) => compiled.has(id),
    ids: () => [...compiled.keys()],
  }
}
