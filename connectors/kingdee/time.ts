/**
 * Kingdee datetimes are wall-clock text in the account set's time zone without an offset
 * ("2025-01-09T12:00:45.053"); orderbridge speaks ISO 8601 instants. These convert between the two
 * for a named IANA zone, exactly to the millisecond. Pure: no I/O.
 */

const wallPattern = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?$/

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone)
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-CA', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    formatters.set(timeZone, formatter)
  }
  return formatter
}

/** The zone's wall clock at an instant, as milliseconds of a UTC date with the same fields. */
function wallClockMs(instant: number, timeZone: string): number {
  const parts = Object.fromEntries(formatterFor(timeZone).formatToParts(new Date(instant)).map((p) => [p.type, p.value]))
  const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second))
  return wall + (((instant % 1000) + 1000) % 1000)
}

/** "2025-01-09T12:00:45.053" in `timeZone` → "2025-01-09T04:00:45.053Z"; undefined when it is not a Kingdee datetime. */
export function kingdeeTimeToIso(text: string, timeZone: string): string | undefined {
  const match = wallPattern.exec(text.trim())
  if (!match) return undefined
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = ''] = match
  const wall = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(fraction.padEnd(3, '0').slice(0, 3)))
  // The offset at the guess, then again at the result (a DST change between the two).
  let instant = wall - (wallClockMs(wall, timeZone) - wall)
  instant = wall - (wallClockMs(instant, timeZone) - instant)
  return new Date(instant).toISOString()
}

/** An ISO instant → the wall clock of `timeZone` as Kingdee filters take it: "2025-01-09T12:00:45.053". */
export function isoToKingdeeTime(iso: string, timeZone: string): string {
  const instant = Date.parse(iso)
  if (Number.isNaN(instant)) throw new RangeError(`"${iso}" is not an ISO 8601 instant`)
  return new Date(wallClockMs(instant, timeZone)).toISOString().slice(0, 23)
}
