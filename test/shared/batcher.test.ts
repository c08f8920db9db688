/**
 * The batcher behind the sync steps' shared statements and transactions (src/shared/batcher.ts).
 */
import { expect, it } from 'vitest'
import { batcherPer, createBatcher } from '../../src/shared/batcher.ts'

it('runs calls made together as one batch, and a lone call at once', async () => {
  const batches: number[][] = []
  const double = createBatcher(async (items: number[]) => (batches.push(items), items.map((n) => n * 2)), { maxBatch: 10, maxInFlight: 1 })
  expect(await Promise.all([1, 2, 3].map(double))).toEqual([2, 4, 6])
  expect(await double(4)).toBe(8)
  expect(batches).toEqual([[1, 2, 3], [4]])
})

it('gathers the calls made while a batch runs into the next, up to maxBatch', async () => {
  const batches: number[][] = []
  let release!: () => void
  const first = new Promise<void>((r) => (release = r))
  const echo = createBatcher(
    async (items: number[]) => {
      batches.push(items)
      if (items[0] === 0) await first
      return items
    },
    { maxBatch: 3, maxInFlight: 1 },
  )
  const all = [echo(0)]
  await new Promise((r) => setImmediate(r))
  all.push(...[1, 2, 3, 4].map(echo))
  release()
  expect(await Promise.all(all)).toEqual([0, 1, 2, 3, 4])
  expect(batches).toEqual([[0], [1, 2, 3], [4]])
})

it('keeps items with the same key in different batches', async () => {
  const batches: string[][] = []
  const echo = createBatcher(async (items: string[]) => (batches.push(items), items), { maxBatch: 10, maxInFlight: 1, keyOf: (s) => s[0]! })
  await Promise.all(['a1', 'b1', 'a2', 'c1', 'a3'].map(echo))
  expect(batches).toEqual([['a1', 'b1', 'c1'], ['a2'], ['a3']])
})

it('runs the items of a failed batch one by one, so only the failing one fails', async () => {
  const batches: number[][] = []
  const check = createBatcher(
    async (items: number[]) => {
      batches.push(items)
      if (items.includes(2)) throw new Error(`2 is refused`)
      return items
    },
    { maxBatch: 10, maxInFlight: 1 },
  )
  const results = await Promise.allSettled([1, 2, 3].map(check))
  expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([1, '2 is refused', 3])
  expect(batches).toEqual([[1, 2, 3], [1], [2], [3]])
})

it('makes one batcher per owner, so calls for different owners never share a batch', async () => {
  const batches: string[][] = []
  const forOwner = batcherPer((owner: { name: string }) => createBatcher(async (items: string[]) => (batches.push(items.map((i) => `${owner.name}:${i}`)), items), { maxBatch: 10, maxInFlight: 1 }))
  const a = { name: 'a' }
  const b = { name: 'b' }
  expect(forOwner(a)).toBe(forOwner(a))
  await Promise.all([forOwner(a)('1'), forOwner(b)('2'), forOwner(a)('3')])
  expect(batches.sort()).toEqual([['a:1', 'a:3'], ['b:2']])
})
