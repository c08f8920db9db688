/**
 * What a notification leaves on its order's timeline: an `external_call` entry for each call to a
 * channel (a CRM note, a webhook, an email), sent or failed. The timeline then lists every call made
 * for the order, the sync steps' and the notifications' alike. A skipped channel made no call, so it
 * has no entry. Builds entries only; notification.worker.ts records them.
 */
import type { OrderEventInput } from '../orders/order.repository.ts'

/** Where a channel's call goes. */
export type ChannelTarget = { channel: 'crm'; connection: string } | { channel: 'webhook'; endpoint: string } | { channel: 'email' }

export interface ChannelCall {
  orderId: string
  notificationId: number
  ruleId: string
  target: ChannelTarget
  outcome: 'sent' | 'failed'
  durationMs: number
  /** The addresses an email went to. */
  to?: string[]
  /** A failure's message, safe to show (ChannelFailure messages are). */
  error?: string
}

const targetName = (target: ChannelTarget): string =>
  target.channel === 'crm' ? `CRM note on ${target.connection}` : target.channel === 'webhook' ? `webhook ${target.endpoint}` : 'email'

/**
 * The cause names the rule and the channel but never the message, which may quote amounts the
 * warehouse view must not show (it keeps causes and drops details).
 *
 * @example
 * channelCallEntry({ orderId, notificationId: 7, ruleId: 'order-shipped', target: { channel: 'crm', connection: 'demo-crm' }, outcome: 'sent', durationMs: 12 })
 * // { kind: 'external_call', cause: 'notification order-shipped: CRM note on demo-crm sent', detail: { operation: 'notification.crm', connection: 'demo-crm', … } }
 */
export function channelCallEntry(call: ChannelCall): OrderEventInput {
  const { channel, ...where } = call.target
  return {
    orderId: call.orderId,
    kind: 'external_call',
    cause: `notification ${call.ruleId}: ${targetName(call.target)} ${call.outcome}`,
    detail: {
      operation: `notification.${channel}`,
      ...where,
      outcome: call.outcome,
      rule: call.ruleId,
      notificationId: call.notificationId,
      durationMs: call.durationMs,
      ...(call.to ? { to: call.to } : {}),
      ...(call.error ? { error: call.error } : {}),
    },
  }
}
