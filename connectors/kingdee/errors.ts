/**
 * What Kingdee K3 Cloud answers when it refuses, and how each refusal is classified.
 *
 * The WebAPI answers HTTP 200 even when it refuses: `Result.ResponseStatus.IsSuccess` is false and
 * `Errors[{FieldName, Message, DIndex}]` and `MsgCode` say why (ExecuteBillQuery wraps the same
 * object in `[[…]]`). MsgCode, from the WebAPI documentation: 0 default, 1 context (session) lost,
 * 2 no permission, 3 operation id empty, 4 exception, 5 form id empty, 6 database operation failed,
 * 7 licence error, 8 parameter error, 9 field/value does not exist, 10 no such data, 11 validation
 * failed, 12 not allowed, 13 network-control (lock) conflict, 14 call limit, 15 administrator login
 * forbidden. Pure: no I/O.
 */
import { SessionExpired, SyncFailure, classifyHttpError, type FailureKind } from '../../src/connector-kit/index.ts'

export const kingdeeConnectorId = 'kingdee'

export interface KingdeeMessage {
  fieldName: string
  message: string
  dIndex?: number
}

export interface KingdeeStatus {
  isSuccess: boolean
  errorCode?: string
  msgCode?: number
  errors: KingdeeMessage[]
  successEntities: { id: string; number: string; dIndex?: number }[]
}

/** Kingdee refused an operation (HTTP 200, IsSuccess false). */
export class KingdeeError extends Error {
  readonly operation: string
  readonly status: KingdeeStatus
  constructor(operation: string, status: KingdeeStatus) {
    super(`Kingdee refused ${operation}: ${describeMessages(status.errors) || `MsgCode ${status.msgCode ?? '?'}`}`)
    this.name = 'KingdeeError'
    this.operation = operation
    this.status = status
  }

  /** The session expired or was dropped by the server: log in again and repeat the call. */
  get sessionLost(): boolean {
    return isSessionLost(this.status)
  }
}

/** LoginByAppSecret did not answer LoginResultType 1. */
export class KingdeeLoginError extends Error {
  readonly loginResultType: string | undefined
  constructor(loginResultType: string | undefined, message: string) {
    super(message)
    this.name = 'KingdeeLoginError'
    this.loginResultType = loginResultType
  }
}

/**
 * An answer of a shape the WebAPI does not give (an HTML error page from a proxy, a truncated body).
 * `mayHaveWritten` when it answered a write: the write may have committed.
 */
export class KingdeeAnswerError extends Error {
  readonly operation: string
  readonly mayHaveWritten: boolean
  constructor(operation: string, message: string, mayHaveWritten: boolean, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'KingdeeAnswerError'
    this.operation = operation
    this.mayHaveWritten = mayHaveWritten
  }
}

const sessionLostText = /会话(信息)?(已)?(丢失|超时|过期|失效)|上下文(已)?丢失|重新登录|session\s*(has\s*)?(expired|lost|timed?\s*out)|not\s+logged\s+in|please\s+log\s*in/i

export function isSessionLost(status: KingdeeStatus): boolean {
  return status.msgCode === 1 || status.errors.some((e) => sessionLostText.test(e.message))
}

/** Kingdee also answers `{"Message": "会话已超时,请重新登录"}` (no ResponseStatus) to a call without a live session. */
export function isSessionLostMessage(message: string): boolean {
  return sessionLostText.test(message)
}

const lockText = /网控|网络控制|锁定|被锁|加锁|已被.{0,12}(占用|锁)|正在被.{0,20}(编辑|修改|使用|处理|操作)|并发|死锁|deadlock|locked|lock conflict|concurren/i

export function describeMessages(errors: readonly KingdeeMessage[], max = 10): string {
  const parts = errors.slice(0, max).map((e) => (e.fieldName ? `${e.fieldName}: ${e.message}` : e.message))
  if (errors.length > max) parts.push(`and ${errors.length - max} more`)
  const text = parts.join('; ')
  return text.length > 1000 ? `${text.slice(0, 997)}...` : text
}

/** The failure kind of a refusal. */
export function kingdeeFailureKind(status: KingdeeStatus): FailureKind {
  const text = status.errors.map((e) => e.message).join(' ')
  if (isSessionLost(status)) return 'auth'
  if (status.msgCode === 13 || lockText.test(text)) return 'conflict'
  switch (status.msgCode) {
    case 14:
      return 'rate_limited'
    case 2: // no permission on the form or operation
    case 15: // the administrator may not log in through the WebAPI
      return 'auth'
    case 7: // licence
      return 'config'
    case 3: // operation id empty
    case 5: // form id empty: the connector built a wrong request
      return 'bug'
    case 10:
      return 'not_found'
    case 4: // an exception in the server
    case 6: // the database operation failed (timeouts, deadlocks)
      return 'transient'
    default:
      // 0, 8, 9, 11, 12: the document or its values were refused; people must fix them.
      return 'data'
  }
}

/**
 * The connector's classify(): Kingdee's refusals by MsgCode and message, login failures as `auth`,
 * HTTP and network errors as the kit classifies them.
 */
export function classifyKingdeeError(err: unknown, connectorId: string = kingdeeConnectorId): SyncFailure {
  if (err instanceof SyncFailure) return err
  if (err instanceof KingdeeError) {
    return new SyncFailure(kingdeeFailureKind(err.status), err.message, { connectorId }, { cause: err })
  }
  if (err instanceof KingdeeLoginError) {
    return new SyncFailure('auth', err.message, { connectorId }, { cause: err })
  }
  if (err instanceof SessionExpired) {
    return new SyncFailure('auth', 'Kingdee refused a freshly opened session', { connectorId }, { cause: err })
  }
  if (err instanceof KingdeeAnswerError) {
    // After a write, the answer we could not read may hide a commit: look before writing again.
    return new SyncFailure(err.mayHaveWritten ? 'unknown_outcome' : 'transient', err.message, { connectorId }, { cause: err })
  }
  return classifyHttpError(err, connectorId)
}
