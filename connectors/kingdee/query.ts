/**
 * Pieces of ExecuteBillQuery filter strings and rows. Field keys come from validated settings
 * (letters, digits, `_`, one `.`); values are always quoted here, with quotes doubled, so no value
 * can end a literal. Pure: no I/O.
 */
import type { QueryRow } from './client.ts'

/** A value inside an ExecuteBillQuery filter string: quoted, with quotes doubled. */
export function filterValue(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

/** `field in ('a','b')`: one condition for a batch of values. */
export function inFilter(field: string, values: readonly string[]): string {
  return `${field} in (${values.map(filterValue).join(',')})`
}

/** `(a) and (b)`, leaving out empty parts. */
export function allOf(...parts: (string | undefined)[]): string {
  const present = parts.filter((p): p is string => p !== undefined && p.trim() !== '')
  return present.length === 1 ? present[0]! : present.map((p) => `(${p})`).join(' and ')
}

export function cell(row: QueryRow, index: number): string {
  const value = row[index]
  return value === null || value === undefined ? '' : String(value)
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
