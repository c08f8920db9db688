/**
 * Golden examples: `mappings/examples/<mapping id>/<name>.input.json` with `<name>.expected.json`
 * (the expected output, or `{"$errors": [...]}` with the expected error lines), and an optional
 * `lookups.json` for the whole folder. A version whose examples fail cannot be activated.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeMappingError, type CompiledMapping } from './compile-mapping.ts'
import { diffDocuments, type FieldChange } from './document-diff.ts'
import type { LookupTables } from './mapping.schemas.ts'

export const defaultExamplesDir = fileURLToPath(new URL('../../mappings/examples/', import.meta.url))

export interface GoldenExample {
  name: string
  input: unknown
  expected: unknown
  lookups?: LookupTables
}

export interface ExampleOutcome {
  name: string
  passed: boolean
  /** Where the output differs from the expected one. */
  differences: FieldChange[]
}

export function loadExamples(mappingId: string, dir: string = defaultExamplesDir): GoldenExample[] {
  const folder = path.join(dir, mappingId)
  if (!existsSync(folder)) return []
  const read = (file: string) => JSON.parse(readFileSync(path.join(folder, file), 'utf8')) as unknown
  const lookups = existsSync(path.join(folder, 'lookups.json')) ? (read('lookups.json') as LookupTables) : undefined
  return readdirSync(folder)
    .filter((f) => f.endsWith('.input.json'))
    .sort()
    .map((file) => {
      const name = file.slice(0, -'.input.json'.length)
      const expectedFile = `${name}.expected.json`
      if (!existsSync(path.join(folder, expectedFile))) throw new Error(`example ${mappingId}/${name} has no ${expectedFile}`)
      return { name, input: read(file), expected: read(expectedFile), ...(lookups ? { lookups } : {}) }
    })
}

/** Runs the examples; an example passes when the output (or the error lines) equal the expected. */
export async function runExamples(mapping: CompiledMapping, examples: readonly GoldenExample[]): Promise<ExampleOutcome[]> {
  return Promise.all(
    examples.map(async (example) => {
      const result = await mapping.apply(example.input, { lookups: example.lookups })
      const actual = result.ok ? result.value : { $errors: result.errors.map(describeMappingError) }
      // Through JSON, as the expected file was: `undefined` members vanish on both sides.
      const differences = diffDocuments(example.expected, JSON.parse(JSON.stringify(actual)))
      return { name: example.name, passed: differences.length === 0, differences }
    }),
  )
}
