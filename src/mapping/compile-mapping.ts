/**
 * Compiles a mapping spec once into a function. Paths become generated property accesses and each
 * field's steps are prepared closures, so applying a mapping walks no spec and parses no path.
 * Pure: no I/O and no clock; lookups come in as a snapshot. A mapping with JSONata expressions
 * answers with a Promise (JSONata evaluates asynchronously); one without answers at once.
 */
import jsonata from 'jsonata'
import type { Condition, FieldSpec, LookupTables, MappingEnv, MappingError, MappingResult, MappingSpec } from './mapping.schemas.ts'
import { StepFailure, transformStep, typeStep, type Step } from './value-steps.ts'

export interface CompiledMapping {
  readonly id: string
  readonly usesExpressions: boolean
  /** The lookup tables the mapping reads, so callers snapshot only those. */
  readonly lookupTables: readonly string[]
  apply(input: unknown, env?: MappingEnv): MappingResult | Promise<MappingResult>
}

/** A spec that cannot be compiled (a bad expression, clashing targets), with the field's path. */
export class MappingCompileError extends Error {
  readonly issues: { path: string; message: string }[]
  constructor(issues: { path: string; message: string }[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('; '))
    this.name = 'MappingCompileError'
    this.issues = issues
  }
}

type Segment = string | number

function parsePath(path: string): Segment[] {
  const segments: Segment[] = []
  for (const part of path.split('.')) {
    segments.push(part.replace(/\[\d+\]/g, ''))
    for (const index of part.matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]))
  }
  return segments
}

const key = (seg: Segment) => (typeof seg === 'number' ? `[${seg}]` : `[${JSON.stringify(seg)}]`)

/** `(t = src) == null || (t = t["a"]) == null ? undefined : t["b"]` */
function getterCode(src: string, path: string): string {
  const segs = parsePath(path)
  const last = segs.pop()!
  return `((t = ${src}) == null${segs.map((s) => ` || (t = t${key(s)}) == null`).join('')} ? undefined : t${key(last)})`
}

/** `((out["a"] ??= {})["b"]) = v` */
function setterCode(out: string, path: string, value: string): string {
  const segs = parsePath(path)
  let target = out
  segs.slice(0, -1).forEach((seg, i) => {
    target = `(${target}${key(seg)} ??= ${typeof segs[i + 1] === 'number' ? '[]' : '{}'})`
  })
  return `${target}${key(segs.at(-1)!)} = ${value};`
}

function compileGetter(path: string): (input: unknown) => unknown {
  const segs = parsePath(path)
  return (input) => {
    let v: unknown = input
    for (const s of segs) {
      if (v === null || typeof v !== 'object') return undefined
      v = (v as Record<Segment, unknown>)[s]
    }
    return v
  }
}

interface Label {
  to: string
  from?: string
}

/** Everything the generated code reaches through closures, by index. */
interface Runtime {
  steps: Step[]
  constants: unknown[]
  labels: Label[]
  expressions: { evaluate(input: unknown): Promise<unknown> }[]
  conditions: ((src: unknown) => boolean | Promise<boolean>)[]
  lookups: Set<string>
  issues: { path: string; message: string }[]
  usesExpressions: boolean
}

function compileExpression(rt: Runtime, text: string, at: string): number {
  try {
    const expression = jsonata(text)
    rt.expressions.push({ evaluate: (input) => expression.evaluate(input) })
  } catch (err) {
    rt.issues.push({ path: at, message: `invalid JSONata: ${(err as Error).message}` })
    rt.expressions.push({ evaluate: async () => undefined })
  }
  rt.usesExpressions = true
  return rt.expressions.length - 1
}

function compileCondition(rt: Runtime, when: Condition, at: string): number {
  let test: (src: unknown) => boolean | Promise<boolean>
  if ('expression' in when) {
    const expression = rt.expressions[compileExpression(rt, when.expression, `${at}.expression`)]!
    test = async (src) => Boolean(await expression.evaluate(src))
  } else {
    const get = compileGetter(when.path)
    if ('equals' in when) test = (src) => get(src) === when.equals
    else if ('notEquals' in when) test = (src) => get(src) !== when.notEquals
    else if ('in' in when) test = (src) => when.in.includes(get(src))
    else test = (src) => (get(src) !== undefined && get(src) !== null) === when.exists
  }
  rt.conditions.push(test)
  return rt.conditions.length - 1
}

