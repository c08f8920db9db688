/**
 * `orderbridge demo send`: pushes sample orders to a running orderbridge and follows the change
 * feed, showing how many orders are in each state, until every one has reached the ERP (or, with
 * `--until completed`, has been shipped, delivered and paid) or has failed. At the end it says how
 * many orders passed through each state (approval, reservation, shipment, payment), however briefly. The orders go in through
 * the CRM the demo runs with: when the data folder records a demo started with `--crm` (demo-run.json)
 * and its order desk answers, that CRM creates and delivers them in its own format; otherwise the demo
 * CRM's webhook sender signs and posts them here.
 */
import { randomBytes } from 'node:crypto'
import { createDemoCrmSender } from '../../connectors/demo-crm/sender.ts'
import type { Env } from '../config.ts'
import { deliverDemoCrmOrders, type DeliveredOrder, type DemoOrderRequest } from '../demo/demo-choices.ts'
import { readStoredCredentials } from '../demo/demo-credentials.ts'
import { demoDeskClient, readDemoRun } from '../demo/demo-desk.ts'
import { orderStates, type OrderState } from '../orders/order-state.ts'

export interface DemoSendOptions {
  orders: number
  url: string
  concurrency: number
  timeoutMs: number
  /** `synced`: until the ERP holds every order; `completed`: until every order is delivered and paid. */
  until: 'synced' | 'completed'
  progress: (line: string) => void
}

export interface DemoSendSummary {
  sent: number
  rejected: number
  synced: number
  failed: number
  /** How many of the orders ended in each state. */
  states: Record<string, number>
  /** How many of the orders entered each state on their way (order states, then payment states). */
  passedThrough: Record<string, number>
  elapsedMs: number
}

/** States in which the ERP holds the order. */
const inErp = new Set(['pending_shipment', 'shipped', 'delivered', 'completed'])
const final = new Set(['completed', 'rejected', 'cancelled'])

/** Order states as the lifecycle lists them, then payment states as they were first seen. */
function inLifecycleOrder(counts: Record<string, number>): Record<string, number> {
  const rank = (s: string) => (orderStates.includes(s as OrderState) ? orderStates.indexOf(s as OrderState) : orderStates.length)
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => rank(a) - rank(b)))
}

/** How the orders get in: a CRM that creates and delivers them, a batch at a time. */
interface OrderSource {
  describe: string
  batchSize: number
  deliver(orders: readonly DemoOrderRequest[]): Promise<DeliveredOrder[]>
}

const loopback = new Set(['127.0.0.1', 'localhost', '[::1]', '0.0.0.0'])
function sameServer(a: string, b: string): boolean {
  const [x, y] = [new URL(a), new URL(b)]
  return x.port === y.port && (x.hostname === y.hostname || (loopback.has(x.hostname) && loopback.has(y.hostname)))
}

async function orderSource(env: Env, options: DemoSendOptions): Promise<OrderSource> {
  const run = readDemoRun(env.ORDERBRIDGE_DATA_DIR)
  if (run && sameServer(run.api, options.url)) {
    const desk = demoDeskClient(run)
    if (await desk.answers()) return { describe: `the ${run.crm} CRM (connection ${run.connection})`, batchSize: 20, deliver: (orders) => desk.deliver(orders) }
    options.progress(`the demo recorded in ${env.ORDERBRIDGE_DATA_DIR}/demo-run.json is not running; sending through the demo CRM's webhook`)
  }
  const secret = env.ORDERBRIDGE_DEMO_WEBHOOK_SECRET ?? readStoredCredentials(env.ORDERBRIDGE_DATA_DIR)?.demoWebhookSecret
  if (!secret) throw new Error(`no credentials: set ORDERBRIDGE_ADMIN_KEY and ORDERBRIDGE_DEMO_WEBHOOK_SECRET, or run from the folder whose ${env.ORDERBRIDGE_DATA_DIR} the server uses`)
  const sender = createDemoCrmSender({ webhookUrl: `${options.url}/webhooks/demo-crm`, secret })
  return { describe: 'the demo CRM', batchSize: 1, deliver: (orders) => deliverDemoCrmOrders(sender, orders) }
}

