/**
 * Salesforce outbound messages on the wire: reads a `notifications` SOAP 1.1 envelope into plain
 * data, and writes the envelopes Salesforce expects back (the `notificationsResponse` Ack and a SOAP
 * fault), plus the `notifications` envelope itself for the simulator's sender.
 *
 * Parsing is the kit's XML codec (src/connector-kit/xml.ts): a DOCTYPE or entity declaration is
 * refused before anything is parsed and no entity is ever expanded. Prefixes are kept and resolved
 * here, so the envelope and the notifications are recognised by namespace, whatever prefixes the
 * sender chose. Does no I/O.
 */
import { XmlParseError, buildXml, parseXml, soapEnvelope, soapEnvelopeNamespace, xmlAttributePrefix, xmlTextKey, type XmlBuildNode, type XmlNode } from '../../src/connector-kit/index.ts'

export const soapEnvelopeNs = soapEnvelopeNamespace
export const outboundNs = 'http://soap.sforce.com/2005/09/outbound'
export const sObjectNs = 'urn:sobject.enterprise.soap.sforce.com'
const xsdNs = 'http://www.w3.org/2001/XMLSchema'
const xsiNs = 'http://www.w3.org/2001/XMLSchema-instance'

/** The WSDL's `maxOccurs` for Notification. */
export const maxNotifications = 100

/** Why a body could not be read; `code` is what the rejection records. */
export class SoapReadError extends Error {
  readonly code: 'xml_doctype_refused' | 'malformed_xml' | 'malformed_envelope'
  readonly details: { path: string; message: string }[]
  constructor(code: SoapReadError['code'], message: string, details: { path: string; message: string }[] = []) {
    super(message)
    this.name = 'SoapReadError'
    this.code = code
    this.details = details
  }
}

/** One element, its name resolved against the namespaces in scope. */
export interface XmlElement {
  /** The local name, without any prefix. */
  name: string
  ns: string | undefined
  /** Attributes by local name (`type`, `nil`); namespace declarations left out. */
  attrs: Record<string, { ns: string | undefined; value: string }>
  text: string
  children: XmlElement[]
  /** Prefix → namespace in scope here, to resolve QName values such as `xsi:type="sf:Order"`. */
  scope: ReadonlyMap<string, string>
}

/** Reads one XML document into its root element; refuses DTDs and anything not well-formed. */
export function readXml(raw: Buffer | string): XmlElement {
  let parsed: XmlNode
  try {
    parsed = parseXml(raw, { keepPrefixes: true })
  } catch (err) {
    if (!(err instanceof XmlParseError)) throw err
    if (err.code === 'doctype') throw new SoapReadError('xml_doctype_refused', 'a DOCTYPE or ENTITY declaration is not allowed in a SOAP message')
    throw new SoapReadError('malformed_xml', `the body is not well-formed XML: ${err.message}`)
  }
  const roots = toElements(parsed, new Map([['xml', 'http://www.w3.org/XML/1998/namespace']]))
  if (roots.length !== 1) throw new SoapReadError('malformed_xml', `an XML document has one root element, this one has ${roots.length}`)
  return roots[0]!
}

function toElements(node: XmlNode, scope: ReadonlyMap<string, string>): XmlElement[] {
  const out: XmlElement[] = []
  for (const [qname, value] of Object.entries(node)) {
    if (qname.startsWith(xmlAttributePrefix) || qname === xmlTextKey) continue
    for (const item of Array.isArray(value) ? value : [value]) out.push(toElement(qname, item, scope))
  }
  return out
}

function toElement(qname: string, value: unknown, parentScope: ReadonlyMap<string, string>): XmlElement {
  const body: XmlNode = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as XmlNode) : { [xmlTextKey]: String(value ?? '') }
  const scope = new Map(parentScope)
  const rawAttrs: [string, string][] = []
  for (const [key, v] of Object.entries(body)) {
    if (!key.startsWith(xmlAttributePrefix) || typeof v !== 'string') continue
    const name = key.slice(xmlAttributePrefix.length)
    if (name === 'xmlns') scope.set('', v)
    else if (name.startsWith('xmlns:')) scope.set(name.slice(6), v)
    else rawAttrs.push([name, v])
  }
  const [prefix, local] = splitQName(qname)
  const attrs: XmlElement['attrs'] = {}
  for (const [name, v] of rawAttrs) {
    const [p, l] = splitQName(name)
    // Unprefixed attributes are in no namespace (Namespaces in XML §6.2).
    attrs[l] = { ns: p === '' ? undefined : scope.get(p), value: v }
  }
  const text = body[xmlTextKey]
  return { name: local, ns: scope.get(prefix), attrs, text: typeof text === 'string' ? text : '', children: toElements(body, scope), scope }
}

