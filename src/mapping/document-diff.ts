/**
 * Field-by-field differences between two documents, for previews, shadow runs and golden examples.
 * Pure.
 */
export type ChangeKind = 'added' | 'removed' | 'changed' | 'type_changed' | 'emptied'

export interface FieldChange {
  path: string
  kind: ChangeKind
  before?: unknown
  after?: unknown
}

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)
const isEmpty = (v: unknown) => v === undefined || v === null || v === ''

function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key
}

/** What changed from `before` to `after`, leaf by leaf. */
export function diffDocuments(before: unknown, after: unknown, path = ''): FieldChange[] {
  if (Object.is(before, after)) return []
  const tb = typeOf(before)
  const ta = typeOf(after)
  if (tb === 'object' && ta === 'object') {
    const b = before as Record<string, unknown>
    const a = after as Record<string, unknown>
    const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])]
    return keys.flatMap((k) => diffDocuments(b[k], a[k], join(path, k)))
  }
  if (tb === 'array' && ta === 'array') {
    const b = before as unknown[]
    const a = after as unknown[]
    return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => diffDocuments(b[i], a[i], join(path, i))).flat()
  }
  if (before === undefined) return [{ path, kind: 'added', after }]
  if (after === undefined) return [{ path, kind: 'removed', before }]
  if (!isEmpty(before) && isEmpty(after)) return [{ path, kind: 'emptied', before, after }]
  if (tb !== ta) return [{ path, kind: 'type_changed', before, after }]
  return [{ path, kind: 'changed', before, after }]
}
