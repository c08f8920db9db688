/**
 * Exact decimal arithmetic on the strings IDocs carry (quantities "4.000", amounts "2416.95"), for
 * summing delivered quantities and, in the simulator, invoice totals. Never through a float.
 * Pure: no I/O.
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

function format(units: bigint, scale: number): string {
  const negative = units < 0n
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0')
  const whole = digits.slice(0, digits.length - scale)
  const text = scale > 0 ? `${whole}.${digits.slice(digits.length - scale)}` : whole
  return negative ? `-${text}` : text
}

/** The exact sum, at the largest scale of its terms ("4.000" + "2" → "6.000"). */
export function addDecimals(...values: readonly string[]): string {
  const parts = values.map(scaled)
  const scale = Math.max(0, ...parts.map((p) => p.scale))
  return format(
    parts.reduce((sum, p) => sum + p.units * 10n ** BigInt(scale - p.scale), 0n),
    scale,
  )
}

/** The sign of a decimal: -1, 0 or 1. */
export function signOf(value: string): -1 | 0 | 1 {
  const { units } = scaled(value)
  return units === 0n ? 0 : units < 0n ? -1 : 1
}
