import type { FailureKind } from './failure.ts'

/** The default HTTP status → failure kind table; a connector's classify() may refine it. */
export function failureKindForStatus(status: number): FailureKind {
  if (status === 429) return 'rate_limited'
  if (status === 408 || status === 425 || status >= 500) return 'transient'
  if (status === 409) return 'conflict'
  if (status === 401 || status === 403) return 'auth'
  if (status === 404) return 'not_found'
  return 'data'
}

/** Retry-After is either delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (!value) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
