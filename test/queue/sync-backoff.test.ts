/**
 * A connection allowed many tries keeps trying at its backoff ceiling (`retry.maxBackoffMs`) instead
 * of doubling into hours: the sync queues' job options and the sync workers' strategy, on real Redis.
 */
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, expect, it } from 'vitest'
import { cappedBackoff, syncJobOptions } from '../../src/queue/queues.ts'
import { uniqueName } from '../support/test-database.ts'
import { deleteQueueKeys, redisUrl } from '../support/test-redis.ts'

const prefix = uniqueName('backoff')
const redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
afterAll(async () => {
  redis.disconnect()
  await deleteQueueKeys(prefix)
})

it('doubles the first delay with each try, with jitter, and never waits longer than the ceiling', () => {
  const delays = (attempt: number) => Array.from({ length: 200 }, () => cappedBackoff({ attempts: 30, backoffMs: 1_000, maxBackoffMs: 60_000 })(attempt))
  expect(Math.min(...delays(1))).toBeGreaterThanOrEqual(500)
  expect(Math.max(...delays(1))).toBeLessThanOrEqual(1_000)
  expect(Math.min(...delays(4))).toBeGreaterThanOrEqual(4_000)
  expect(Math.max(...delays(4))).toBeLessThanOrEqual(8_000)
  // Uncapped, the 25th try would wait 2^24 s, about half a year.
  expect(Math.min(...delays(25))).toBeGreaterThanOrEqual(30_000)
  expect(Math.max(...delays(25))).toBeLessThanOrEqual(60_000)
})

it('is what a sync queue’s failing job waits between its tries', async () => {
  const retry = { attempts: 7, backoffMs: 100, maxBackoffMs: 100 }
  const queue = new Queue('sync-capped', { connection: redis, prefix: `{${prefix}}`, defaultJobOptions: syncJobOptions(retry) })
  const tries: number[] = []
  const failedForGood = new Promise<void>((resolve) => {
    const worker = new Worker(
      'sync-capped',
      async () => {
        tries.push(Date.now())
        throw new Error('the ERP is down')
      },
      { connection: redis.duplicate(), prefix: `{${prefix}}`, settings: { backoffStrategy: cappedBackoff(retry) } },
    )
    worker.on('failed', (job) => {
      if (job && job.attemptsMade >= retry.attempts) void worker.close().then(() => resolve())
    })
  })
  await queue.add('salesOrders.upsert', {})
  await failedForGood
  await queue.close()
  expect(tries).toHaveLength(7)
  // BullMQ's own exponential backoff would wait 3.2 s (at least 1.6 s with jitter) before the 7th try.
  const gaps = tries.slice(1).map((t, i) => t - tries[i]!)
  expect(Math.max(...gaps)).toBeLessThan(1_200)
})
