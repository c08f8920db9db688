/**
 * The closed set of failure kinds every connector error is classified into, once, by the connector's
 * `classify()`. Only the sync worker turns a kind into queue terms (retry, delay, give up).
 * Messages must be safe to show in the dashboard; the raw error travels in `cause`.
 */
export const failureKinds = [
  'transient',
  'rate_limited',
  'conflict',
  'unknown_outcome',
  'auth',
  'config',
  'data',
  'not_found',
  'bug',
] as const
export type FailureKind = (typeof failureKinds)[number]

const retryableKinds: ReadonlySet<FailureKind> = new Set(['transient', 'rate_limited', 'conflict', 'unknown_outcome'])

export interface FailureDetails {
  connectorId?: string
  httpStatus?: number
  /** When the remote said how long to wait (Retry-After), in milliseconds. */
  retryAfterMs?: number
  /** Insufficient stock for an all-or-nothing reservation: what each short line asked for and could get. */
  missing?: MissingStock[]
}

/** Quantities are decimal strings, as in the inventory capability. */
export interface MissingStock {
  lineId: string
  sku: string
  requested: string
  available: string
}

export class SyncFailure extends Error {
  readonly kind: FailureKind
  readonly details: FailureDetails

  constructor(kind: FailureKind, message: string, details: FailureDetails = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SyncFailure'
    this.kind = kind
    this.details = details
  }

  get retryable(): boolean {
    return retryableKinds.has(this.kind)
  }

  /** What is stored and shown: never the cause, which may hold bodies or secrets. */
  toJSON(): { kind: FailureKind; message: string; httpStatus?: number } {
    return { kind: this.kind, message: this.message, ...(this.details.httpStatus ? { httpStatus: this.details.httpStatus } : {}) }
  }
}

export function isSyncFailure(value: unknown): value is SyncFailure {
  return value instanceof SyncFailure
}
