/**
 * What the fulfilment tests share: a signed delivery from the demo WMS or ERP that their simulators
 * would not send (an event out of order, or sent again), and the three places where a refused event
 * shows: the order's timeline, the change feed and the event's own status.
 */
import { randomUUID } from 'node:crypto'
import { signStandardWebhook } from '../../src/connector-kit/index.ts'
import { testCredentials, type TestStack } from '../support/test-orderbridge.ts'

/** Delivers `body` as the connection's system would: signed with the test secret, under a new webhook id. */
export async function deliverSigned(stack: TestStack, connection: 'demo-wms' | 'demo-erp', body: unknown): Promise<number> {
  const raw = JSON.stringify(body)
  const headers = signStandardWebhook(testCredentials.demoWebhookSecret, `msg_${randomUUID()}`, Math.floor(Date.now() / 1000), raw)
  const response = await fetch(`${stack.url}/webhooks/${connection}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: raw })
  await response.body?.cancel()
  return response.status
}

export interface Refusal {
  /** The `event.refused` change in the feed. */
  change: { orderId: string; connectionId: string; data: { eventId: string; type: string; reason: string } }
  /** The inbox event, as `GET /api/v1/events/:id` shows it. */
  event: { status: string; type: string; orderId: string; errors: string[] }
  /** The order's timeline entry. */
  entry: { kind: string; cause: string; detail: { reason: string } }
}

/** Waits until an event of `type` for the order is refused, and reads the refusal where ops look for it. */
export async function refusalOf(stack: TestStack, orderId: string, type: string): Promise<Refusal> {
  const change = await stack.waitFor(async () => {
    const { body } = await stack.api('/api/v1/changes?type=event.refused&limit=1000')
    return (body.changes as Refusal['change'][]).find((c) => c.orderId === orderId && c.data.type === type)
  }, `a refused ${type} for order ${orderId}`)
  const { body: event } = await stack.api(`/api/v1/events/${change.data.eventId}`)
  const { body } = await stack.api(`/api/v1/orders/${orderId}/timeline`)
  const entry = (body.timeline as Refusal['entry'][]).find((t) => t.kind === 'refused' && t.cause.includes(`event ${change.data.eventId} (${type})`))
  if (!entry) throw new Error(`no timeline entry for the refused event ${change.data.eventId}`)
  return { change, event, entry }
}

/** The reason as the change feed, the event's status and the timeline each tell it, to compare in one `toEqual`. */
export const reasonsOf = (r: Refusal) => ({ feed: r.change.data.reason, event: r.event.errors, timeline: r.entry.detail.reason })
