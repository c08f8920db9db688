/**
 * Finds the Redis the queues use. In the single-process mode with no REDIS_URL, when nothing
 * answers on the default address and `redis-server` is installed, it starts a private one that
 * persists under the data folder (append-only), so a laptop needs nothing running beforehand.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from '../shared/free-port.ts'

export const defaultRedisUrl = 'redis://127.0.0.1:6379'

export class RedisUnavailable extends Error {}

async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

export interface RedisHandle {
  url: string
  /** Set when orderbridge started its own Redis; stopped on shutdown. */
  stop?: () => Promise<void>
}

export async function locateRedis(options: { url?: string; allowPrivate: boolean; dataDir: string; defaultUrl?: string }): Promise<RedisHandle> {
  const url = options.url ?? options.defaultUrl ?? defaultRedisUrl
  if (await answers(url)) return { url }
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
  if (options.url || !options.allowPrivate || !installed) {
    throw new RedisUnavailable(
      `no Redis answers at ${url}: ${installed ? 'start it' : 'install redis-server (Debian/Ubuntu: apt-get install redis-server)'} or set REDIS_URL to a reachable Redis`,
    )
  }
  const dir = path.resolve(options.dataDir, 'redis')
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''], { stdio: 'ignore' })
  const privateUrl = `redis://127.0.0.1:${port}`
  for (let i = 0; i < 50 && !(await answers(privateUrl)); i++) await new Promise((r) => setTimeout(r, 100))
  const stop = () => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
  if (!(await answers(privateUrl))) {
    await stop()
    throw new RedisUnavailable(`started redis-server on port ${port} but it does not answer; set REDIS_URL instead`)
  }
  return { url: privateUrl, stop }
}
