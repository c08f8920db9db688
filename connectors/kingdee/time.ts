/**
 * Kingdee datetimes are wall-clock text in the account set's time zone without an offset
 * ("2025-01-09T12:00:45.053"); orderbridge speaks ISO 8601 instants. These convert between the two
 * for a named IANA zone, exactly to the millisecond. Pure: no I/O.
 */
import { instantOfWallClock, wallClockAt } from '../../src/connector-kit/index.ts'

const wallPattern = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?$/

/** "2025-01-09T12:00:45.053" in `timeZone` → "2025-01-09T04:00:45.053Z"; undefined when it is not a Kingdee datetime. */
export function kingdeeTimeToIso(text: string, timeZone: string): string | undefined {
  const match = wallPattern.exec(text.trim())
  if (!match) return undefined
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = ''] = match
  const wall = { year: Number(y), month: Number(mo), day: Number(d), hour: Number(h), minute: Number(mi), second: Number(s), ms: Number(fraction.padEnd(3, '0').slice(0, 3)) }
  return new Date(instantOfWallClock(wall, timeZone)).toISOString()
}

/** An ISO instant → the wall clock of `timeZone` as Kingdee filters take it: "2025-01-09T12:00:45.053". */
export function isoToKingdeeTime(iso: string, timeZone: string): string {
  const instant = Date.parse(iso)
  if (Number.isNaN(instant)) throw new RangeError(`"${iso}" is not an ISO 8601 instant`)
  const w = wallClockAt(instant, timeZone)
  return new Date(Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, w.ms)).toISOString().slice(0, 23)
}
