/**
 * Salesforce's errors in orderbridge's failure kinds. REST answers an array of
 * `{errorCode, message, fields}` and the OAuth token endpoint `{error, error_description}`; the
 * error code decides where it is known, the HTTP status otherwise. Pure: no I/O.
 */
import { AxiosError } from 'axios'
import { SyncFailure, classifyHttpError, failureKindForStatus, parseRetryAfter, type FailureKind } from '../../src/connector-kit/index.ts'
import { restErrorsOf } from './client.ts'
import { salesforceConnectorId } from './settings.ts'

/**
 * REST error codes by kind. INVALID_SESSION_ID reaches classify only when logging in again did not
 * help. Missing permissions stop the connection like bad credentials: a person must grant them.
 */
export const restErrorKinds: Readonly<Record<string, FailureKind>> = {
  INVALID_SESSION_ID: 'auth',
  INVALID_AUTH_HEADER: 'auth',
  INSUFFICIENT_ACCESS_OR_READONLY: 'auth',
  INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY: 'auth',
  API_DISABLED_FOR_ORG: 'auth',
  API_CURRENTLY_DISABLED: 'auth',
  REQUEST_LIMIT_EXCEEDED: 'rate_limited',
  ENTITY_IS_LOCKED: 'conflict',
  UNABLE_TO_LOCK_ROW: 'conflict',
  FIELD_CUSTOM_VALIDATION_EXCEPTION: 'data',
  REQUIRED_FIELD_MISSING: 'data',
  FIELD_INTEGRITY_EXCEPTION: 'data',
  FIELD_FILTER_VALIDATION_EXCEPTION: 'data',
  STRING_TOO_LONG: 'data',
  NUMBER_OUTSIDE_VALID_RANGE: 'data',
  INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: 'data',
  INVALID_TYPE_ON_FIELD_IN_RECORD: 'data',
  INVALID_CROSS_REFERENCE_KEY: 'data',
  DUPLICATE_VALUE: 'data',
  MALFORMED_ID: 'data',
  JSON_PARSER_ERROR: 'data',
  CANNOT_EXECUTE_FLOW_TRIGGER: 'data',
  // The configured field or object does not exist or cannot be written: the connection's settings are wrong.
  INVALID_FIELD: 'config',
  INVALID_FIELD_FOR_INSERT_UPDATE: 'config',
  INVALID_TYPE: 'config',
  // Our query is fixed but for the configured SKU field: a field path SOQL cannot read (a reserved word) is the settings'.
  MALFORMED_QUERY: 'config',
  // A filter value that is no id of the object; ids are checked before they go into a query.
  INVALID_QUERY_FILTER_OPERATOR: 'data',
  NOT_FOUND: 'not_found',
  ENTITY_IS_DELETED: 'not_found',
  SERVER_UNAVAILABLE: 'transient',
  UNKNOWN_EXCEPTION: 'transient',
  // A query that took too long, or a nextRecordsUrl that expired (15 minutes unused): the query runs again.
  QUERY_TIMEOUT: 'transient',
  INVALID_QUERY_LOCATOR: 'transient',
}

/** OAuth token endpoint errors: every one means the credentials or the app's policy must be fixed. */
const oauthErrors = new Set(['invalid_client', 'invalid_client_id', 'invalid_client_credentials', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'inactive_user', 'inactive_org', 'invalid_request'])

const maxMessage = 300

export function classifySalesforceError(err: unknown): SyncFailure {
  if (err instanceof SyncFailure) return err
  if (!(err instanceof AxiosError) || err.response === undefined) return classifyHttpError(err, salesforceConnectorId)
  const status = err.response.status
  const retryAfterMs = parseRetryAfter(err.response.headers?.['retry-after'] as string | undefined)
  const details = { connectorId: salesforceConnectorId, httpStatus: status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) }
  // A server error is the server's, whatever code it carries.
  const serverError = status >= 500

  const [first] = restErrorsOf(err)
  if (first) {
    const kind = serverError ? 'transient' : (restErrorKinds[first.errorCode] ?? failureKindForStatus(status))
    const fields = first.fields?.length ? ` (${first.fields.join(', ')})` : ''
    return new SyncFailure(kind, truncate(`Salesforce ${first.errorCode}: ${withoutQueryEcho(first.message)}${fields}`), details, { cause: err })
  }
  const data = err.response.data as { error?: unknown; error_description?: unknown } | undefined
  if (typeof data?.error === 'string') {
    const kind = serverError ? 'transient' : oauthErrors.has(data.error) || status === 400 || status === 401 ? 'auth' : failureKindForStatus(status)
    const description = typeof data.error_description === 'string' ? `: ${data.error_description}` : ''
    return new SyncFailure(kind, truncate(`Salesforce login refused (${data.error}${description})`), details, { cause: err })
  }
  return classifyHttpError(err, salesforceConnectorId)
}

/**
 * A query error repeats the whole query with a caret under the fault, then the reason
 * (`\nSELECT …\n   ^\nERROR at Row:1:Column:50\nNo such column …`): the reason and the position are
 * kept, the echo (our own query) would crowd the reason out of the message.
 */
function withoutQueryEcho(message: string): string {
  const echo = /\nERROR at Row:(\d+):Column:(\d+)\n([\s\S]*)$/.exec(message)
  return echo ? `${echo[3]!.trim()} (query row ${echo[1]}, column ${echo[2]})` : message
}

const truncate = (s: string) => (s.length > maxMessage ? `${s.slice(0, maxMessage - 1)}…` : s)
