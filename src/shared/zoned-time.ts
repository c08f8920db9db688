/**
 * Wall clocks in IANA time zones, exactly to the millisecond: the fields a zone's clock shows at
 * an instant, and the instant at which it shows given fields. Pure: no I/O, the clock is never read.
 */

export interface WallClock {
  year: number
  /** 1–12 */
  month: number
  day: number
  hour: number
  minute: number
  second: number
  ms: number
}

// Intl formatters are costly to build; one per time zone is enough.
const formatters = new Map<string, Intl.DateTimeFormat>()
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    formatters.set(timeZone, f)
  }
  return f
}

/** The wall-clock fields of an instant in a time zone. */
export function wallClockAt(epochMs: number, timeZone: string): WallClock {
  if (timeZone === 'UTC') {
    const d = new Date(epochMs)
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(), ms: d.getUTCMilliseconds() }
  }
  const parts: Record<string, number> = {}
  for (const p of formatterFor(timeZone).formatToParts(new Date(epochMs))) if (p.type !== 'literal') parts[p.type] = Number(p.value)
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour!, minute: parts.minute!, second: parts.second!, ms: ((epochMs % 1000) + 1000) % 1000 }
}

/** The instant at which a wall clock in `timeZone` shows these fields. */
export function instantOfWallClock(f: WallClock, timeZone: string): number {
  const asUtc = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second, f.ms)
  if (timeZone === 'UTC') return asUtc
  const offsetAt = (t: number) => {
    const w = wallClockAt(t, timeZone)
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, f.ms) - t
  }
  const first = asUtc - offsetAt(asUtc)
  // Around a DST change the offset at the first guess may differ; one correction settles it.
  return asUtc - offsetAt(first)
}
