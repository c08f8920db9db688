/**
 * `orderbridge demo send`: pushes sample orders through the demo CRM's webhook sender to a
 * running orderbridge and follows the change feed, showing how many orders are in each state,
 * until every one has reached the ERP (or, with `--until completed`, has been shipped, delivered
 * and paid) or has failed.
 */
import { randomBytes } from 'node:crypto'
import { createDemoCrmSender, sampleOrder } from '../../connectors/demo-crm/sender.ts'
import type { Env } from '../config.ts'
import { readStoredCredentials } from '../demo/demo-credentials.ts'

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
  elapsedMs: number
}

/** States in which the ERP holds the order. */
const inErp = new Set(['pending_shipment', 'shipped', 'delivered', 'completed'])
const final = new Set(['completed', 'rejected', 'cancelled'])

export async function runDemoSend(env: Env, options: DemoSendOptions): Promise<DemoSendSummary> {
  const stored = readStoredCredentials(env.ORDERBRIDGE_DATA_DIR)
  const adminKey = env.ORDERBRIDGE_ADMIN_KEY ?? stored?.adminKey
  const secret = env.ORDERBRIDGE_DEMO_WEBHOOK_SECRET ?? stored?.demoWebhookSecret
  if (!adminKey || !secret) throw new Error(`no credentials: set ORDERBRIDGE_ADMIN_KEY and ORDERBRIDGE_DEMO_WEBHOOK_SECRET, or run from the folder whose ${env.ORDERBRIDGE_DATA_DIR} the server uses`)
  const api = async (path: string) => {
    const response = await fetch(`${options.url}/api/v1${path}`, { headers: { authorization: `Bearer ${adminKey}` } })
    if (!response.ok) throw new Error(`GET ${path} answered ${response.status}: ${await response.text()}`)
    return response.json() as Promise<{ changes: { type: string; orderId: string | null; data: Record<string, unknown> }[]; next: number; head: number }>
  }

  const started = Date.now()
  let cursor = (await api('/changes?limit=1')).head
  const sender = createDemoCrmSender({ webhookUrl: `${options.url}/webhooks/demo-crm`, secret })
  const run = randomBytes(3).toString('hex')
  const externalIds = new Set<string>()
  let rejected = 0
  let next = 0
  await Promise.all(
    Array.from({ length: Math.max(1, options.concurrency) }, async () => {
      while (next < options.orders) {
        const n = next++
        const order = sampleOrder(n, `SO-${run}-${n + 1}`)
        const answer = await sender.send('order.created', order)
        if (answer.status === 202 || answer.status === 200) externalIds.add(order.order_id)
        else rejected++
      }
    }),
  )
  options.progress(`sent ${externalIds.size} orders (${rejected} rejected) in ${Date.now() - started} ms; following them until ${options.until === 'completed' ? 'they are delivered and paid' : 'the ERP has them'}`)

  // Follow the feed: order.created tells which order ids are ours, state changes and failures settle them.
  const ours = new Set<string>()
  const state = new Map<string, string>()
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
  const summary = { sent: externalIds.size, rejected, synced, failed: failed.size, states: counts(), elapsedMs: Date.now() - started }
  options.progress(`sent ${summary.sent}, synced ${summary.synced}, failed ${summary.failed}, rejected ${summary.rejected}, elapsed ${(summary.elapsedMs / 1000).toFixed(1)} s`)
  options.progress(`states: ${show(summary.states)}`)
  return summary
}
