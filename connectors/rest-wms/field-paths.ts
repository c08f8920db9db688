/**
 * Field paths into a remote JSON document, as a connection configures them: `data.id`,
 * `items[].itemCode` (each element of a list), `items[0].qty` (one element), `[].sku` (the answer is
 * itself a list). A field map pairs our field paths with the remote's and copies values both ways;
 * a list field on one side must be a list field on the other, and every list field of one map goes
 * through the same list. Pure: no I/O, and it never writes to an object's prototype.
 */

export type PathToken = { key: string } | { index: number } | { each: true }

const pathPattern = /^(?:[^.[\]\s]+|\[\d*\])(?:\.[^.[\]\s]+|\[\d*\])*$/
const forbiddenKeys = new Set(['__proto__', 'prototype', 'constructor'])

/** Why `path` is not a field path, or undefined when it is one. */
export function fieldPathProblem(path: string): string | undefined {
  if (!pathPattern.test(path)) return 'must be a field path such as data.id, items[].itemCode or items[0].qty'
  if (parsePath(path).some((token) => 'key' in token && forbiddenKeys.has(token.key))) return 'must not name __proto__, prototype or constructor'
  return undefined
}

export function parsePath(path: string): PathToken[] {
  const tokens: PathToken[] = []
  for (const match of path.matchAll(/([^.[\]]+)|\[(\d*)\]/g)) {
    if (match[1] !== undefined) tokens.push({ key: match[1] })
    else if (match[2] === '') tokens.push({ each: true })
    else tokens.push({ index: Number(match[2]) })
  }
  return tokens
}

/** How many `[]` (each element) the path has. */
export function listDepth(path: string): number {
  return path.split('[]').length - 1
}

/** `data.items[].qty` → `{ list: 'data.items', item: 'qty' }`; `[]` alone → `{ list: '', item: '' }`. */
export function splitListPath(path: string): { list: string; item: string } {
  const at = path.indexOf('[]')
  const item = path.slice(at + 2)
  return { list: path.slice(0, at), item: item.startsWith('.') ? item.slice(1) : item }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The value at a path without `[]` ('' is the document itself); undefined when any step is missing. */
export function readPath(document: unknown, path: string): unknown {
  let value = document
  for (const token of path === '' ? [] : parsePath(path)) {
    if ('key' in token) {
      if (!isRecord(value) || !Object.hasOwn(value, token.key)) return undefined
      value = value[token.key]
    } else if ('index' in token) {
      if (!Array.isArray(value)) return undefined
      value = value[token.index]
    } else {
      return undefined
    }
  }
  return value
}

/** Sets the value at a path without `[]` ('' is not allowed), creating objects and lists on the way. */
export function writePath(target: Record<string, unknown>, path: string, value: unknown): void {
  const tokens = parsePath(path)
  let node: Record<string, unknown> | unknown[] = target
  tokens.forEach((token, i) => {
    if ('each' in token) throw new Error(`cannot write through [] in ${path}`)
    const last = i === tokens.length - 1
    const next = tokens[i + 1]
    const key = 'key' in token ? token.key : token.index
    if (typeof key === 'string' && forbiddenKeys.has(key)) throw new Error(`refusing to write ${key}`)
    const container = node as Record<string | number, unknown>
    if (last) {
      container[key] = value
      return
    }
    let child = container[key]
    if (child === null || typeof child !== 'object') {
      child = next !== undefined && 'index' in next ? [] : {}
      container[key] = child
    }
    node = child as Record<string, unknown> | unknown[]
  })
}

/** A field map: our field path → the remote's field path (both with `[]` for list fields). */
export type FieldMap = Readonly<Record<string, string | undefined>>

function entries(map: FieldMap): [string, string][] {
  return Object.entries(map).filter((entry): entry is [string, string] => entry[1] !== undefined)
}

/**
 * Why a field map is unusable (list fields paired with scalars, or going through several lists),
 * as `[our field, message]` pairs; empty when it is fine.
 */
export function fieldMapProblems(map: FieldMap): [string, string][] {
  const problems: [string, string][] = []
  let list: string | undefined
  for (const [ours, theirs] of entries(map)) {
    if (listDepth(ours) !== listDepth(theirs)) problems.push([ours, `${ours} and ${theirs} must both name a list element with [] or both not`])
    else if (listDepth(theirs) > 1) problems.push([ours, `${theirs} may go through one list ([]) only`])
    else if (listDepth(theirs) === 1) {
      const through = splitListPath(theirs).list
      list ??= through
      if (through !== list) problems.push([ours, `every list field must go through the same list: ${theirs} is not in ${list === '' ? 'the answer\'s list' : list}[]`])
    }
  }
  return problems
}

/**
 * Copies `source` (in our field names) into a new document in the remote's field names.
 * Undefined values are left out.
 *
 * @example
 * writeFieldMap({ reference: 'clientRef', 'lines[].sku': 'items[].itemCode' }, { reference: 'ORD-1', lines: [{ sku: 'A' }] })
 * // → { clientRef: 'ORD-1', items: [{ itemCode: 'A' }] }
 */
export function writeFieldMap(map: FieldMap, source: Record<string, unknown>, into: Record<string, unknown> = {}): Record<string, unknown> {
  for (const [ours, theirs] of entries(map)) {
    if (listDepth(ours) === 0) {
      const value = readPath(source, ours)
      if (value !== undefined) writePath(into, theirs, value)
      continue
    }
    const from = splitListPath(ours)
    const to = splitListPath(theirs)
    const items = readPath(source, from.list)
    if (!Array.isArray(items)) continue
    let list = to.list === '' ? undefined : readPath(into, to.list)
    if (!Array.isArray(list)) {
      list = []
      writePath(into, to.list, list)
    }
    const target = list as unknown[]
    items.forEach((item, i) => {
      const value = readPath(item, from.item)
      if (value === undefined) return
      if (to.item === '') {
        target[i] = value
        return
      }
      if (!isRecord(target[i])) target[i] = {}
      writePath(target[i] as Record<string, unknown>, to.item, value)
    })
  }
  return into
}

/**
 * Reads a remote document into our field names: the reverse of `writeFieldMap`. A list the remote
 * does not have stays undefined; values are not converted.
 */
export function readFieldMap(map: FieldMap, document: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [ours, theirs] of entries(map)) {
    if (listDepth(ours) === 0) {
      const value = readPath(document, theirs)
      if (value !== undefined) writePath(out, ours, value)
      continue
    }
    const from = splitListPath(theirs)
    const to = splitListPath(ours)
    const items = readPath(document, from.list)
    if (!Array.isArray(items)) continue
    let list = readPath(out, to.list)
    if (!Array.isArray(list)) {
      list = items.map(() => ({}))
      writePath(out, to.list, list)
    }
    items.forEach((item, i) => {
      const value = readPath(item, from.item)
      const row = (list as Record<string, unknown>[])[i]
      if (value !== undefined && row) writePath(row, to.item, value)
    })
  }
  return out
}

/** The remote's path for one of our fields, with the element index filled in: for messages. */
export function theirPathFor(map: FieldMap, ours: readonly (string | number)[], prefix = ''): string | undefined {
  const index = ours.find((part): part is number => typeof part === 'number')
  const key = ours.map((part) => (typeof part === 'number' ? '[]' : part)).join('.').replace(/\.\[\]/g, '[]')
  const theirs = map[key]
  if (theirs === undefined) return undefined
  const filled = index === undefined ? theirs : theirs.replace('[]', `[${index}]`)
  return prefix === '' ? filled : filled.startsWith('[') ? `${prefix}${filled}` : `${prefix}.${filled}`
}
