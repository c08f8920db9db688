/**
 * Quantities as exact decimal strings: parsing what a WMS answers (a JSON number or a decimal
 * string), writing what it expects (whole units, a JSON number or a string), and the little
 * arithmetic the connector needs (compare, subtract). Never floats for arithmetic. Pure.
 */

const decimalPattern = /^(-?)(\d+)(?:\.(\d+))?$/

/** "003.500" → "3.5", "-0" → "0"; undefined when it is not a plain decimal. */
export function canonicalDecimal(value: string): string | undefined {
  const match = decimalPattern.exec(value.trim())
  if (!match) return undefined
  const whole = match[2]!.replace(/^0+(?=\d)/, '')
  const fraction = (match[3] ?? '').replace(/0+$/, '')
  const digits = fraction === '' ? whole : `${whole}.${fraction}`
  return match[1] === '-' && /[1-9]/.test(digits) ? `-${digits}` : digits
}

function scaled(value: string, scale: number): bigint {
  const match = decimalPattern.exec(value)!
  const fraction = (match[3] ?? '').padEnd(scale, '0')
  const magnitude = BigInt(`${match[2]}${fraction}`)
  return match[1] === '-' ? -magnitude : magnitude
}

function scaleOf(value: string): number {
  return decimalPattern.exec(value)?.[3]?.length ?? 0
}

function fromScaled(units: bigint, scale: number): string {
  const negative = units < 0n
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0')
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`
  return canonicalDecimal(`${negative ? '-' : ''}${text}`)!
}

/** -1, 0 or 1. Both must be decimal strings. */
export function compareDecimal(a: string, b: string): -1 | 0 | 1 {
  const scale = Math.max(scaleOf(a), scaleOf(b))
  const x = scaled(a, scale)
  const y = scaled(b, scale)
  return x < y ? -1 : x > y ? 1 : 0
}

export function subtractDecimal(a: string, b: string): string {
  const scale = Math.max(scaleOf(a), scaleOf(b))
  return fromScaled(scaled(a, scale) - scaled(b, scale), scale)
}

export function addDecimal(a: string, b: string): string {
  const scale = Math.max(scaleOf(a), scaleOf(b))
  return fromScaled(scaled(a, scale) + scaled(b, scale), scale)
}

export function minDecimal(a: string, b: string): string {
  return compareDecimal(a, b) <= 0 ? a : b
}

/** Below zero counts as nothing (a WMS may report oversold stock as negative availability). */
export function atLeastZero(value: string): string {
  return value.startsWith('-') ? '0' : value
}

/** A quantity as a WMS answered it: a finite JSON number without exponent, or a decimal string. */
export function quantityFromWms(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? canonicalDecimal(String(value)) : undefined
  if (typeof value === 'string') return canonicalDecimal(value)
  return undefined
}

export type QuantityFormat = 'integer' | 'number' | 'string'

/**
 * A quantity as the WMS takes it, or a reason why it cannot be sent exactly: `integer` takes whole
 * units only ("3.000" is 3, "2.5" is refused), `number` any decimal a JSON number holds exactly,
 * `string` the decimal as text.
 */
export function quantityToWms(quantity: string, format: QuantityFormat): { value: number | string } | { problem: string } {
  const canonical = canonicalDecimal(quantity)
  if (canonical === undefined) return { problem: `${quantity} is not a decimal quantity` }
  if (format === 'string') return { value: canonical }
  if (format === 'integer' && canonical.includes('.')) return { problem: `the WMS takes whole units, not ${quantity}` }
  const value = Number(canonical)
  if (format === 'integer' ? !Number.isSafeInteger(value) : canonicalDecimal(String(value)) !== canonical) {
    return { problem: `${quantity} cannot be sent exactly as a JSON number` }
  }
  return { value }
}
