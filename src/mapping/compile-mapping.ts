/**
 * Compiles a mapping spec once into a function that applies it. Accessors are precomputed from the
 * paths, so applying a mapping walks no spec. Pure: no I/O, no clock.
 */
import { isDecimalString } from '../shared/decimal.ts'
import type { FieldSpec, MappingError, MappingResult, MappingSpec, ValueType } from './mapping.schemas.ts'

export type CompiledMapping = (input: unknown) => MappingResult

type Segment = string | number
type Getter = (input: unknown) => unknown

function parsePath(path: string): Segment[] {
  const segments: Segment[] = []
  for (const part of path.split('.')) {
    const name = part.replace(/\[\d+\]/g, '')
    segments.push(name)
    for (const index of part.matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]))
  }
  return segments
}

function compileGetter(path: string): Getter {
  const segments = parsePath(path)
  return (input) => {
    let value: unknown = input
    for (const seg of segments) {
      if (value === null || typeof value !== 'object') return undefined
      value = (value as Record<Segment, unknown>)[seg]
    }
    return value
  }
}

function compileSetter(path: string): (target: Record<string, unknown>, value: unknown) => void {
  const segments = parsePath(path)
  const last = segments.at(-1)!
  const parents = segments.slice(0, -1)
  return (target, value) => {
    let node: Record<Segment, unknown> = target
    parents.forEach((seg, i) => {
      node[seg] ??= typeof segments[i + 1] === 'number' ? [] : {}
      node = node[seg] as Record<Segment, unknown>
    })
    node[last] = value
  }
}

type Coerced = { ok: true; value: unknown } | { ok: false; message: string }

const datetimePattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/

function coerce(type: ValueType, value: unknown): Coerced {
  switch (type) {
    case 'string':
      return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? { ok: true, value: String(value) }
        : { ok: false, message: 'is not a string' }
    case 'integer': {
      const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value
      return typeof n === 'number' && Number.isSafeInteger(n) ? { ok: true, value: n } : { ok: false, message: 'is not an integer' }
    }
    case 'decimal':
      // A float may already have lost cents; only integers and decimal strings are exact.
      if (typeof value === 'number' && Number.isSafeInteger(value)) return { ok: true, value: String(value) }
      if (typeof value === 'string' && isDecimalString(value.trim())) return { ok: true, value: value.trim() }
      return { ok: false, message: typeof value === 'number' ? 'is a binary float; send decimals as strings' : 'is not a decimal' }
    case 'boolean':
      if (typeof value === 'boolean') return { ok: true, value }
      if (value === 'true' || value === 'false') return { ok: true, value: value === 'true' }
      return { ok: false, message: 'is not a boolean' }
    case 'datetime':
      if (typeof value === 'string' && datetimePattern.test(value) && !Number.isNaN(Date.parse(value))) {
        return { ok: true, value: new Date(value).toISOString() }
      }
      return { ok: false, message: 'is not an ISO 8601 date-time with a time zone' }
  }
}

type FieldApplier = (source: unknown, target: Record<string, unknown>, errors: MappingError[], at: Labels) => void
interface Labels {
  target: string
  source: string
}

function compileField(spec: FieldSpec): FieldApplier {
  const get: Getter = spec.from !== undefined ? compileGetter(spec.from) : () => spec.constant
  const set = compileSetter(spec.to)
  const { type, required } = spec
  const hasDefault = spec.default !== undefined
  return (source, target, errors, at) => {
    let value = get(source)
    if (value === undefined || value === null || value === '') {
      if (hasDefault) value = spec.default
      else if (required) {
        errors.push({ target: at.target + spec.to, source: spec.from && at.source + spec.from, message: 'is required' })
        return
      } else return
    }
    if (type) {
      const coerced = coerce(type, value)
      if (!coerced.ok) {
        errors.push({ target: at.target + spec.to, source: spec.from && at.source + spec.from, value, message: coerced.message })
        return
      }
      value = coerced.value
    }
    set(target, value)
  }
}

export function compileMapping(spec: MappingSpec): CompiledMapping {
  const fields = spec.fields.map(compileField)
  const children = spec.children.map((child) => ({
    get: compileGetter(child.from),
    set: compileSetter(child.to),
    from: child.from,
    to: child.to,
    required: child.required,
    fields: child.fields.map(compileField),
  }))
  const root: Labels = { target: '', source: '' }
  return (input) => {
    const errors: MappingError[] = []
    const output: Record<string, unknown> = {}
    for (const apply of fields) apply(input, output, errors, root)
    for (const child of children) {
      const items = child.get(input)
      if (items === undefined || items === null) {
        if (child.required) errors.push({ target: child.to, source: child.from, message: 'is required' })
        continue
      }
      if (!Array.isArray(items)) {
        errors.push({ target: child.to, source: child.from, value: items, message: 'is not a list' })
        continue
      }
      if (child.required && items.length === 0) errors.push({ target: child.to, source: child.from, message: 'must not be empty' })
      const mapped = items.map((item, i) => {
        const out: Record<string, unknown> = {}
        const at = { target: `${child.to}[${i}].`, source: `${child.from}[${i}].` }
        for (const apply of child.fields) apply(item, out, errors, at)
        return out
      })
      child.set(output, mapped)
    }
    return errors.length ? { ok: false, errors } : { ok: true, value: output }
  }
}

/** `lines[3].quantity: "abc" is not a decimal (from items[3].qty)` */
export function describeMappingError(error: MappingError): string {
  const value = error.value === undefined ? '' : `${JSON.stringify(error.value)} `
  const source = error.source ? ` (from ${error.source})` : ''
  return `${error.target}: ${value}${error.message}${source}`
}