/** The value map and lookup, as steps; what happens without an entry is the field's fallback. */
function entrySteps(rt: Runtime, field: FieldSpec): Step[] {
  const steps: Step[] = []
  const fallback = (v: unknown, message: string) => (field.fallback === 'keep' ? v : field.fallback === 'default' ? field.default : new StepFailure(message))
  if (field.map) {
    const entries = new Map(Object.entries(field.map))
    steps.push((v) => {
      const k = String(v)
      return entries.has(k) ? entries.get(k) : fallback(v, 'has no entry in the value map')
    })
  }
  if (field.lookup) {
    const table = field.lookup
    rt.lookups.add(table)
    steps.push((v, lookups) => {
      const entries = lookups[table]
      const k = String(v)
      return entries && Object.hasOwn(entries, k) ? entries[k] : fallback(v, `is not in the lookup table ${table}`)
    })
  }
  return steps
}

interface Scope {
  src: string
  out: string
  /** JS expressions for the error-label prefixes, evaluated only when an error is recorded. */
  targetPrefix: string
  sourcePrefix: string
  depth: number
}

function checkTargets(rt: Runtime, fields: readonly FieldSpec[], at: string) {
  const paths = fields.map((f) => parsePath(f.to).map(String).join('.'))
  paths.forEach((p, i) =>
    paths.forEach((q, j) => {
      if (i !== j && (p === q ? i < j : q.startsWith(`${p}.`))) rt.issues.push({ path: `${at}[${j}].to`, message: `clashes with ${fields[i]!.to} (fields[${i}])` })
    }),
  )
}

function fieldsCode(rt: Runtime, fields: readonly FieldSpec[], scope: Scope, at: string): string {
  checkTargets(rt, fields, at)
  return fields.map((field, i) => fieldCode(rt, field, scope, `${at}[${i}]`)).join('\n')
}

function fieldCode(rt: Runtime, field: FieldSpec, scope: Scope, at: string): string {
  const label = rt.labels.push({ to: field.to, from: Array.isArray(field.from) ? field.from.join(', ') : field.expression !== undefined ? 'expression' : field.from }) - 1
  const block = `f${label}`
  const err = (value: string, message: string) => `errors.push(E(${label}, ${value}, ${message}, ${scope.targetPrefix}, ${scope.sourcePrefix})); break ${block};`
  const isMissing = field.each ? 'v == null' : `v === undefined || v === null || v === ''`
  const missing = field.required
    ? err('undefined', '"is required"')
    : field.default !== undefined
      ? `${setterCode(scope.out, field.to, `K[${rt.constants.push(field.default) - 1}]`)} break ${block};`
      : `break ${block};`

  let body: string
  if (field.each) {
    const d = scope.depth + 1
    const child: Scope = {
      src: `s${d}`,
      out: `o${d}`,
      targetPrefix: `${scope.targetPrefix} + ${JSON.stringify(field.to + '[')} + j${d} + "]."`,
      sourcePrefix: `${scope.sourcePrefix} + ${JSON.stringify((typeof field.from === 'string' ? field.from : 'expression') + '[')} + j${d} + "]."`,
      depth: d,
    }
    body = `
      if (${isMissing}) { ${missing} }
      if (!Array.isArray(v)) { ${err('v', '"is not a list"')} }
      ${field.required ? `if (v.length === 0) { ${err('undefined', '"must not be empty"')} }` : ''}
      const a${d} = new Array(v.length);
      for (let j${d} = 0; j${d} < v.length; j${d}++) {
        const s${d} = v[j${d}]; const o${d} = {};
        ${fieldsCode(rt, field.each, child, `${at}.each`)}
        a${d}[j${d}] = o${d};
      }
      ${setterCode(scope.out, field.to, `a${d}`)}`
  } else {
    const steps = [
      ...(field.type ? [typeStep(field.type, field.format, field.timezone)] : []),
      ...entrySteps(rt, field),
      ...field.transform.map(transformStep),
    ]
    const stepCode = steps
      .map((step) => `r = S[${rt.steps.push(step) - 1}](r, L); if (r instanceof StepFailure) { ${err('v', 'r.message')} }`)
      .join('\n')
    body = `
      if (${isMissing}) { ${missing} }
      let r = v;
      ${stepCode}
      ${setterCode(scope.out, field.to, 'r')}`
  }

  let acquire: string
  if (field.expression !== undefined) {
    const x = compileExpression(rt, field.expression, `${at}.expression`)
    acquire = `pending.push(X[${x}].evaluate(${scope.src}).then((v) => { ${block}: { ${body} } }, (e) => { errors.push(E(${label}, undefined, "expression failed: " + e.message, ${scope.targetPrefix}, ${scope.sourcePrefix})); }));`
  } else {
    const value = field.constant !== undefined
      ? `K[${rt.constants.push(field.constant) - 1}]`
      : Array.isArray(field.from)
        ? `[${field.from.map((p) => getterCode(scope.src, p)).join(', ')}]`
        : getterCode(scope.src, field.from!)
    // A list of sources is missing only when every one of them is.
    const all = Array.isArray(field.from) ? `if (v.every((x) => x === undefined || x === null || x === '')) v = undefined;` : ''
    acquire = `${block}: { let v = ${value}; ${all} ${body} }`
  }
  if (!field.when) return acquire
  const c = compileCondition(rt, field.when, `${at}.when`)
  return 'expression' in field.when
    ? `pending.push(W[${c}](${scope.src}).then((ok) => { if (ok) { ${acquire} } }));`
    : `if (W[${c}](${scope.src})) { ${acquire} }`
}

