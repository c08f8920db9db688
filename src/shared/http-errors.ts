import type { FieldIssue } from './field-issues.ts'

/** Every error response has this shape and a stable `code`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: FieldIssue[] }
}

export function errorBody(code: string, message: string, details?: FieldIssue[]): ErrorBody {
  return { error: { code, message, ...(details ? { details } : {}) } }
}
