/**
 * Keeps calls under the Open API's per-interface limit (about 100 calls per 20 s): a sliding
 * window of call times per key (tenant and interface), shared by every job in this process. A call
 * over the limit waits until the oldest call in the window has left it. A call counts from when it
 * is sent until its answer came, and then as of that moment, so that the gateway (which sees it
 * somewhere in between) never counts more than the limit however long the trip took. Another
 * process keeps its own window, so set `callsPerWindow` for the number of workers (the
 * connection's `rateLimit` paces jobs, not the calls inside one).
 */

/** Per key, one entry per call in the window: when it was answered, or Infinity while in flight. */
const windows = new Map<string, { at: number }[]>()

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Runs `call` once one more call under `key` fits `max` calls per `windowMs`. */
export async function paced<T>(key: string, max: number, windowMs: number, call: () => Promise<T>): Promise<T> {
  let slot: { at: number }
  for (;;) {
    const now = Date.now()
    const calls = (windows.get(key) ?? []).filter((c) => now - c.at < windowMs)
    windows.set(key, calls)
    if (calls.length < max) {
      slot = { at: Number.POSITIVE_INFINITY }
      calls.push(slot)
      break
    }
    // Wait for the oldest answered call to leave the window (or a little, while all are in flight).
    const oldest = Math.min(...calls.map((c) => c.at))
    await sleep(Number.isFinite(oldest) ? oldest + windowMs - now : 10)
  }
  try {
    return await call()
  } finally {
    slot.at = Date.now()
  }
}

/** Forgets every window (tests). */
export function forgetPacing(): void {
  windows.clear()
}
