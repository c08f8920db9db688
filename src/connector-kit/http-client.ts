import http from 'node:http'
import https from 'node:https'
import axios, { AxiosError, type AxiosInstance } from 'axios'
import { SyncFailure } from './failure.ts'
import { failureKindForStatus, parseRetryAfter } from './http-status.ts'

export interface HttpClientOptions {
  baseURL: string
  timeoutMs?: number
  headers?: Record<string, string>
}

// Shared keep-alive agents: one POST per job over fresh sockets is ~3x slower (see DESIGN.md).
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 64 })

/**
 * An HTTP client for connectors' `client.ts`: keep-alive, a timeout, and no retries of its own,
 * because the queue does the retrying.
 */
export function createHttpClient(options: HttpClientOptions): AxiosInstance {
  return axios.create({
    baseURL: options.baseURL,
    timeout: options.timeoutMs ?? 30_000,
    headers: options.headers,
    httpAgent,
    httpsAgent,
    maxRedirects: 0,
    proxy: false,
  })
}

const neverSentCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * The default classification of an HTTP error. A request that may have reached the remote and
 * got no answer is an `unknown_outcome`: the caller must look before it writes again.
 */
export function classifyHttpError(err: unknown, connectorId: string): SyncFailure {
  if (err instanceof SyncFailure) return err
  if (err instanceof AxiosError) {
    const status = err.response?.status
    if (status !== undefined) {
      const retryAfterMs = parseRetryAfter(err.response?.headers?.['retry-after'] as string | undefined)
      return new SyncFailure(failureKindForStatus(status), `remote answered HTTP ${status}`, { connectorId, httpStatus: status, retryAfterMs }, { cause: err })
    }
    if (err.code && neverSentCodes.has(err.code)) {
      return new SyncFailure('transient', `remote unreachable (${err.code})`, { connectorId }, { cause: err })
    }
    return new SyncFailure('unknown_outcome', `no answer from remote (${err.code ?? 'network error'})`, { connectorId }, { cause: err })
  }
  return new SyncFailure('bug', 'unexpected error in connector', { connectorId }, { cause: err })
}