function splitQName(qname: string): [prefix: string, local: string] {
  const i = qname.indexOf(':')
  return i < 0 ? ['', qname] : [qname.slice(0, i), qname.slice(i + 1)]
}

export const childrenNamed = (el: XmlElement, name: string, ns?: string) => el.children.filter((c) => c.name === name && (ns === undefined || c.ns === ns))
export const childNamed = (el: XmlElement, name: string, ns?: string) => childrenNamed(el, name, ns)[0]
export const isNil = (el: XmlElement) => el.attrs.nil?.ns === xsiNs && (el.attrs.nil.value === 'true' || el.attrs.nil.value === '1')

/** The Body's payload element of a SOAP 1.1 envelope. */
export function soapBodyContent(root: XmlElement): XmlElement {
  if (root.name !== 'Envelope' || root.ns !== soapEnvelopeNs) throw new SoapReadError('malformed_envelope', `expected a SOAP 1.1 Envelope (${soapEnvelopeNs}), got ${root.name}${root.ns ? ` in ${root.ns}` : ''}`)
  const body = childNamed(root, 'Body', soapEnvelopeNs)
  if (!body) throw new SoapReadError('malformed_envelope', 'the SOAP envelope has no Body')
  if (body.children.length !== 1) throw new SoapReadError('malformed_envelope', `the SOAP Body holds ${body.children.length} elements, expected one`)
  return body.children[0]!
}

/** A field value of an sObject: text as sent (types kept as strings), or nested fields. */
export type SObjectValue = string | { [field: string]: SObjectValue }

export interface OutboundNotification {
  /** The notification's id: repeated when Salesforce redelivers it. */
  id: string
  /** The sObject's type, from `xsi:type` (e.g. `Order`). */
  sObjectType: string
  /** The selected fields by API name; nil fields are left out. */
  fields: Record<string, SObjectValue>
}

export interface OutboundMessage {
  organizationId: string
  actionId: string
  sessionId?: string
  enterpriseUrl?: string
  partnerUrl?: string
  notifications: OutboundNotification[]
}

/** Reads a `notifications` message; throws SoapReadError naming what is wrong. */
export function parseOutboundMessage(raw: Buffer | string): OutboundMessage {
  const content = soapBodyContent(readXml(raw))
  if (content.name !== 'notifications' || content.ns !== outboundNs) {
    throw new SoapReadError('malformed_envelope', `the SOAP Body holds ${content.name}, expected notifications in ${outboundNs}`)
  }
  const details: { path: string; message: string }[] = []
  const text = (name: string, required: boolean): string | undefined => {
    const el = childNamed(content, name, outboundNs)
    const value = el && !isNil(el) ? el.text : ''
    if (value !== '') return value
    if (required) details.push({ path: `notifications.${name}`, message: 'is required' })
    return undefined
  }
  const organizationId = text('OrganizationId', true)
  const actionId = text('ActionId', true)
  const elements = childrenNamed(content, 'Notification', outboundNs)
  if (elements.length === 0) details.push({ path: 'notifications.Notification', message: 'at least one Notification is required' })
  if (elements.length > maxNotifications) details.push({ path: 'notifications.Notification', message: `at most ${maxNotifications} Notification elements, got ${elements.length}` })
  const notifications = elements.flatMap((el, i): OutboundNotification[] => {
    const at = `notifications.Notification[${i}]`
    const id = childNamed(el, 'Id', outboundNs)?.text
    const sObject = childNamed(el, 'sObject', outboundNs)
    if (!id) details.push({ path: `${at}.Id`, message: 'is required' })
    if (!sObject) details.push({ path: `${at}.sObject`, message: 'is required' })
    if (!id || !sObject) return []
    const type = sObject.attrs.type?.ns === xsiNs ? sObject.attrs.type.value : undefined
    if (!type) {
      details.push({ path: `${at}.sObject`, message: 'has no xsi:type naming the sObject' })
      return []
    }
    const [typePrefix, typeName] = splitQName(type)
    if (sObject.scope.get(typePrefix) !== sObjectNs) details.push({ path: `${at}.sObject`, message: `xsi:type ${type} is not in ${sObjectNs}` })
    return [{ id, sObjectType: typeName, fields: sObjectFields(sObject, `${at}.sObject`, details) }]
  })
  if (details.length) throw new SoapReadError('malformed_envelope', 'the notifications message is not what the outbound messaging WSDL defines', details)
  return {
    organizationId: organizationId!,
    actionId: actionId!,
    ...optional('sessionId', text('SessionId', false)),
    ...optional('enterpriseUrl', text('EnterpriseUrl', false)),
    ...optional('partnerUrl', text('PartnerUrl', false)),
    notifications,
  }
}

