/**
 * Salesforce's sending side of outbound messaging, for the simulator, the demo and tests: builds
 * `notifications` SOAP envelopes (up to 100 notifications each, as in the fixtures), posts them
 * the way Salesforce does, checks the answer for the Ack, and resends an unacknowledged message as
 * Salesforce would (the same envelope, the same notification ids).
 */
import { randomBytes } from 'node:crypto'
import { buildOutboundMessage, maxNotifications, readNotificationsAnswer } from './soap.ts'

export interface OutboundNotificationInput {
  /** The notification id; a fresh one when absent. Resending a message repeats its ids. */
  id?: string
  sObjectType?: string
  /** Field values as text; null is sent as xsi:nil. */
  fields: Record<string, string | null>
}

export interface OutboundMessageToSend {
  xml: string
  notificationIds: string[]
}

export interface OutboundPostResult {
  status: number
  /** True only for a 200 whose body is a notificationsResponse with Ack true. */
  ack: boolean
  fault?: { code: string; message: string }
  body: string
}

export interface OutboundMessageSenderOptions {
  url: string
  organizationId: string
  /** The org's instance URL, named in the message's EnterpriseUrl and PartnerUrl. */
  instanceUrl: string
  actionId?: string
  apiVersion?: string
}

export interface OutboundMessageSender {
  message(notifications: readonly OutboundNotificationInput[]): OutboundMessageToSend
  /** One delivery attempt. */
  post(message: OutboundMessageToSend): Promise<OutboundPostResult>
  /** Builds and posts; resends the same message until it is acknowledged or `retries` are used up. */
  send(notifications: readonly OutboundNotificationInput[], options?: { retries?: number; backoffMs?: number }): Promise<OutboundPostResult & { message: OutboundMessageToSend; attempts: number }>
}

const base62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** The 18-character form of a 15-character id: three checksum characters for its upper-case letters. */
export function toCaseSafeId(id15: string): string {
  let suffix = ''
  for (let chunk = 0; chunk < 3; chunk++) {
    let flags = 0
    for (let i = 0; i < 5; i++) if (/[A-Z]/.test(id15[chunk * 5 + i]!)) flags |= 1 << i
    suffix += 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345'[flags]
  }
  return id15 + suffix
}

/** A random 18-character id with a key prefix, e.g. `04l` for notifications or `801` for orders. */
export function randomSalesforceId(keyPrefix: string): string {
  const bytes = randomBytes(12)
  let body = ''
  for (const b of bytes) body += base62[b % 62]
  return toCaseSafeId(`${keyPrefix}${body}`.slice(0, 15))
}

export function createOutboundMessageSender(options: OutboundMessageSenderOptions): OutboundMessageSender {
  const actionId = options.actionId ?? randomSalesforceId('04k')
  const sender: OutboundMessageSender = {
    message(notifications) {
      if (notifications.length === 0 || notifications.length > maxNotifications) throw new Error(`an outbound message holds 1 to ${maxNotifications} notifications, not ${notifications.length}`)
      const withIds = notifications.map((n) => ({ id: n.id ?? randomSalesforceId('04l'), sObjectType: n.sObjectType ?? 'Order', fields: n.fields }))
      const xml = buildOutboundMessage({ organizationId: options.organizationId, actionId, instanceUrl: options.instanceUrl, apiVersion: options.apiVersion, notifications: withIds })
      return { xml, notificationIds: withIds.map((n) => n.id) }
    },
    async post(message) {
      const response = await fetch(options.url, {
        method: 'POST',
        // As public listener code records them; SOAP 1.1 needs the (empty) SOAPAction header.
        headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: '""' },
        body: message.xml,
      })
      const body = await response.text()
      const answer = readNotificationsAnswer(body)
      return { status: response.status, ack: response.status === 200 && answer.ack, ...(answer.fault ? { fault: answer.fault } : {}), body }
    },
    async send(notifications, sendOptions = {}) {
      const message = sender.message(notifications)
      const retries = sendOptions.retries ?? 0
      for (let attempt = 1; ; attempt++) {
        let result: OutboundPostResult | undefined
        try {
          result = await sender.post(message)
        } catch (err) {
          if (attempt > retries) throw err
        }
        if (result && (result.ack || attempt > retries)) return { ...result, message, attempts: attempt }
        // Salesforce backs off exponentially (up to two hours); the simulator keeps the shape, not the hours.
        await new Promise((resolve) => setTimeout(resolve, (sendOptions.backoffMs ?? 100) * 2 ** (attempt - 1)))
      }
    },
  }
  return sender
}
