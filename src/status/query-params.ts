/**
 * Query-string shapes shared by the read routes (status, reports): comma lists of known values and
 * points in time. Each failing value is reported at its own path (`state[1]`). No I/O.
 */
import { z } from 'zod'

/** `a,b` → `['a', 'b']`, each one of `values`. */
export function commaList<T extends string>(values: readonly [T, ...T[]]) {
  return z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(z.enum(values)).min(1, 'name at least one value'))
}

const datePattern = /^\d{4}-\d{2}-\d{2}$/
const dateTime = z.iso.datetime({ offset: true })

/** A date (`2026-11-26`, midnight UTC) or an ISO date-time with `Z` or an offset. */
export const instantSchema = z
  .string()
  .refine((v) => (datePattern.test(v) && !Number.isNaN(Date.parse(`${v}T00:00:00Z`))) || dateTime.safeParse(v).success, {
    message: 'expected a date (2026-11-26) or an ISO date-time with Z or an offset (2026-11-26T08:00:00+08:00)',
  })
  .transform((v) => ({ at: new Date(datePattern.test(v) ? `${v}T00:00:00Z` : v), dateOnly: datePattern.test(v) }))

/** A point in time. */
export const instant = instantSchema.transform((v) => v.at)

/** The end of a range, exclusive: a date means the end of that day, so `to=2026-11-30` includes the 30th. */
export const rangeEnd = instantSchema.transform((v) => (v.dateOnly ? new Date(v.at.getTime() + 86_400_000) : v.at))
