/**
 * Exact decimal arithmetic on strings, for money and quantities. Never a float: values are scaled
 * BigInts, so totals add up to the cent and reconciliation can compare them exactly. Results keep
 * the largest scale of their terms; `trimDecimal` sets the shape a wire format wants. Connectors
 * use these through the connector kit. Pure: no I/O.
 */
const decimalPattern = /^-?\d+(\.\d+)?$/

export function isDecimalString(value: string): boolean {
  return decimalPattern.test(value)
}

interface Scaled {
  units: bigint
  scale: number
}

function toScaled(value: string): Scaled {
  if (!decimalPattern.test(value)) throw new RangeError(`"${value}" is not a decimal`)
  const negative = value.startsWith('-')
  const [whole = '0', fraction = ''] = (negative ? value.slice(1) : value).split('.')
  const units = BigInt(whole + fraction)
  return { units: negative ? -units : units, scale: fraction.length }
}

function rescale(value: Scaled, scale: number): bigint {
  return value.units * 10n ** BigInt(scale - value.scale)
}

function fromScaled(units: bigint, scale: number): string {
  const negative = units < 0n
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0')
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`
  return negative ? `-${text}` : text
}

export function addDecimals(values: readonly string[]): string {
  const scaled = values.map(toScaled)
  const scale = Math.max(0, ...scaled.map((v) => v.scale))
  return fromScaled(scaled.reduce((sum, v) => sum + rescale(v, scale), 0n), scale)
}

/** a − b, exactly, at the larger scale of the two ("406.80" − "6.8" → "400.00"). */
export function subtractDecimals(a: string, b: string): string {
  const x = toScaled(a)
  const y = toScaled(b)
  const scale = Math.max(x.scale, y.scale)
  return fromScaled(rescale(x, scale) - rescale(y, scale), scale)
}

export function multiplyDecimals(a: string, b: string): string {
  const x = toScaled(a)
  const y = toScaled(b)
  return fromScaled(x.units * y.units, x.scale + y.scale)
}

/** Rounds half away from zero to `scale` places (commercial rounding). */
export function roundDecimal(value: string, scale: number): string {
  const v = toScaled(value)
  if (v.scale <= scale) return fromScaled(rescale(v, scale), scale)
  const divisor = 10n ** BigInt(v.scale - scale)
  const negative = v.units < 0n
  const abs = negative ? -v.units : v.units
  const rounded = (abs + divisor / 2n) / divisor
  return fromScaled(negative ? -rounded : rounded, scale)
}

/** Drops trailing fractional zeros down to `minScale` places; never rounds. `0.300` → `0.30`. */
export function trimDecimal(value: string, minScale: number): string {
  const v = toScaled(value)
  let { units, scale } = v
  while (scale > minScale && units % 10n === 0n) {
    units /= 10n
    scale--
  }
  return scale < minScale ? fromScaled(units * 10n ** BigInt(minScale - scale), minScale) : fromScaled(units, scale)
}

export function compareDecimals(a: string, b: string): number {
  const x = toScaled(a)
  const y = toScaled(b)
  const scale = Math.max(x.scale, y.scale)
  const d = rescale(x, scale) - rescale(y, scale)
  return d === 0n ? 0 : d < 0n ? -1 : 1
}
