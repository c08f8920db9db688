/**
 * A real deployment for the chaos test, as an operator runs one: a private redis-server (so FLUSHALL
 * touches nothing else), one `orderbridge api` and worker processes started from bin/orderbridge.mjs
 * with a connections file, each logging to its own file. Processes can be SIGKILLed and replaced.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import { Redis } from 'ioredis'
import { nodeFlags } from '../../src/shared/node-flags.ts'

export const root = new URL('../../', import.meta.url).pathname
const bin = path.join(root, 'bin/orderbridge.mjs')
// The Node 24 that npm installed: the system node may be older.
const node = path.join(root, 'node_modules/.bin/node')

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Polls `probe` (its errors count as "not yet") until it gives a value; `giveUp` ends the wait early with its reason. */
export async function waitUntil<T>(
  probe: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs: number,
  options: { everyMs?: number; giveUp?: () => string | undefined } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  const everyMs = options.everyMs ?? 100
  for (;;) {
    const reason = options.giveUp?.()
    if (reason) throw new Error(`gave up waiting for ${what}: ${reason}`)
    const value = await probe().catch(() => undefined)
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

export interface ManagedProcess {
  name: string
  logFile: string
  child: ChildProcess
  exited: Promise<number | null>
  /** Exit code, or the signal's name, once it has exited. */
  exit?: string
}

function startLogged(name: string, command: string, args: string[], options: { env: NodeJS.ProcessEnv; logFile: string }): ManagedProcess {
  const fd = openSync(options.logFile, 'a')
  const child = spawn(command, args, { cwd: root, env: options.env, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const managed: ManagedProcess = {
    name,
    logFile: options.logFile,
    child,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        managed.exit = signal ?? String(code)
        resolve(code)
      })
      child.once('error', () => resolve(null))
    }),
  }
  return managed
}

/** The last `lines` lines of a log file, each cut to `width` characters, for a failure report. */
export function tail(file: string, lines = 40, width = 1000): string {
  if (!existsSync(file)) return '(no log)'
  return readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((line) => (line.length > width ? `${line.slice(0, width)}…` : line))
    .join('\n')
}

/** Stops a process: SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
export async function stopProcess(p: ManagedProcess, graceMs = 15_000): Promise<void> {
  if (p.exit !== undefined) return
  p.child.kill('SIGTERM')
  const stopped = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)])
  if (!stopped) {
    p.child.kill('SIGKILL')
    await p.exited
  }
}

export interface PrivateRedis {
  url: string
  client: Redis
  process: ManagedProcess
  stop(): Promise<void>
}

export async function startPrivateRedis(logDir: string): Promise<PrivateRedis> {
  const port = await freePort()
  const process_ = startLogged('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    env: process.env,
    logFile: path.join(logDir, 'redis.log'),
  })
  const url = `redis://127.0.0.1:${port}`
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 })
  client.on('error', () => {})
  await waitUntil(async () => (await client.ping()) === 'PONG', `redis-server on port ${port}`, 10_000)
  return {
    url,
    client,
    process: process_,
    async stop() {
      client.disconnect()
      await stopProcess(process_, 5_000)
    },
  }
}

export interface Deployment {
  apiUrl: string
  api: ManagedProcess
  /** Workers currently running, oldest first. */
  workers: ManagedProcess[]
  /** Every process ever started, for the logs. */
  all: ManagedProcess[]
  startWorker(): Promise<ManagedProcess>
  /** SIGKILLs the oldest running worker and waits until it is gone. */
  killOldestWorker(): Promise<ManagedProcess>
  stop(): Promise<void>
}

export async function startDeployment(options: { env: Record<string, string>; logDir: string; workers: number; readyTimeoutMs?: number }): Promise<Deployment> {
  const port = await freePort()
  const env = { ...process.env, ...options.env, PORT: String(port), HOST: '127.0.0.1' }
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000
  let workerCount = 0
  const all: ManagedProcess[] = []

  const startProcess = (mode: 'api' | 'worker', name: string) => {
    const p = startLogged(name, node, [...nodeFlags, bin, mode], { env, logFile: path.join(options.logDir, `${name}.log`) })
    all.push(p)
    return p
  }
  const exitedEarly = (p: ManagedProcess) => () => (p.exit !== undefined ? `${p.name} exited (${p.exit}):\n${tail(p.logFile)}` : undefined)
  const started = async (p: ManagedProcess, banner: RegExp) => {
    await waitUntil(async () => banner.test(readFileSync(p.logFile, 'utf8')), `${p.name} to start`, readyTimeoutMs, { giveUp: exitedEarly(p) })
    return p
  }

  const deployment: Deployment = {
    apiUrl: `http://127.0.0.1:${port}`,
    api: startProcess('api', 'api'),
    workers: [],
    all,
    async startWorker() {
      workerCount += 1
      const worker = startProcess('worker', `worker-${workerCount}`)
      deployment.workers.push(worker)
      return started(worker, /orderbridge worker mode/)
    },
    async killOldestWorker() {
      const victim = deployment.workers.shift()
      if (!victim) throw new Error('no worker to kill')
      victim.child.kill('SIGKILL')
      await victim.exited
      return victim
    },
    async stop() {
      // The API first, so nothing new arrives; then the workers drain.
      await stopProcess(deployment.api)
      await Promise.all(deployment.workers.map((w) => stopProcess(w)))
    },
  }
  try {
    // Workers and API migrate the same schema at once; migrate() serialises them with an advisory lock.
    await Promise.all(Array.from({ length: options.workers }, () => deployment.startWorker()))
    await waitUntil(
      async () => {
        const response = await fetch(`${deployment.apiUrl}/readyz`)
        return response.status === 200 && ((await response.json()) as { status: string }).status === 'ready'
      },
      'the API to be ready (/readyz)',
      readyTimeoutMs,
      { giveUp: exitedEarly(deployment.api) },
    )
  } catch (err) {
    await Promise.all(all.map((p) => stopProcess(p, 2_000)))
    throw err
  }
  return deployment
}
