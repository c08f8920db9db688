/**
 * Tryton's JSON-RPC value encoding and the exact decimal arithmetic the connector needs. Tryton
 * sends Decimal, date and datetime as tagged objects; money stays a decimal string here from end to
 * end, never a JS number (the server builds Decimal(float) from a number: 19.99 fails its digits
 * check). Pure: no I/O.
 */

import { addDecimals as kitAddDecimals, compareDecimals, isDecimalString, subtractDecimals, trimDecimal as kitTrimDecimal } from '../../src/connector-kit/index.ts'

/** A value as Tryton's JSON-RPC takes it. */
export type Encoded = null | boolean | number | string | Encoded[] | { [key: string]: Encoded }

export type TrytonDecimal = {
  __class__: 'Decimal'
  decimal: string
}

/** `{"__class__": "Decimal", "decimal": "10.00"}` */
export function decimal(value: string): TrytonDecimal {
  if (!isDecimalString(value)) throw new RangeError(`"${value}" is not a decimal`)
  return { __class__: 'Decimal', decimal: value }
}

/** `{"__class__": "date", year, month, day}` from `YYYY-MM-DD`. */
export function date(iso: string): { __class__: 'date'; year: number; month: number; day: number } {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso)
  if (!match) throw new RangeError(`"${iso}" is not a date (YYYY-MM-DD)`)
  return { __class__: 'date', year: Number(match[1]), month: Number(match[2]), day: Number(match[3]) }
}

/**
 * A Tryton datetime (naive, UTC in a Tryton set up as recommended) from the text `decode` gives,
 * `YYYY-MM-DDTHH:MM:SS.ffffff`: microseconds survive the round trip, so a poll cursor compares exactly.
 */
export function datetime(text: string): Record<string, string | number> {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(text)
  if (!match) throw new RangeError(`"${text}" is not a datetime (YYYY-MM-DDTHH:MM:SS.ffffff)`)
  return {
    __class__: 'datetime',
    year: Number(match[1]),
    month: Number(match[2]),
    day: Number(match[3]),
    hour: Number(match[4]),
    minute: Number(match[5]),
    second: Number(match[6]),
    microsecond: Number((match[7] ?? '').padEnd(6, '0')),
  }
}

/** The datetime text for a JS time (milliseconds), as `datetime()` takes it. */
export function datetimeText(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}000`
}

const pad = (n: unknown, width = 2) => String(n).padStart(width, '0')

/**
 * Plain JSON from a Tryton answer: Decimal → decimal string, date → `YYYY-MM-DD`, datetime →
 * `YYYY-MM-DDTHH:MM:SS.ffffff`, bytes → base64 text. Numbers (Float fields, ids) stay numbers.
 */
export function decode(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decode)
  if (value !== null && typeof value === 'object') {
    const tagged = value as Record<string, unknown>
    switch (tagged.__class__) {
      case 'Decimal':
        return String(tagged.decimal)
      case 'date':
        return `${pad(tagged.year, 4)}-${pad(tagged.month)}-${pad(tagged.day)}`
      case 'datetime':
        return `${pad(tagged.year, 4)}-${pad(tagged.month)}-${pad(tagged.day)}T${pad(tagged.hour)}:${pad(tagged.minute)}:${pad(tagged.second)}.${pad(tagged.microsecond ?? 0, 6)}`
      case 'bytes':
        return String(tagged.base64 ?? '')
      default:
        return Object.fromEntries(Object.entries(tagged).map(([key, item]) => [key, decode(item)]))
    }
  }
  return value
}

// ---------------------------------------------------------------------------------------------
// Exact decimals (strings), for money and quantities: the kit's arithmetic, summed variadically here.

export { compareDecimals, isDecimalString as isDecimal } from '../../src/connector-kit/index.ts'

/** The exact sum, at the largest scale of its terms. */
export function addDecimals(...values: string[]): string {
  return kitAddDecimals(values)
}

export function negateDecimal(value: string): string {
  return subtractDecimals('0', value)
}

/** Trailing zeros off, down to `minScale` decimals: `"100.000"` → `"100"` (minScale 0). */
export function trimDecimal(value: string, minScale = 0): string {
  return kitTrimDecimal(value, minScale)
}

/**
 * A Tryton Float (quantities) as a decimal string. Floats come rounded to their unit's digits, so
 * six places are more than any unit keeps; the noise beyond them (0.1 + 0.2) is cut.
 */
export function floatToDecimal(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`${value} is not a finite quantity`)
  if (Number.isInteger(value)) return String(value)
  const fixed = value.toFixed(6)
  return trimDecimal(fixed === '-0.000000' ? '0' : fixed)
}

/** A decimal string as the number a Tryton Float field takes (quantities only, never money). */
export function quantityNumber(value: string): number {
  if (!isDecimalString(value)) throw new RangeError(`"${value}" is not a decimal`)
  return Number(value)
}

/** The smaller of two decimals. */
export function minDecimal(a: string, b: string): string {
  return compareDecimals(a, b) <= 0 ? a : b
}
