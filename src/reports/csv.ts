/**
 * CSV as RFC 4180 has it: a header row, CRLF line ends, and fields quoted when they hold a comma,
 * a double quote (doubled) or a line break. Values are written as they are (amounts stay exact
 * decimal strings); null is an empty field. No I/O.
 */
export type CsvValue = string | number | boolean | null | undefined

export interface CsvColumn<T> {
  header: string
  value: (row: T) => CsvValue
}

export function csvField(value: CsvValue): string {
  if (value === null || value === undefined) return ''
  const text = String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/**
 * @example
 * toCsv([{ a: 'x,y' }], [{ header: 'a', value: (r) => r.a }]) // 'a\r\n"x,y"\r\n'
 */
export function toCsv<T>(rows: readonly T[], columns: readonly CsvColumn<T>[]): string {
  const lines = [columns.map((c) => csvField(c.header)), ...rows.map((row) => columns.map((c) => csvField(c.value(row))))]
  return lines.map((fields) => `${fields.join(',')}\r\n`).join('')
}
