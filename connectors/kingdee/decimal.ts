/**
 * Exact decimal arithmetic on strings, for the credit figures Kingdee answers as JSON numbers (which
 * the client keeps as their source text). Sums never pass through a float. Pure: no I/O.
 */

const decimalPattern = /^(-)?(\d+)(?:\.(\d+))?$/

export function isDecimal(value: string): boolean {
  return decimalPattern.test(value)
}

interface Scaled {
  units: bigint
  scale: number
}

function scaled(value: string): Scaled {
  const match = decimalPattern.exec(value.trim())
  if (!match) throw new RangeError(`"${value}" is not a decimal`)
  const fraction = match[3] ?? ''
  const units = BigInt(`${match[2]}${fraction}`)
  return { units: match[1] ? -units : units, scale: fraction.length }
}

function rescale(value: Scaled, scale: number): bigint {
  return value.units * 10n ** BigInt(scale - value.scale)
}

function format(units: bigint, scale: number, minScale: number): string {
  const negative = units < 0n
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0')
  let whole = digits.slice(0, digits.length - scale)
  let fraction = scale > 0 ? digits.slice(digits.length - scale) : ''
  fraction = fraction.replace(/0+$/, '')
  if (fraction.length < minScale) fraction = fraction.padEnd(minScale, '0')
  whole = whole === '' ? '0' : whole
  const text = fraction ? `${whole}.${fraction}` : whole
  return negative && /[1-9]/.test(text) ? `-${text}` : text
}

/** The exact sum, with at least two decimals ("406.8" + "0" → "406.80"). */
export function sumDecimals(values: readonly string[]): string {
  const parts = values.map(scaled)
  const scale = Math.max(0, ...parts.map((p) => p.scale))
  const total = parts.reduce((sum, p) => sum + rescale(p, scale), 0n)
  return format(total, scale, 2)
}

/** a − b, exactly. */
export function subtractDecimals(a: string, b: string): string {
  const left = scaled(a)
  const right = scaled(b)
  const scale = Math.max(left.scale, right.scale)
  return format(rescale(left, scale) - rescale(right, scale), scale, 2)
}

/** The same amount with at least two decimals and no trailing zeros beyond them ("50000" → "50000.00"). */
export function normalizeAmount(value: string): string {
  const parts = scaled(value)
  return format(parts.units, parts.scale, 2)
}

/** The same number without trailing fractional zeros ("2.0000000000" → "2", "1.50" → "1.5"): for quantities. */
export function normalizeDecimal(value: string): string {
  const parts = scaled(value)
  return format(parts.units, parts.scale, 0)
}
