import { mkdtempSync, existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { locateRedis } from '../../src/queue/redis-bootstrap.ts'
import { redisUrl } from '../support/test-redis.ts'

const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-redis-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))
const nobodyListens = 'redis://127.0.0.1:1'

describe('finding a Redis for the queues', () => {
  it('uses the Redis that answers', async () => {
    expect(await locateRedis({ url: redisUrl, allowPrivate: true, dataDir })).toEqual({ url: redisUrl })
  })

  it('starts a private, persistent redis-server when nothing answers on the default address', async () => {
    const handle = await locateRedis({ allowPrivate: true, dataDir, defaultUrl: nobodyListens })
    try {
      expect(handle.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/)
      const client = new Redis(handle.url)
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes'])
      client.disconnect()
      expect(existsSync(path.join(dataDir, 'redis'))).toBe(true)
    } finally {
      await handle.stop?.()
    }
  })

  it('says what to do, in one line, when an explicit REDIS_URL does not answer', async () => {
    await expect(locateRedis({ url: nobodyListens, allowPrivate: true, dataDir })).rejects.toThrow(
      'no Redis answers at redis://127.0.0.1:1: start it or set REDIS_URL to a reachable Redis',
    )
  })

  it('does not start a private Redis outside the single-process mode', async () => {
    await expect(locateRedis({ allowPrivate: false, dataDir, defaultUrl: nobodyListens })).rejects.toThrow(/no Redis answers/)
  })
})
