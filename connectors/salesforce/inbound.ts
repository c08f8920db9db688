/**
 * One outbound message in, one event per notification out: checks the sending org and the sObject
 * type, and turns each Order notification into an InboundEvent whose document is the Order's fields
 * as sent (text, so amounts stay exact). Synchronous and without I/O: the ingest route stores the
 * events before it acknowledges, and nothing here may make Salesforce wait.
 */
import { WebhookRejected, type InboundEvent, type ReceivedDelivery } from '../../src/connector-kit/index.ts'
import type { SalesforceSettings } from './settings.ts'
import { parseOutboundMessage, SoapReadError, type OutboundMessage, type OutboundNotification } from './soap.ts'

type Issue = { path: string; message: string }

/** Salesforce ids compare on their case-sensitive first 15 characters (the 18-character form adds a checksum). */
export const sameSalesforceId = (a: string, b: string) => a.slice(0, 15) === b.slice(0, 15)

export function receiveOutboundMessage(raw: Buffer, settings: SalesforceSettings): ReceivedDelivery {
  let message: OutboundMessage
  try {
    message = parseOutboundMessage(raw)
  } catch (err) {
    if (err instanceof SoapReadError) throw new WebhookRejected(400, err.code, err.message, err.details)
    throw err
  }
  // Not a secret (it is in every message), but a message from another org must never become an order here.
  if (!sameSalesforceId(message.organizationId, settings.organizationId)) {
    throw new WebhookRejected(401, 'wrong_organization', `the message comes from organization ${message.organizationId}, which this connection does not accept`)
  }
  const issues: Issue[] = []
  const events = message.notifications.map((n, i) => toEvent(n, settings, `notifications.Notification[${i}]`, issues))
  if (issues.length) throw new WebhookRejected(422, 'validation_failed', 'the notifications do not carry what this connection needs', issues)
  return { events: events as (InboundEvent & { eventId: string })[] }
}

function toEvent(n: OutboundNotification, settings: SalesforceSettings, at: string, issues: Issue[]): (InboundEvent & { eventId: string }) | undefined {
  const before = issues.length
  if (n.sObjectType !== settings.sObjectType) issues.push({ path: `${at}.sObject`, message: `expected an sf:${settings.sObjectType}, got sf:${n.sObjectType}` })
  const text = (name: string) => (typeof n.fields[name] === 'string' ? (n.fields[name] as string) : undefined)
  const id = text('Id')
  if (id === undefined || !/^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$/.test(id)) issues.push({ path: `${at}.sObject.Id`, message: 'must be a Salesforce record id' })
  const version = sourceVersionOf(text('SystemModstamp'), text('LastModifiedDate'))
  if (!version.ok) issues.push({ path: `${at}.sObject.${version.field}`, message: version.message })
  if (issues.length > before || !version.ok) return undefined
  return { eventId: n.id, type: eventTypeOf(n, settings), externalId: id!, sourceVersion: version.value, document: n.fields }
}

/**
 * Outbound messages arrive out of order and again; the version puts them back in order. SystemModstamp
 * changes on every write (also by the system), LastModifiedDate on every user or API write: either
 * one orders one record's changes. Without either, a later change could never replace an earlier one,
 * so such a message is refused rather than half applied.
 */
export function sourceVersionOf(systemModstamp: string | undefined, lastModifiedDate: string | undefined): { ok: true; value: number } | { ok: false; field: string; message: string } {
  const [field, value] = systemModstamp !== undefined ? ['SystemModstamp', systemModstamp] : ['LastModifiedDate', lastModifiedDate]
  if (value === undefined) {
    return { ok: false, field: 'LastModifiedDate', message: 'select LastModifiedDate or SystemModstamp in the outbound message: without one, updates of an order cannot be put in order' }
  }
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$/.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(ms)) return { ok: false, field, message: `"${value}" is not an xsd:dateTime such as 2024-05-20T08:00:00.000Z` }
  return { ok: true, value: ms }
}

function eventTypeOf(n: OutboundNotification, settings: SalesforceSettings): InboundEvent['type'] {
  const status = n.fields.Status
  if (typeof status === 'string' && settings.cancelledStatuses.includes(status)) return 'order.cancelled'
  if (settings.eventType !== 'auto') return settings.eventType
  const created = n.fields.CreatedDate
  const modified = n.fields.LastModifiedDate
  return typeof created === 'string' && created === modified ? 'order.created' : 'order.updated'
}
