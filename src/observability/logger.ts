/**
 * JSON logs (pino) that carry ids, never bodies or secrets. Errors are reduced to type, code,
 * message and stack: an HTTP client error holds the request config, headers and all.
 */
import { pino, type Logger, type LoggerOptions } from 'pino'

interface SafeError {
  type: string
  message: string
  code?: string
  kind?: string
  httpStatus?: number
  stack?: string
  cause?: SafeError
}

export function serializeError(err: unknown, depth = 0): SafeError {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) }
  const e = err as Error & { code?: unknown; kind?: unknown; details?: { httpStatus?: number } }
  return {
    type: e.name,
    message: e.message,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.kind === 'string' ? { kind: e.kind } : {}),
    ...(e.details?.httpStatus ? { httpStatus: e.details.httpStatus } : {}),
    ...(e.stack ? { stack: e.stack } : {}),
    ...(e.cause !== undefined && depth < 3 ? { cause: serializeError(e.cause, depth + 1) } : {}),
  }
}

export const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["webhook-signature"]',
  'headers.authorization',
  '*.secrets',
  '*.apiToken',
  '*.webhookSecret',
  '*.password',
]

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    serializers: { err: serializeError, error: serializeError },
  }
}

export function createLogger(level: string): Logger {
  return pino(loggerOptions(level))
}
