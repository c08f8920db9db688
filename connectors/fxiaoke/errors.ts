/**
 * Fxiaoke errors → failure kinds, once. Fxiaoke answers errors with HTTP 200 and an `errorCode`;
 * its docs say to branch on the code, never on `errorMessage`. The table below holds the codes
 * whose meaning is known (README: "Errors"); a connection can add or correct codes in
 * `settings.errorCodes`. An unknown code is `transient`: our writes set fields to values, so a retry
 * is safe, the retries are bounded, and the dead letter can be replayed once the code is mapped.
 */
import { SyncFailure, classifyHttpError, type FailureKind } from '../../src/connector-kit/index.ts'
import { FxiaokeApiError, tokenExpiredCode } from './client.ts'
import { fxiaokeConnectorId, type FxiaokeSettings } from './settings.ts'

export interface ErrorCodeEntry {
  kind: FailureKind
  meaning: string
  source: string
}

export const dailyQuotaExceededCode = 30002

export const fxiaokeErrorCodes: Readonly<Record<number, ErrorCodeEntry>> = {
  [tokenExpiredCode]: { kind: 'auth', meaning: 'corpAccessToken missing or expired (still so after logging in again once)', source: 'official demo (Constants.CORP_ACCESS_TOKEN_EXPIRED)' },
  20005: { kind: 'auth', meaning: 'appAccessToken missing or expired', source: 'official demo (Constants.APP_ACCESS_TOKEN_EXPIRED)' },
  20017: { kind: 'auth', meaning: 'corpAccessToken is required (the call carried none)', source: 'doc digest, observed answer' },
  10006: { kind: 'auth', meaning: 'appSecret missing or wrong (token endpoint)', source: 'doc digest, observed answer' },
  [dailyQuotaExceededCode]: { kind: 'rate_limited', meaning: 'the tenant\'s API calls for today are used up', source: 'doc digest' },
  30003: { kind: 'config', meaning: 'the tenant has bought no Open API quota', source: 'doc digest' },
  10013: { kind: 'bug', meaning: 'offset beyond what the query allows (our paging never sends one)', source: 'doc digest, unverified' },
}

/** Milliseconds until the next midnight in Beijing time (UTC+8, no daylight saving), when daily quotas reset. */
export function untilBeijingMidnight(now: number = Date.now()): number {
  const day = 24 * 3600_000
  const offset = 8 * 3600_000
  return day - ((now + offset) % day)
}

export function classifyFxiaokeError(err: unknown, settings: Pick<FxiaokeSettings, 'errorCodes'> | undefined): SyncFailure {
  if (err instanceof SyncFailure) return err
  if (err instanceof FxiaokeApiError) {
    const override = settings?.errorCodes[String(err.errorCode)]
    const kind = override ?? fxiaokeErrorCodes[err.errorCode]?.kind ?? 'transient'
    const retryAfterMs = kind === 'rate_limited' && err.errorCode === dailyQuotaExceededCode ? untilBeijingMidnight() : undefined
    return new SyncFailure(kind, err.message, { connectorId: fxiaokeConnectorId, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }, { cause: err })
  }
  const status = httpStatusOf(err)
  if (status !== undefined && status >= 300 && status < 400) {
    // www.fxiaoke.com answers API paths with a redirect to a web page: the baseUrl is wrong.
    return new SyncFailure('config', `remote answered HTTP ${status}: baseUrl must be the Open API gateway (e.g. https://open.fxiaoke.com)`, { connectorId: fxiaokeConnectorId, httpStatus: status }, { cause: err })
  }
  return classifyHttpError(err, fxiaokeConnectorId)
}

function httpStatusOf(err: unknown): number | undefined {
  const response = typeof err === 'object' && err !== null && 'response' in err ? (err as { response?: { status?: unknown } }).response : undefined
  return typeof response?.status === 'number' ? response.status : undefined
}
