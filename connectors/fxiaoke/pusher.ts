/**
 * Sends signed pushes the way the Fxiaoke open platform does (and a CRM function can): a JSON body
 * `{nonce, timeStamp, content, sig}`, content encrypted when an EncodingAESKey is given. Like the
 * platform, it waits 3 seconds for the answer `success` and tries once more otherwise.
 */
import { signCallback, type CallbackBody } from './callback.ts'

export interface PushResult {
  status: number
  body: string
  attempts: number
}

export interface FxiaokePusherOptions {
  url: string
  token: string
  encodingAesKey?: string
  appId?: string
  /** Tries after the first when the answer is not `success` (the platform tries once more). */
  retries?: number
  timeoutMs?: number
}

export interface FxiaokePusher {
  /** Signs and sends `content` (a value is sent as JSON). */
  push(content: unknown, options?: { timeStamp?: string; nonce?: string }): Promise<PushResult>
  /** Sends a body exactly as given (tests: tampered or replayed deliveries). */
  send(body: CallbackBody | string): Promise<PushResult>
}

export function createFxiaokePusher(options: FxiaokePusherOptions): FxiaokePusher {
  const retries = options.retries ?? 1
  const timeoutMs = options.timeoutMs ?? 3_000

  async function sendOnce(body: string): Promise<{ status: number; body: string }> {
    try {
      const response = await fetch(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json;charset=UTF-8' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      })
      return { status: response.status, body: await response.text() }
    } catch {
      return { status: 0, body: '' }
    }
  }

  async function send(body: CallbackBody | string): Promise<PushResult> {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    let last = { status: 0, body: '' }
    for (let attempt = 1; attempt <= retries + 1; attempt++) {
      last = await sendOnce(text)
      if (last.status >= 200 && last.status < 300 && last.body === 'success') return { ...last, attempts: attempt }
      // A refusal (4xx) will not change on a retry; the platform would try again anyway, we don't.
      if (last.status >= 400 && last.status < 500) return { ...last, attempts: attempt }
    }
    return { ...last, attempts: retries + 1 }
  }

  return {
    push(content, extra = {}) {
      const text = typeof content === 'string' ? content : JSON.stringify(content)
      return send(signCallback({ token: options.token, content: text, encodingAesKey: options.encodingAesKey, appId: options.appId, ...extra }))
    },
    send,
  }
}
