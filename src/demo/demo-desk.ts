/**
 * The running demo's order desk. The CRM simulators live in the demo's process, while
 * `orderbridge demo send` is another process: the desk is the loopback HTTP endpoint through which it
 * asks the chosen CRM to create sample orders and deliver them in the CRM's own format, and
 * `demo-run.json` in the data folder says where the desk is and which CRM it serves. The desk only
 * calls the CRM's table entry (demo-choices.ts); it never talks to orderbridge itself.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import Fastify from 'fastify'
import { z } from 'zod'
import { crmChoiceIds, type DemoCrm, type DeliveredOrder, type DemoOrderRequest } from './demo-choices.ts'

/** What `demo-run.json` holds while a demo started with choices runs (mode 0600: it holds the desk's token). */
export const demoRunSchema = z.object({
  /** orderbridge's URL. */
  api: z.string(),
  crm: z.enum(crmChoiceIds),
  /** The CRM's connection id, which its orders arrive on. */
  connection: z.string(),
  desk: z.string(),
  token: z.string(),
})
export type DemoRun = z.infer<typeof demoRunSchema>

export const demoRunFile = (dataDir: string) => path.resolve(dataDir, 'demo-run.json')

export function writeDemoRun(dataDir: string, run: DemoRun): void {
  mkdirSync(dataDir, { recursive: true })
  writeFileSync(demoRunFile(dataDir), JSON.stringify(run, null, 2), { mode: 0o600 })
}

/** The demo recorded in the data folder, or undefined (none, or unreadable). */
export function readDemoRun(dataDir: string): DemoRun | undefined {
  const file = demoRunFile(dataDir)
  if (!existsSync(file)) return undefined
  try {
    return demoRunSchema.parse(JSON.parse(readFileSync(file, 'utf8')))
  } catch {
    return undefined
  }
}

/** Removes the record, unless another demo has written its own since. */
export function removeDemoRun(dataDir: string, token: string): void {
  if (readDemoRun(dataDir)?.token === token) rmSync(demoRunFile(dataDir), { force: true })
}

/** At most this many orders per request: one Salesforce outbound message holds 100 notifications. */
export const deskBatchLimit = 100

const deliverBodySchema = z.object({
  orders: z
    .array(z.object({ n: z.number().int().min(0), name: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/) }))
    .min(1)
    .max(deskBatchLimit),
})

const digest = (value: string) => createHash('sha256').update(value).digest()

/** Starts the desk on loopback for `crm`, with a fresh bearer token. */
export async function startDemoDesk(crm: DemoCrm): Promise<{ url: string; token: string; close(): Promise<void> }> {
  const token = randomBytes(24).toString('base64url')
  const expected = digest(`Bearer ${token}`)
  const app = Fastify({ logger: false, forceCloseConnections: true })
  app.addHook('onRequest', async (request, reply) => {
    if (!timingSafeEqual(digest(request.headers.authorization ?? ''), expected)) return reply.code(401).send({ error: { code: 'unauthorized', message: 'missing or wrong desk token' } })
  })
  app.get('/', async () => ({ connection: crm.connection.id }))
  app.post('/orders', async (request, reply) => {
    const body = deliverBodySchema.safeParse(request.body)
    if (!body.success) return reply.code(422).send({ error: { code: 'validation', message: 'expected {orders: [{n, name}]}, 1 to 100 of them' } })
    return { orders: await crm.deliver(body.data.orders) }
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { url, token, close: () => app.close() }
}

/** The desk of a recorded demo, as `demo send` uses it. */
export function demoDeskClient(run: DemoRun) {
  const headers = { authorization: `Bearer ${run.token}` }
  return {
    /** Whether the desk answers (a demo killed without cleaning up leaves its file behind). */
    async answers(): Promise<boolean> {
      try {
        return (await fetch(run.desk, { headers, signal: AbortSignal.timeout(2_000) })).ok
      } catch {
        return false
      }
    },
    async deliver(orders: readonly DemoOrderRequest[]): Promise<DeliveredOrder[]> {
      const response = await fetch(`${run.desk}/orders`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ orders }) })
      if (!response.ok) throw new Error(`the demo's order desk answered ${response.status}: ${await response.text()}`)
      return ((await response.json()) as { orders: DeliveredOrder[] }).orders
    },
  }
}