function makeError(label: Label, value: unknown, message: string, targetPrefix: string, sourcePrefix: string): MappingError {
  const error: MappingError = { target: targetPrefix + label.to, message }
  if (label.from !== undefined) error.source = label.from === 'expression' ? 'expression' : sourcePrefix + label.from
  if (value !== undefined) error.value = value
  return error
}

const noLookups: LookupTables = Object.freeze({})

export function compileMapping(spec: MappingSpec): CompiledMapping {
  const rt: Runtime = { steps: [], constants: [], labels: [], expressions: [], conditions: [], lookups: new Set(), issues: [], usesExpressions: false }
  const code = fieldsCode(rt, spec.fields, { src: 's0', out: 'o0', targetPrefix: '""', sourcePrefix: '""', depth: 0 }, 'fields')
  if (rt.issues.length) throw new MappingCompileError(rt.issues)

  // Generated from validated paths only: every key is JSON-quoted and every value is reached by index.
  const body = `"use strict";
    return function apply(s0, L, errors, pending) {
      const o0 = {}; let t;
      ${code}
      return o0;
    }`
  const labels = rt.labels
  const E = (i: number, value: unknown, message: string, tp: string, sp: string) => makeError(labels[i]!, value, message, tp, sp)
  const run = new Function('S', 'K', 'X', 'W', 'E', 'StepFailure', body)(rt.steps, rt.constants, rt.expressions, rt.conditions, E, StepFailure) as (
    input: unknown,
    lookups: LookupTables,
    errors: MappingError[],
    pending: Promise<unknown>[],
  ) => Record<string, unknown>

  const finish = (value: Record<string, unknown>, errors: MappingError[]): MappingResult => (errors.length ? { ok: false, errors } : { ok: true, value })

  return {
    id: spec.id,
    usesExpressions: rt.usesExpressions,
    lookupTables: [...rt.lookups],
    apply(input, env) {
      const errors: MappingError[] = []
      const pending: Promise<unknown>[] = []
      const value = run(input, env?.lookups ?? noLookups, errors, pending)
      if (!pending.length) return finish(value, errors)
      return (async () => {
        // Expressions inside lists or behind conditions may queue more work while they settle.
        while (pending.length) await Promise.all(pending.splice(0))
        return finish(value, errors)
      })()
    },
  }
}

/** `lines[3].quantity: "abc" is not a decimal (from items[3].qty)` */
export function describeMappingError(error: MappingError): string {
  const value = error.value === undefined ? '' : `${JSON.stringify(error.value)} `
  const source = error.source ? ` (from ${error.source})` : ''
  return `${error.target}: ${value}${error.message}${source}`
}
