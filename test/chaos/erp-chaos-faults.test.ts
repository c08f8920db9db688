/**
 * The ERP simulator's random faults, which the chaos test relies on: each kind does what it says
 * (nothing written before a 5xx, a 429 or a timeout before commit; written when the answer is lost
 * after commit), the shares hold, and the same seed gives the same sequence of faults.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startErpSimulator, type ErpSimulator } from '../../connectors/generic-rest/simulator.ts'

const apiToken = 'chaos-token'
let erp: ErpSimulator

beforeAll(async () => {
  erp = await startErpSimulator({ apiToken })
})
afterAll(() => erp.close())
beforeEach(() => erp.faults.reset())

let counter = 0
async function create(timeoutMs = 2_000): Promise<{ status: number; retryAfter: string | null } | { error: string }> {
  counter += 1
  try {
    const response = await fetch(`${erp.url}/sales-orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json', 'idempotency-key': `key-${counter}` },
      body: JSON.stringify({ reference: `REF-${counter}`, currency: 'CNY', lines: [{ itemCode: 'SKU-1', qty: '1' }] }),
      signal: AbortSignal.timeout(timeoutMs),
    })
    await response.arrayBuffer()
    return { status: response.status, retryAfter: response.headers.get('retry-after') }
  } catch (err) {
    return { error: (err as Error).name }
  }
}

describe('the ERP simulator in chaos mode', () => {
  it('answers 5xx and 429 with Retry-After before handling, so nothing is written', async () => {
    erp.faults.chaos({ fail5xx: 0.5, tooMany: 0.5, retryAfterSeconds: 3, seed: 1 })
    const before = erp.salesOrders().length
    const answers = await Promise.all(Array.from({ length: 40 }, () => create()))
    const counts = erp.faults.injected()
    expect(counts).toMatchObject({ requests: 40, hangBeforeCommit: 0, hangAfterCommit: 0, dropAfterCommit: 0 })
    expect(counts.fail5xx + counts.tooMany).toBe(40)
    expect(answers.filter((a) => 'status' in a && a.status === 429 && a.retryAfter === '3')).toHaveLength(counts.tooMany)
    expect(answers.filter((a) => 'status' in a && [500, 502, 503, 504].includes(a.status))).toHaveLength(counts.fail5xx)
    expect(erp.salesOrders().length).toBe(before)
  })

  it('times out before the commit (nothing written) or after it (written, answer lost)', async () => {
    erp.faults.chaos({ timeout: 1, afterCommitShare: 0.5, dropShare: 0.5, hangMs: 300, seed: 2 })
    const before = erp.salesOrders().length
    const answers = await Promise.all(Array.from({ length: 40 }, () => create(150)))
    expect(answers.every((a) => 'error' in a)).toBe(true)
    // Let the held requests run out, so every fate has played.
    await new Promise((r) => setTimeout(r, 400))
    const counts = erp.faults.injected()
    expect(counts.hangBeforeCommit + counts.hangAfterCommit + counts.dropAfterCommit).toBe(40)
    expect(counts.hangBeforeCommit).toBeGreaterThan(5)
    expect(counts.hangAfterCommit).toBeGreaterThan(2)
    expect(counts.dropAfterCommit).toBeGreaterThan(2)
    expect(erp.salesOrders().length - before).toBe(counts.hangAfterCommit + counts.dropAfterCommit)
  })

  it('injects about the shares it was given, and the same seed gives the same sequence', async () => {
    const run = async () => {
      erp.faults.chaos({ fail5xx: 0.2, tooMany: 0.1, seed: 42 })
      const statuses: number[] = []
      // One at a time, so arrival order is fixed and the fates line up with the requests.
      for (let i = 0; i < 300; i++) {
        const answer = await create()
        statuses.push('status' in answer ? answer.status : 0)
      }
      return { statuses, counts: erp.faults.injected() }
    }
    const first = await run()
    const second = await run()
    expect(second.statuses).toEqual(first.statuses)
    expect(first.counts.fail5xx / 300).toBeGreaterThan(0.12)
    expect(first.counts.fail5xx / 300).toBeLessThan(0.28)
    expect(first.counts.tooMany / 300).toBeGreaterThan(0.04)
    expect(first.counts.tooMany / 300).toBeLessThan(0.16)
  })

  it('leaves /health alone and stops when reset', async () => {
    erp.faults.chaos({ fail5xx: 1, seed: 3 })
    expect((await fetch(`${erp.url}/health`)).status).toBe(200)
    erp.faults.reset()
    expect(await create()).toMatchObject({ status: 201 })
    expect(erp.faults.injected().requests).toBe(0)
    expect(() => erp.faults.chaos({ fail5xx: 0.7, timeout: 0.5, seed: 4 })).toThrow(/more than 1/)
  })
})
