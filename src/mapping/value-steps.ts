/**
 * The steps a mapped value goes through: type coercion (with date formats and time zones) and the
 * named transforms. Each step returns the new value or a StepFailure saying what is wrong with it.
 * Pure: no I/O; the clock is never read.
 */
import { isDecimalString, multiplyDecimals, roundDecimal, trimDecimal } from '../shared/decimal.ts'
import { instantOfWallClock, wallClockAt, type WallClock } from '../shared/zoned-time.ts'
import type { LookupTables, Transform, ValueType } from './mapping.schemas.ts'

export class StepFailure {
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

/** A step gets the value and the lookup snapshot (only lookups use it). */
export type Step = (value: unknown, lookups: LookupTables) => unknown

const isoDateTime = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?$/
const isoDate = /^(\d{4})-(\d{2})-(\d{2})$/

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

function validFields(f: WallClock): boolean {
  const d = new Date(Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second))
  return d.getUTCFullYear() === f.year && d.getUTCMonth() === f.month - 1 && d.getUTCDate() === f.day && f.hour < 24 && f.minute < 60 && f.second < 60
}

const tokenPattern = /yyyy|MM|dd|HH|mm|ss|SSS/g

/** Compiles a pattern such as `yyyy-MM-dd HH:mm:ss` into a parser of wall-clock fields. */
function patternParser(pattern: string): (text: string) => WallClock | undefined {
  const order: string[] = []
  const source = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(tokenPattern, (token) => {
    order.push(token)
    return token === 'yyyy' ? '(\\d{4})' : token === 'SSS' ? '(\\d{3})' : '(\\d{2})'
  })
  const regex = new RegExp(`^${source}$`)
  return (text) => {
    const m = regex.exec(text)
    if (!m) return undefined
    const f: WallClock = { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0, ms: 0 }
    order.forEach((token, i) => {
      const n = Number(m[i + 1])
      if (token === 'yyyy') f.year = n
      else if (token === 'MM') f.month = n
      else if (token === 'dd') f.day = n
      else if (token === 'HH') f.hour = n
      else if (token === 'mm') f.minute = n
      else if (token === 'ss') f.second = n
      else f.ms = n
    })
    return validFields(f) ? f : undefined
  }
}

function formatFields(f: WallClock, pattern: string): string {
  return pattern.replace(tokenPattern, (token) =>
    token === 'yyyy' ? pad(f.year, 4) : token === 'MM' ? pad(f.month) : token === 'dd' ? pad(f.day) : token === 'HH' ? pad(f.hour) : token === 'mm' ? pad(f.minute) : token === 'ss' ? pad(f.second) : pad(f.ms, 3),
  )
}

/** Reads an instant from ISO text (with an offset, or wall-clock in `timeZone`), Unix time, or a pattern. */
function instantReader(format: string, timeZone: string | undefined): (value: unknown) => number | StepFailure {
  if (format === 'epoch-ms' || format === 'epoch-s') {
    const factor = format === 'epoch-ms' ? 1 : 1000
    return (value) => {
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value
      return typeof n === 'number' && Number.isSafeInteger(n) ? n * factor : new StepFailure(`is not a Unix time in ${format === 'epoch-ms' ? 'milliseconds' : 'seconds'}`)
    }
  }
  if (format === 'iso') {
    return (value) => {
      if (typeof value !== 'string') return new StepFailure('is not an ISO 8601 date-time')
      const m = isoDateTime.exec(value)
      if (!m) return new StepFailure('is not an ISO 8601 date-time')
      const f: WallClock = { year: +m[1]!, month: +m[2]!, day: +m[3]!, hour: +m[4]!, minute: +m[5]!, second: +(m[6] ?? 0), ms: +(m[7] ?? '0').slice(0, 3).padEnd(3, '0') }
      if (!validFields(f)) return new StepFailure('is not a valid date-time')
      const offset = m[8]
      if (!offset) return timeZone ? instantOfWallClock(f, timeZone) : new StepFailure('is not an ISO 8601 date-time with a time zone')
      const base = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second, f.ms)
      if (offset === 'Z') return base
      const sign = offset.startsWith('-') ? -1 : 1
      const digits = offset.slice(1).replace(':', '')
      return base - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000
    }
  }
  const parse = patternParser(format)
  return (value) => {
    const f = typeof value === 'string' ? parse(value) : undefined
    return f ? instantOfWallClock(f, timeZone ?? 'UTC') : new StepFailure(`does not match the date format ${format}`)
  }
}

