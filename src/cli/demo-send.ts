/**
 * `orderbridge demo send`: pushes sample orders through the demo CRM's webhook sender to a
 * running orderbridge and follows the change feed until every one is synced or has failed.
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
  progress: (line: string) => void
}

export interface DemoSendSummary {
  sent: number
  rejected: number
  synced: number
  failed: number
  elapsedMs: number
}

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
  options.progress(`sent ${externalIds.size} orders (${rejected} rejected) in ${Date.now() - started} ms; waiting for sync`)

  // Follow the feed: order.created tells which order ids are ours, sync results settle them.
  const ours = new Set<string>()
  const synced = new Set<string>()
  const failed = new Set<string>()
  let lastReport = 0
  while (synced.size + failed.size < externalIds.size && Date.now() - started < options.timeoutMs) {
    const page = await api(`/changes?after=${cursor}&limit=1000`)
    for (const change of page.changes) {
      if (change.type === 'order.created' && externalIds.has(String(change.data.externalId))) ours.add(change.orderId!)
      if (change.type === 'event.needs_attention' && externalIds.has(String(change.data.externalId))) failed.add(String(change.data.externalId))
      if (!change.orderId || !ours.has(change.orderId)) continue
      if (change.type === 'sync.succeeded') synced.add(change.orderId)
      if (change.type === 'sync.failed' && change.data.status !== 'retrying') failed.add(change.orderId)
    }
    cursor = page.next
    if (Date.now() - lastReport > 1_000) {
      options.progress(`synced ${synced.size}/${externalIds.size}, failed ${failed.size}`)
      lastReport = Date.now()
    }
    if (!page.changes.length) await new Promise((r) => setTimeout(r, 200))
  }
  const summary = { sent: externalIds.size, rejected, synced: synced.size, failed: failed.size, elapsedMs: Date.now() - started }
  options.progress(`sent ${summary.sent}, synced ${summary.synced}, failed ${summary.failed}, rejected ${summary.rejected}, elapsed ${(summary.elapsedMs / 1000).toFixed(1)} s`)
  return summary
}
