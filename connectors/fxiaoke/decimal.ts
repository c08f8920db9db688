/**
 * Exact decimal text, for stock figures: quantities arrive as decimal strings and product fields
 * answer as strings or JSON numbers; neither passes through a float. Pure: no I/O.
 */

const decimalPattern = /^(-)?(\d+)(?:\.(\d+))?$/

export function isDecimal(value: string): boolean {
  return decimalPattern.test(value)
}

function scaled(value: string): { units: bigint; scale: number } {
  const match = decimalPattern.exec(value.trim())
  if (!match) throw new RangeError(`"${value}" is not a decimal`)
  const fraction = match[3] ?? ''
  const units = BigInt(`${match[2]}${fraction}`)
  return { units: match[1] ? -units : units, scale: fraction.length }
}

/** The exact sum, without trailing fractional zeros ("1.50" + "2" → "3.5"). */
export function sumDecimals(values: readonly string[]): string {
  const parts = values.map(scaled)
  const scale = Math.max(0, ...parts.map((p) => p.scale))
  const total = parts.reduce((sum, p) => sum + p.units * 10n ** BigInt(scale - p.scale), 0n)
  const negative = total < 0n
  const digits = (negative ? -total : total).toString().padStart(scale + 1, '0')
  const fraction = scale ? digits.slice(-scale).replace(/0+$/, '') : ''
  const text = fraction ? `${digits.slice(0, digits.length - scale)}.${fraction}` : digits.slice(0, digits.length - scale)
  return negative && /[1-9]/.test(text) ? `-${text}` : text
}

/** Whether a field's current value is this decimal ("12.50" and 12.5 are; null, "" and "abc" are not). */
export function sameDecimal(current: unknown, wanted: string): boolean {
  const text = typeof current === 'number' ? String(current) : typeof current === 'string' ? current.trim() : undefined
  if (text === undefined || !isDecimal(text)) return false
  return sumDecimals([text]) === sumDecimals([wanted])
}