function sObjectFields(el: XmlElement, at: string, details: { path: string; message: string }[]): Record<string, SObjectValue> {
  const fields = new Map<string, SObjectValue>()
  for (const child of el.children) {
    // The base sObject type's fieldsToNull is never sent by outbound messaging; nil fields are absent.
    if (child.name === 'fieldsToNull' || isNil(child)) continue
    if (fields.has(child.name)) {
      details.push({ path: `${at}.${child.name}`, message: 'appears more than once' })
      continue
    }
    fields.set(child.name, child.children.length ? sObjectFields(child, `${at}.${child.name}`, details) : child.text)
  }
  // fromEntries defines own properties: an element named __proto__ stays a field, never a prototype.
  return Object.fromEntries(fields)
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string }
}

/** The acknowledgement the WSDL defines: `notificationsResponse` with `Ack` true, for the whole message. */
export function ackEnvelope(): string {
  return soapEnvelope({ notificationsResponse: { '@xmlns': outboundNs, Ack: true } })
}

/** A SOAP 1.1 fault, shaped like the published template; Salesforce keeps the message queued and retries it. */
export function faultEnvelope(message: string, faultcode: 'soapenv:Client' | 'soapenv:Server' = 'soapenv:Client'): string {
  return soapEnvelope({ 'soapenv:Fault': { faultcode, faultstring: message, detail: null } })
}

/** Reads an answer to a notifications message: acknowledged, a fault, or neither. */
export function readNotificationsAnswer(raw: Buffer | string): { ack: boolean; fault?: { code: string; message: string } } {
  let content: XmlElement
  try {
    content = soapBodyContent(readXml(raw))
  } catch {
    return { ack: false }
  }
  if (content.name === 'Fault' && content.ns === soapEnvelopeNs) {
    return { ack: false, fault: { code: childNamed(content, 'faultcode')?.text ?? '', message: childNamed(content, 'faultstring')?.text ?? '' } }
  }
  const ack = content.name === 'notificationsResponse' && content.ns === outboundNs && childNamed(content, 'Ack', outboundNs)?.text === 'true'
  return { ack }
}

export interface OutboundMessageInput {
  organizationId: string
  actionId: string
  /** The base URL the message names for callbacks, e.g. https://acme.my.salesforce.com. */
  instanceUrl: string
  apiVersion?: string
  notifications: { id: string; sObjectType: string; fields: Record<string, string | null> }[]
}

/** A `notifications` envelope as Salesforce sends it (see the fixtures); null fields are sent as xsi:nil. */
export function buildOutboundMessage(input: OutboundMessageInput): string {
  const version = input.apiVersion ?? '62.0'
  const org15 = input.organizationId.slice(0, 15)
  const nil = { '@xsi:nil': 'true' }
  const Notification = input.notifications.map((n) => {
    const sObject: XmlBuildNode = { '@xsi:type': `sf:${n.sObjectType}`, '@xmlns:sf': sObjectNs }
    for (const [name, value] of Object.entries(n.fields)) sObject[`sf:${name}`] = value === null ? nil : value
    return { Id: n.id, sObject }
  })
  return buildXml({
    'soapenv:Envelope': {
      '@xmlns:soapenv': soapEnvelopeNs,
      '@xmlns:xsd': xsdNs,
      '@xmlns:xsi': xsiNs,
      'soapenv:Body': {
        notifications: {
          '@xmlns': outboundNs,
          OrganizationId: input.organizationId,
          ActionId: input.actionId,
          SessionId: nil,
          EnterpriseUrl: `${input.instanceUrl}/services/Soap/c/${version}/${org15}`,
          PartnerUrl: `${input.instanceUrl}/services/Soap/u/${version}/${org15}`,
          Notification,
        },
      },
    },
  })
}
