/**
 * Batching for calls that each cost a round trip: calls made while earlier batches run gather into
 * the next one, so under load many callers share one statement or transaction, and a lone caller
 * waits for no one (its batch starts in the next turn of the event loop). Used by the sync steps
 * for their leases, attempts and settling transactions.
 */

/**
 * One batcher per owner (a Database: batches never mix connections' callers), made the first time
 * the owner asks.
 */
export function batcherPer<K extends object, I, O>(make: (owner: K) => (item: I) => Promise<O>): (owner: K) => (item: I) => Promise<O> {
  const made = new WeakMap<K, (item: I) => Promise<O>>()
  return (owner) => {
    let batcher = made.get(owner)
    if (!batcher) made.set(owner, (batcher = make(owner)))
    return batcher
  }
}

export interface BatcherOptions<I> {
  /** Items per batch at most. */
  maxBatch: number
  /** Batches running at once: with two, one is sent while the other is answered. */
  maxInFlight: number
  /** Items with the same key never share a batch; the later one waits for the next. */
  keyOf?: (item: I) => string
}

/**
 * `run` answers a batch with one result per item, in order. When a batch of several fails as a
 * whole, each of its items is run alone, so one item's error is its own.
 */
export function createBatcher<I, O>(run: (items: I[]) => Promise<O[]>, options: BatcherOptions<I>): (item: I) => Promise<O> {
  interface Pending {
    item: I
    resolve(value: O): void
    reject(err: unknown): void
  }
  let queue: Pending[] = []
  let inFlight = 0
  let scheduled = false

  function schedule(): void {
    if (scheduled || inFlight >= options.maxInFlight) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      if (!queue.length || inFlight >= options.maxInFlight) return
      const batch = take()
      inFlight++
      void settle(batch).finally(() => {
        inFlight--
        if (queue.length) schedule()
      })
    })
  }

  function take(): Pending[] {
    if (!options.keyOf) return queue.splice(0, options.maxBatch)
    const batch: Pending[] = []
    const keys = new Set<string>()
    const rest: Pending[] = []
    for (const pending of queue) {
      const key = options.keyOf(pending.item)
      if (batch.length < options.maxBatch && !keys.has(key)) {
        batch.push(pending)
        keys.add(key)
      } else rest.push(pending)
    }
    queue = rest
    return batch
  }

  async function settle(batch: Pending[]): Promise<void> {
    if (batch.length > 1) {
      try {
        const results = await run(batch.map((p) => p.item))
        batch.forEach((p, i) => p.resolve(results[i]!))
        return
      } catch {
        // Run one by one below: the error belongs to one of them, and that one reports it.
      }
    }
    await Promise.all(
      batch.map(async (p) => {
        try {
          const [result] = await run([p.item])
          p.resolve(result!)
        } catch (err) {
          p.reject(err)
        }
      }),
    )
  }

  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject })
      schedule()
    })
}
