/**
 * The server under test of bench/ingest.bench.ts, run as its own process so that the load
 * generator and the server do not share an event loop. `bare`: a Fastify route that answers 202
 * and nothing else. `orderbridge`: the real API mode (verify, parse, validate, commit to the inbox,
 * enqueue), configured from the environment the bench passes in. Workers are not started.
 *
 * Talks to the bench over IPC only: sends `ready` (with the URL), and on `close` (or when the
 * bench goes away) shuts down gracefully and exits, so every accepted write has finished before
 * the bench counts rows.
 */
import Fastify from 'fastify'
import { loadEnv } from '../src/config.ts'
import { demoConfig } from '../src/demo/demo-environment.ts'
import { startOrderbridge } from '../src/server.ts'

export type TargetKind = 'bare' | 'orderbridge'

export type TargetMessage = { type: 'ready'; url: string }

export type BenchCommand = { type: 'close' }

// The path orderbridge serves for the demo CRM connection; the bare route mimics it.
const webhookPath = '/webhooks/demo-crm'

async function startBare(): Promise<{ url: string; close(): Promise<void> }> {
  // Fastify's default JSON parser stays on: the bare route reads the body as any route would.
  const app = Fastify({ logger: false })
  app.post(webhookPath, async (_req, reply) => reply.code(202).send({ status: 'accepted' }))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => app.close() }
}

async function startApi(): Promise<{ url: string; close(): Promise<void> }> {
  const env = loadEnv(process.env)
  if (!env.DATABASE_URL || !env.ORDERBRIDGE_ADMIN_KEY || !env.ORDERBRIDGE_DEMO_WEBHOOK_SECRET) {
    throw new Error('the orderbridge target needs DATABASE_URL, ORDERBRIDGE_ADMIN_KEY and ORDERBRIDGE_DEMO_WEBHOOK_SECRET')
  }
  // The API mode never calls the ERP or the WMS, so their URLs only have to be valid.
  const unused = 'http://127.0.0.1:9'
  const config = demoConfig(
    { adminKey: env.ORDERBRIDGE_ADMIN_KEY, demoWebhookSecret: env.ORDERBRIDGE_DEMO_WEBHOOK_SECRET, demoErpToken: 'bench-unused', demoWmsToken: 'bench-unused' },
    { erpUrl: unused, wmsUrl: unused },
  )
  const running = await startOrderbridge({ mode: 'api', env, config })
  if (!running.url) throw new Error('orderbridge started without an HTTP address')
  return { url: running.url, close: () => running.close() }
}

async function main(): Promise<void> {
  const kind = process.argv[2]
  if (kind !== 'bare' && kind !== 'orderbridge') throw new Error(`usage: ingest-target.ts bare|orderbridge (got ${kind})`)
  if (!process.send) throw new Error('ingest-target.ts runs as a child of bench/ingest.bench.ts (it needs the IPC channel)')
  const send = (message: TargetMessage) => process.send!(message)

  const target = kind === 'bare' ? await startBare() : await startApi()
  let closing: Promise<void> | undefined
  const close = () => {
    // Exits explicitly once closed: a lingering handle must not keep the bench waiting.
    closing ??= target.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('ingest-target: close failed', err)
        process.exit(1)
      },
    )
    return closing
  }
  process.on('message', (command: BenchCommand) => {
    if (command.type === 'close') void close()
  })
  // If the bench dies, do not outlive it.
  process.on('disconnect', () => void close())
  send({ type: 'ready', url: target.url })
}

main().catch((err: unknown) => {
  console.error('ingest-target failed:', err)
  process.exit(1)
})
