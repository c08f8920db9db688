/** A problem with one field of a document, named by its path (`items[3].qty`). */
export interface FieldIssue {
  path: string
  message: string
}

export function formatIssues(issues: readonly FieldIssue[]): string {
  return issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n')
}

/** zod issues as field issues; `prefix` places them inside a larger document (e.g. `data`). */
export function issuesOf(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }, prefix: readonly PropertyKey[] = []): FieldIssue[] {
  return error.issues.map((issue) => ({ path: formatPath([...prefix, ...issue.path]), message: issue.message }))
}

/** `['items', 3, 'qty']` → `items[3].qty` */
export function formatPath(segments: readonly PropertyKey[]): string {
  return segments.reduce<string>((acc, seg) => {
    if (typeof seg === 'number') return `${acc}[${seg}]`
    return acc ? `${acc}.${String(seg)}` : String(seg)
  }, '')
}
