/**
 * A simulator's outgoing webhooks: each event is signed with Standard Webhooks and POSTed to the
 * configured URL, one at a time and in order, retried with backoff on network errors, 408, 429 and
 * 5xx (same webhook-id, signed afresh each attempt), and given up after a 4xx or the last retry.
 * Without a target nothing is sent or recorded. It does not log. For connectors' simulators, which
 * play the vendor's side in the demo and the tests.
 */
import { randomUUID } from 'node:crypto'
import { signStandardWebhook } from './standard-webhooks.ts'

export interface WebhookTarget {
  url: string
  /** A Standard Webhooks secret, `whsec_<base64>`. */
  secret: string
}

export interface WebhookDelivery<Body> {
  id: string
  body: Body
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  /** The receiver's last answer; absent after a network error. */
  lastHttpStatus?: number
}

export interface WebhookOutbox<Body> {
  /** Queues one event for the current target; does nothing without a target. */
  emit(body: Body): void
  setTarget(target: WebhookTarget | undefined): void
  deliveries(): WebhookDelivery<Body>[]
  /** Resolves when every event queued so far was delivered or given up. */
  flush(): Promise<void>
  /** Stops retrying; what is still queued is given up. */
  close(): void
}

export interface WebhookOutboxOptions {
  retries?: number
  retryDelayMs?: number
  timeoutMs?: number
}

export function createWebhookOutbox<Body>(target: WebhookTarget | undefined, options: WebhookOutboxOptions = {}): WebhookOutbox<Body> {
  const retries = options.retries ?? 5
  const retryDelayMs = options.retryDelayMs ?? 200
  const timeoutMs = options.timeoutMs ?? 5_000
  let current = target
  let closed = false
  let chain: Promise<void> = Promise.resolve()
  const log: WebhookDelivery<Body>[] = []
  const sleeping = new Map<NodeJS.Timeout, () => void>()
  const closing = new AbortController()

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sleeping.delete(timer)
        resolve()
      }, ms)
      sleeping.set(timer, resolve)
    })
  }

  async function deliver(delivery: WebhookDelivery<Body>, to: WebhookTarget): Promise<void> {
    const payload = JSON.stringify(delivery.body)
    for (let attempt = 0; !closed; attempt++) {
      delivery.attempts += 1
      const headers = signStandardWebhook(to.secret, delivery.id, Math.floor(Date.now() / 1000), payload)
      let retryable = true
      try {
        const response = await fetch(to.url, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: payload,
          signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), closing.signal]),
        })
        await response.arrayBuffer().catch(() => undefined)
        delivery.lastHttpStatus = response.status
        if (response.ok) {
          delivery.status = 'delivered'
          return
        }
        retryable = response.status === 408 || response.status === 429 || response.status >= 500
      } catch {
        delete delivery.lastHttpStatus
      }
      if (!retryable || attempt >= retries) break
      await sleep(retryDelayMs * 2 ** attempt)
    }
    delivery.status = 'failed'
  }

  return {
    emit(body) {
      const to = current
      if (!to || closed) return
      const delivery: WebhookDelivery<Body> = { id: `msg_${randomUUID()}`, body, status: 'pending', attempts: 0 }
      log.push(delivery)
      chain = chain.then(() => deliver(delivery, to))
    },
    setTarget(next) {
      current = next
    },
    deliveries: () => log.map((delivery) => structuredClone(delivery)),
    flush: () => chain,
    close() {
      closed = true
      closing.abort()
      for (const [timer, wake] of sleeping) {
        clearTimeout(timer)
        wake()
      }
      sleeping.clear()
    },
  }
}
