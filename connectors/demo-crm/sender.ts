/**
 * The demo CRM's sending side: builds sample orders and delivers them (and approval decisions) as
 * signed Standard Webhooks (or with HubSpot's v3 signature) over real HTTP, retrying like a CRM
 * would. Used by `orderbridge demo send`, the CRM simulator and tests.
 */
import { randomUUID } from 'node:crypto'
import { signHubSpotV3, signStandardWebhook } from '../../src/connector-kit/index.ts'
import type { DemoCrmApproval, DemoCrmOrder, DemoCrmWebhook } from './index.ts'

export interface DeliveryResult {
  status: number
  body: unknown
}

const customers = [
  { id: 'ACC-7', name: 'Hangzhou Yuntu Trading' },
  { id: 'ACC-12', name: 'Shenzhen Lanhai Electronics' },
  { id: 'ACC-31', name: 'Chengdu Xingyao Foods' },
]

/** A deterministic sample order: the same `n` always gives the same document. */
export function sampleOrder(n: number, orderId = `SO-${1000 + n}`): DemoCrmOrder {
  const lineCount = 1 + (n % 3)
  return {
    order_id: orderId,
    version: 1,
    account: customers[n % customers.length]!,
    currency: 'CNY',
    items: Array.from({ length: lineCount }, (_, i) => ({
      product_code: `SKU-${100 + ((n + i) % 10)}`,
      qty: 1 + ((n + i) % 5),
      price: `${99 + ((n * 7 + i * 13) % 400)}.${String((n + i) % 100).padStart(2, '0')}`,
    })),
    owner: `rep-${1 + (n % 4)}`,
    created_at: new Date(Date.UTC(2026, 10, 26, 8, 0, 0) + n * 60_000).toISOString(),
  }
}

export interface DemoCrmSender {
  send(type: 'order.created' | 'order.updated' | 'order.cancelled', order: DemoCrmOrder, webhookId?: string): Promise<DeliveryResult>
  /** An approval decided in the CRM, as `order.approval`. */
  sendApproval(approval: DemoCrmApproval, webhookId?: string): Promise<DeliveryResult>
}

export interface DemoCrmSenderOptions {
  webhookUrl: string
  /** The Standard Webhooks secret (`whsec_…`), or with `signature: 'hubspot-v3'` the client secret. */
  secret: string
  retries?: number
  /** How deliveries are signed: Standard Webhooks (default), or HubSpot's v3 signature over `webhookUrl`. */
  signature?: 'standard-webhooks' | 'hubspot-v3'
}

export function createDemoCrmSender(options: DemoCrmSenderOptions): DemoCrmSender {
  const retries = options.retries ?? 5
  const sign = (webhookId: string, body: string): Record<string, string> =>
    options.signature === 'hubspot-v3'
      ? { ...signHubSpotV3(options.secret, { method: 'POST', uri: options.webhookUrl, body }, Date.now()) }
      : { ...signStandardWebhook(options.secret, webhookId, Math.floor(Date.now() / 1000), body) }
  async function deliver(event: DemoCrmWebhook, webhookId: string): Promise<DeliveryResult> {
    const body = JSON.stringify(event)
    for (let attempt = 0; ; attempt++) {
      // Each attempt is signed afresh: the timestamp must stay inside the receiver's window.
      const headers = sign(webhookId, body)
      try {
        const response = await fetch(options.webhookUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
        const answer = { status: response.status, body: await response.json().catch(() => null) }
        if (response.status < 500 || attempt >= retries) return answer
      } catch (err) {
        if (attempt >= retries) throw err
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt))
    }
  }
  return {
    send: (type, order, webhookId = `msg_${randomUUID()}`) => deliver({ type, data: order }, webhookId),
    sendApproval: (approval, webhookId = `msg_${randomUUID()}`) => deliver({ type: 'order.approval', data: approval }, webhookId),
  }
}