export async function runDemoSend(env: Env, options: DemoSendOptions): Promise<DemoSendSummary> {
  const adminKey = env.ORDERBRIDGE_ADMIN_KEY ?? readStoredCredentials(env.ORDERBRIDGE_DATA_DIR)?.adminKey
  if (!adminKey) throw new Error(`no credentials: set ORDERBRIDGE_ADMIN_KEY and ORDERBRIDGE_DEMO_WEBHOOK_SECRET, or run from the folder whose ${env.ORDERBRIDGE_DATA_DIR} the server uses`)
  const api = async (path: string) => {
    const response = await fetch(`${options.url}/api/v1${path}`, { headers: { authorization: `Bearer ${adminKey}` } })
    if (!response.ok) throw new Error(`GET ${path} answered ${response.status}: ${await response.text()}`)
    return response.json() as Promise<{ changes: { type: string; orderId: string | null; data: Record<string, unknown> }[]; next: number; head: number }>
  }

  const started = Date.now()
  let cursor = (await api('/changes?limit=1')).head
  const source = await orderSource(env, options)
  const run = randomBytes(3).toString('hex')
  const externalIds = new Set<string>()
  let rejected = 0
  let next = 0
  await Promise.all(
    Array.from({ length: Math.max(1, options.concurrency) }, async () => {
      while (next < options.orders) {
        const batch: DemoOrderRequest[] = []
        while (batch.length < source.batchSize && next < options.orders) {
          const n = next++
          batch.push({ n, name: `SO-${run}-${n + 1}` })
        }
        for (const delivered of await source.deliver(batch)) {
          if (delivered.accepted) externalIds.add(delivered.externalId)
          else rejected++
        }
      }
    }),
  )
  options.progress(`sent ${externalIds.size} orders through ${source.describe} (${rejected} rejected) in ${Date.now() - started} ms; following them until ${options.until === 'completed' ? 'they are delivered and paid' : 'the ERP has them'}`)

  // Follow the feed: order.created tells which order ids are ours, state changes and failures settle them.
  const ours = new Set<string>()
  const state = new Map<string, string>()
  const passedThrough: Record<string, number> = {}
  const failed = new Set<string>()
  const settled = (id: string) => failed.has(id) || (options.until === 'completed' ? final.has(state.get(id) ?? '') : inErp.has(state.get(id) ?? '') || final.has(state.get(id) ?? ''))
  const settledCount = () => [...ours].filter(settled).length + [...failed].filter((id) => !ours.has(id)).length
  const counts = () => {
    const byState: Record<string, number> = {}
    for (const id of ours) byState[state.get(id) ?? 'received'] = (byState[state.get(id) ?? 'received'] ?? 0) + 1
    return byState
  }
  const show = (byState: Record<string, number>) => Object.entries(byState).map(([s, n]) => `${s} ${n}`).join(', ')
  let lastReport = 0
  while (settledCount() < externalIds.size && Date.now() - started < options.timeoutMs) {
    const page = await api(`/changes?after=${cursor}&limit=1000`)
    for (const change of page.changes) {
      if (change.type === 'order.created' && externalIds.has(String(change.data.externalId))) ours.add(change.orderId!)
      if (change.type === 'event.needs_attention' && externalIds.has(String(change.data.externalId))) failed.add(String(change.data.externalId))
      if (!change.orderId || !ours.has(change.orderId)) continue
      if (change.type === 'order.state_changed') state.set(change.orderId, String(change.data.to))
      if (change.type === 'order.state_changed' || change.type === 'order.payment_state_changed') {
        const to = change.type === 'order.state_changed' ? String(change.data.to) : `payment ${String(change.data.to)}`
        passedThrough[to] = (passedThrough[to] ?? 0) + 1
      }
      if (change.type === 'sync.failed' && change.data.status !== 'retrying') failed.add(change.orderId)
    }
    cursor = page.next
    if (Date.now() - lastReport > 1_000) {
      options.progress(`${show(counts())}${failed.size ? `; failed ${failed.size}` : ''}`)
      lastReport = Date.now()
    }
    if (!page.changes.length) await new Promise((r) => setTimeout(r, 200))
  }
  const synced = [...ours].filter((id) => inErp.has(state.get(id) ?? '')).length
  const summary = { sent: externalIds.size, rejected, synced, failed: failed.size, states: counts(), passedThrough: inLifecycleOrder(passedThrough), elapsedMs: Date.now() - started }
  options.progress(`sent ${summary.sent}, synced ${summary.synced}, failed ${summary.failed}, rejected ${summary.rejected}, elapsed ${(summary.elapsedMs / 1000).toFixed(1)} s`)
  options.progress(`passed through: ${show(summary.passedThrough)}`)
  options.progress(`states: ${show(summary.states)}`)
  return summary
}