/** Coerces a source value to the declared type. Money and quantities stay decimal strings. */
export function typeStep(type: ValueType, format = 'iso', timeZone?: string): Step {
  switch (type) {
    case 'string':
      return (v) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : new StepFailure('is not a string'))
    case 'integer':
      return (v) => {
        const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v
        return typeof n === 'number' && Number.isSafeInteger(n) ? n : new StepFailure('is not an integer')
      }
    case 'decimal':
      return (v) => {
        if (typeof v === 'string') {
          const s = v.trim()
          return isDecimalString(s) ? s : new StepFailure('is not a decimal')
        }
        // A float may already have lost cents; only integers and decimal strings are exact.
        if (typeof v === 'number') return Number.isSafeInteger(v) ? String(v) : new StepFailure('is a binary float; send decimals as strings')
        return new StepFailure('is not a decimal')
      }
    case 'boolean':
      return (v) => (typeof v === 'boolean' ? v : v === 'true' || v === 'false' ? v === 'true' : new StepFailure('is not a boolean'))
    case 'datetime': {
      const read = instantReader(format, timeZone)
      return (v) => {
        const t = read(v)
        return t instanceof StepFailure ? t : new Date(t).toISOString()
      }
    }
    case 'date': {
      if (format === 'iso') {
        const read = instantReader('iso', timeZone)
        return (v) => {
          if (typeof v === 'string' && isoDate.test(v)) {
            const [y, m, d] = v.split('-').map(Number) as [number, number, number]
            return validFields({ year: y, month: m, day: d, hour: 0, minute: 0, second: 0, ms: 0 }) ? v : new StepFailure('is not a valid date')
          }
          const t = read(v)
          if (t instanceof StepFailure) return new StepFailure('is not an ISO 8601 date')
          const f = wallClockAt(t, timeZone ?? 'UTC')
          return `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}`
        }
      }
      const read = instantReader(format, timeZone)
      return (v) => {
        const t = read(v)
        if (t instanceof StepFailure) return t
        const f = wallClockAt(t, timeZone ?? 'UTC')
        return `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}`
      }
    }
  }
}

const stringOnly = (fn: (s: string) => unknown): Step => (v) => (typeof v === 'string' ? fn(v) : new StepFailure('is not a string'))

function asDecimal(v: unknown): string | StepFailure {
  if (typeof v === 'string' && isDecimalString(v)) return v
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v)
  return new StepFailure('is not a decimal')
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || v === ''
}

export function transformStep(t: Transform): Step {
  if (t === 'trim') return stringOnly((s) => s.trim())
  if (t === 'upper') return stringOnly((s) => s.toUpperCase())
  if (t === 'lower') return stringOnly((s) => s.toLowerCase())
  if ('concat' in t) return (v) => (Array.isArray(v) ? v.filter((x) => !isEmpty(x)).map(String).join(t.concat) : typeof v === 'string' ? v : new StepFailure('is not a list or a string'))
  if ('split' in t) return stringOnly((s) => s.split(t.split).map((p) => p.trim()).filter(Boolean))
  if ('round' in t) {
    return (v) => {
      const d = asDecimal(v)
      return d instanceof StepFailure ? d : roundDecimal(d, t.round)
    }
  }
  if ('minorUnits' in t) {
    const scale = t.minorUnits
    return (v) => {
      const d = asDecimal(v)
      if (d instanceof StepFailure) return d
      const [whole = '0', fraction = ''] = d.replace('-', '').split('.')
      if (fraction.replace(/0+$/, '').length > scale) return new StepFailure(`has more than ${scale} decimal places`)
      const n = Number(`${d.startsWith('-') ? '-' : ''}${whole}${fraction.padEnd(scale, '0').slice(0, scale)}`)
      return Number.isSafeInteger(n) ? n : new StepFailure('is too large for integer minor units')
    }
  }
  if ('fromMinorUnits' in t) {
    const scale = t.fromMinorUnits
    return (v) => {
      const n = typeof v === 'string' && /^-?\d+$/.test(v) ? v : typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : undefined
      if (n === undefined) return new StepFailure('is not an integer amount in minor units')
      const negative = n.startsWith('-')
      const digits = (negative ? n.slice(1) : n).padStart(scale + 1, '0')
      const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits
      return negative ? `-${text}` : text
    }
  }
  if ('multiply' in t) {
    return (v) => {
      const d = asDecimal(v)
      return d instanceof StepFailure ? d : trimDecimal(multiplyDecimals(d, t.multiply), 0)
    }
  }
  if ('formatDate' in t) {
    const { pattern, timezone } = t.formatDate
    const read = instantReader('iso', 'UTC')
    return (v) => {
      const instant = typeof v === 'string' && isoDate.test(v) ? read(`${v}T00:00:00Z`) : read(v)
      if (instant instanceof StepFailure) return instant
      if (pattern === 'epoch-ms') return instant
      if (pattern === 'epoch-s') return Math.floor(instant / 1000)
      const f = wallClockAt(instant, timezone)
      return pattern === 'iso' ? new Date(instant).toISOString() : formatFields(f, pattern)
    }
  }
  if ('substring' in t) {
    const [start, length] = t.substring
    return stringOnly((s) => (length === undefined ? s.slice(start) : s.slice(start, start + length)))
  }
  const [search, replacement] = t.replace
  return stringOnly((s) => s.split(search).join(replacement))
}
