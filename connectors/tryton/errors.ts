/**
 * Classifies every error of the Tryton connector, once. Tryton answers its own errors with HTTP 200
 * and `[type, args]`; HTTP statuses mean the session, the login throttle or the server:
 *
 * | what | kind |
 * | --- | --- |
 * | `UserError` (credit limit, validation, a missing value) | `data`, with Tryton's message (shown to people: finance sees "Party … has reached their credit limit") |
 * | `UserWarning` (a warning the API user would have to acknowledge) | `data` |
 * | `You are not allowed to …` (access rules) | `config`: the API user lacks rights |
 * | `ConcurrencyException`, "could not obtain lock", deadlock, serialization failure | `conflict` (retry shortly) |
 * | `LoginException`, HTTP 401 on login or on a fresh session | `auth` |
 * | HTTP 429 (failed-login throttle) | `rate_limited` (Retry-After when given, else 60 s) |
 * | network, timeout, 5xx | the kit's table (`transient`, or `unknown_outcome` when the call may have run) |
 *
 * Messages are safe to show: Tryton's user messages hold no secrets, raw errors stay in `cause`.
 */
import { AxiosError } from 'axios'
import { SyncFailure, classifyHttpError, isSyncFailure } from '../../src/connector-kit/index.ts'
import { TrytonProtocolError, TrytonRpcError } from './client.ts'
import { trytonConnectorId } from './settings.ts'

const connectorId = trytonConnectorId
const lockPatterns = [/could not obtain lock/i, /lock not available/i, /deadlock detected/i, /could not serialize access/i, /database is locked/i]
const unavailablePatterns = [/server closed the connection/i, /could not connect to server/i, /connection (?:already closed|refused)/i, /terminating connection/i]
/** Tryton's throttle window ([session] timeout) is 300 s; a minute later is a fair first retry. */
export const loginThrottleRetryMs = 60_000

/** The credit-limit refusal of sale_credit_limit, in the English message. */
export function isCreditLimitError(err: unknown): boolean {
  return err instanceof TrytonRpcError && (err.type === 'UserError' || err.type === 'UserWarning') && /credit limit/i.test(err.userMessage)
}

export function classifyTrytonError(err: unknown): SyncFailure {
  if (isSyncFailure(err)) return err
  if (err instanceof TrytonRpcError) return classifyRpcError(err)
  if (err instanceof TrytonProtocolError) {
    return new SyncFailure('config', 'the server did not answer like Tryton JSON-RPC (check the URL and database)', { connectorId }, { cause: err })
  }
  if (err instanceof AxiosError) {
    const status = err.response?.status
    const method = methodOf(err)
    if (status === 401 && method === 'common.db.login') {
      return new SyncFailure('auth', 'Tryton refused the login (user name or password)', { connectorId, httpStatus: 401 }, { cause: err })
    }
    if (status === 429) {
      const failure = classifyHttpError(err, connectorId)
      return new SyncFailure('rate_limited', 'Tryton is throttling logins after failed attempts', { connectorId, httpStatus: 429, retryAfterMs: failure.details.retryAfterMs ?? loginThrottleRetryMs }, { cause: err })
    }
    return classifyHttpError(err, connectorId)
  }
  return classifyHttpError(err, connectorId)
}

function classifyRpcError(err: TrytonRpcError): SyncFailure {
  const message = err.userMessage
  const cause = { cause: err }
  if (err.type === 'ConcurrencyException') return new SyncFailure('conflict', `Tryton: records were modified in the meanwhile (${err.method})`, { connectorId }, cause)
  if (err.type === 'LoginException') return new SyncFailure('auth', 'Tryton refused the login', { connectorId }, cause)
  if (err.type === 'UserError' || err.type === 'UserWarning') {
    if (/^You are not allowed to (create|write|delete|read|access|execute)/i.test(message) && !/because of at least one of these rules/i.test(message)) {
      return new SyncFailure('config', `the Tryton user lacks rights: ${message}`, { connectorId }, cause)
    }
    return new SyncFailure('data', `Tryton: ${message}`, { connectorId }, cause)
  }
  // Any other type is a server-side exception's text.
  if (lockPatterns.some((pattern) => pattern.test(err.type))) return new SyncFailure('conflict', `Tryton: the database is busy (${err.method}); trying again shortly`, { connectorId }, cause)
  if (unavailablePatterns.some((pattern) => pattern.test(err.type))) return new SyncFailure('transient', `Tryton cannot reach its database (${err.method})`, { connectorId }, cause)
  return new SyncFailure('data', `Tryton failed on ${err.method}: ${message}`, { connectorId }, cause)
}

function methodOf(err: AxiosError): string | undefined {
  const data = err.config?.data
  try {
    const body = typeof data === 'string' ? (JSON.parse(data) as { method?: unknown }) : (data as { method?: unknown } | undefined)
    return typeof body?.method === 'string' ? body.method : undefined
  } catch {
    return undefined
  }
}
