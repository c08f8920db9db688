/**
 * Status back from SAP: the IDocs SAP (or SAP PI/PO, Cloud Integration) posts to
 * `POST /webhooks/<connection>`, as bare IDoc XML (`<DELVRY07><IDOC BEGIN="1">…`, what an XML-HTTP
 * port sends) or inside a SOAP 1.1 envelope. It authenticates the delivery (HTTP Basic or a shared
 * token header, compared in constant time, secrets from the connection), parses it with the kit's
 * XML codec (no DTDs, no entity expansion), checks each IDoc's control record and turns it into
 * orderbridge's fulfilment events:
 *
 * - DESADV (DELVRY01…07): `order.shipped` per order the delivery serves (carrier, tracking number,
 *   delivered quantity per material), and `order.delivered` when the delivery carries its proof of
 *   delivery date (E1EDL20 PODAT);
 * - INVOIC (INVOIC01/02): `order.invoiced` (invoice number, the billed value E1EDS01 qualifier 011
 *   as a decimal string, currency, due date E1EDK03 qualifier 028);
 * - ORDRSP (ORDERS01…05): checked and acknowledged, no event: orderbridge has none for an order
 *   confirmation (SAP's sales order number cannot be kept on the order yet).
 *
 * Events name the order by our reference, `ref:<order id>` (the customer's purchase order number
 * SAP carried over from our ORDERS05, E1EDK02 / E1EDL41 / E1EDP02 qualifier 001), else by SAP's
 * sales order number. The event id is the IDoc number (EDI_DC40 DOCNUM), so an IDoc SAP sends again
 * is stored once. Refusals are SOAP 1.1 faults naming each wrong field by its path in the IDoc.
 * Pure: no I/O, no logging.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import {
  WebhookRejected,
  XmlParseError,
  addDecimals,
  asArray,
  buildXml,
  compareDecimals,
  isDecimalString,
  parseXml,
  soapEnvelope,
  xmlAttr,
  xmlChild,
  xmlText,
  type IncomingDelivery,
  type InboundEvent,
  type ReceivedDelivery,
  type WebhookAnswer,
  type XmlNode,
  type XmlValue,
} from '../../src/connector-kit/index.ts'
import { inboundMessageTypes, type InboundMessageType, type InboundSettings, type SapIdocSecrets, type SapIdocSettings } from './settings.ts'

/** text/xml and application/xml, and application/x-sap.idoc, the media type of IDoc-XML over HTTP (SAP-XML). */
export const inboundContentTypes = ['text/xml', 'application/xml', 'application/x-sap.idoc'] as const

/** The basic types each message type comes in. */
const basicTypes: Readonly<Record<InboundMessageType, RegExp>> = {
  ORDRSP: /^ORDERS0[1-5]$/,
  DESADV: /^DELVRY0[1-7]$/,
  INVOIC: /^INVOIC0[12]$/,
}

/** Segments that can repeat under their parent, read as lists whether they occur once or more. */
const repeatable = ['IDOC', 'E1EDK02', 'E1EDK03', 'E1EDKA1', 'E1EDK14', 'E1EDK18', 'E1EDP01', 'E1EDP02', 'E1EDS01', 'E1EDL18', 'E1ADRM1', 'E1EDT13', 'E1EDL24', 'E1EDL37', 'E1EDL41', 'E1EDL43']

export interface ReceivedIdoc {
  docnum: string
  messageType: InboundMessageType
  events: number
}

/** What `receive` returns: the events, and what the acknowledgement names. */
export interface SapIdocDelivery extends ReceivedDelivery {
  idocs: ReceivedIdoc[]
  soap: boolean
}

type Detail = { path: string; message: string }

class Issues {
  readonly list: Detail[] = []
  add(path: string, message: string): void {
    this.list.push({ path, message })
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

/** Equal strings, in time that does not depend on where they differ (both are hashed first). */
function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected))
}

function unauthorized(message: string): WebhookRejected {
  return new WebhookRejected(401, 'unauthorized', message)
}

/** Refuses a delivery whose credentials are missing or wrong; says which, never what was sent. */
export function verifyInboundCredentials(headers: Readonly<Record<string, string | undefined>>, inbound: InboundSettings, secrets: SapIdocSecrets): void {
  if (inbound.authentication === 'basic') {
    const { inboundUsername: username, inboundPassword: password } = secrets
    if (!username || !password) throw new WebhookRejected(401, 'inbound_not_configured', 'this connection has no inboundUsername and inboundPassword, so no delivery can be verified')
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(headers.authorization ?? '')
    if (!match) throw unauthorized('the delivery has no Authorization: Basic header')
    // Decoded and compared as one "user:password" string, so a wrong user and a wrong password look alike.
    if (!sameSecret(Buffer.from(match[1]!, 'base64').toString('utf8'), `${username}:${password}`)) throw unauthorized('the user or password of the delivery is wrong')
    return
  }
  const token = secrets.inboundToken
  if (!token) throw new WebhookRejected(401, 'inbound_not_configured', 'this connection has no inboundToken, so no delivery can be verified')
  const given = headers[inbound.header.toLowerCase()]
  if (given === undefined || given === '') throw unauthorized(`the delivery has no ${inbound.header} header`)
  if (!sameSecret(given, token)) throw unauthorized(`the ${inbound.header} header of the delivery is wrong`)
}

// ---------------------------------------------------------------------------------------------
// Reading segments

function isNode(value: XmlValue | undefined): value is XmlNode {
  return value !== undefined && typeof value === 'object' && !Array.isArray(value)
}

function segments(parent: XmlValue | undefined, name: string): XmlNode[] {
  return asArray(xmlChild(parent, name)).filter(isNode)
}

function field(segment: XmlValue | undefined, name: string): string {
  return (xmlText(xmlChild(segment, name)) ?? '').trim()
}

/** The segment of a list whose qualifier field has the value, with its index (for paths). */
function qualified(list: XmlNode[], qualifier: string, value: string): { segment: XmlNode; index: number } | undefined {
  const index = list.findIndex((s) => field(s, qualifier) === value)
  return index === -1 ? undefined : { segment: list[index]!, index }
}

/** A date YYYYMMDD as YYYY-MM-DD; undefined when empty or 00000000; null when it is no date. */
function isoDate(value: string): string | undefined | null {
  if (value === '' || /^0+$/.test(value)) return undefined
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value)
  if (!match) return null
  const [, year, month, day] = match
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)))
  if (date.getUTCFullYear() !== Number(year) || date.getUTCMonth() !== Number(month) - 1 || date.getUTCDate() !== Number(day)) return null
  return `${year}-${month}-${day}`
}

/**
 * Our order id from the purchase order number SAP carried over: we send it without hyphens
 * (IDoc document numbers are CHAR 35), so 32 hex digits become a UUID again.
 */
export function referenceOfBelnr(belnr: string): string {
  const compact = belnr.trim()
  if (/^[0-9A-Fa-f]{32}$/.test(compact)) {
    const hex = compact.toLowerCase()
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
  }
  return compact
}

/** SAP shows numeric material numbers without their leading zeros (conversion ALPHA); so do we. */
function materialOf(matnr: string): string {
  return /^\d+$/.test(matnr) ? matnr.replace(/^0+(?=\d)/, '') : matnr
}

/** Names the order: ours when SAP carried our reference over, else SAP's sales order number. */
function orderKey(reference: string, salesOrder: string): string | undefined {
  if (reference !== '') return `ref:${referenceOfBelnr(reference)}`
  if (salesOrder !== '') return salesOrder
  return undefined
}

// ---------------------------------------------------------------------------------------------
// The message types

function desadvEvents(idoc: XmlNode, at: string, inbound: InboundSettings, issues: Issues): InboundEvent[] {
  const headers = segments(idoc, 'E1EDL20')
  if (headers.length !== 1) {
    issues.add(`${at}.E1EDL20`, 'the delivery header E1EDL20 is required, once')
    return []
  }
  const header = headers[0]!
  const path = `${at}.E1EDL20`
  if (field(header, 'VBELN') === '') issues.add(`${path}.VBELN`, 'the delivery number is required')
  // A delivery deleted in SAP shipped nothing.
  if (segments(header, 'E1EDL18').some((control) => field(control, 'QUALF') === 'DEL')) return []

  const items = segments(header, 'E1EDL24')
  if (items.length === 0) issues.add(`${path}.E1EDL24`, 'a delivery needs at least one item')
  type Item = { index: number; posnr: string; hipos: string; sku: string; quantity: string; order?: string }
  const read: Item[] = []
  for (const [index, item] of items.entries()) {
    const itemPath = `${path}.E1EDL24[${index}]`
    const matnr = field(item, 'MATNR')
    const quantity = field(item, 'LFIMG') || '0'
    if (matnr === '') issues.add(`${itemPath}.MATNR`, 'the material is required')
    if (!isDecimalString(quantity) || compareDecimals(quantity, '0') < 0) {
      issues.add(`${itemPath}.LFIMG`, `"${quantity.slice(0, 20)}" is not a delivered quantity (a decimal such as 4.000)`)
      continue
    }
    const customerOrder = qualified(segments(item, 'E1EDL41'), 'QUALI', '001')
    const salesOrder = qualified(segments(item, 'E1EDL43'), 'QUALF', 'C')
    const order = orderKey(customerOrder ? field(customerOrder.segment, 'BSTNR') : '', salesOrder ? field(salesOrder.segment, 'BELNR') : '')
    read.push({ index, posnr: field(item, 'POSNR'), hipos: field(item, 'HIPOS'), sku: materialOf(matnr), quantity, ...(order ? { order } : {}) })
  }
  const orders = [...new Set(read.flatMap((item) => (item.order ? [item.order] : [])))]
  for (const item of read) {
    if (item.order) continue
    // An item without references (packaging, a batch split) belongs to the delivery's only order.
    if (orders.length === 1) item.order = orders[0]!
    else issues.add(`${path}.E1EDL24[${item.index}].E1EDL41`, 'names no order: E1EDL41 (QUALI 001, BSTNR: our reference) or E1EDL43 (QUALF C, BELNR: the sales order) is required')
  }
  if (issues.list.length) return []

  // A sub-item (HIPOS) counts only under a main item that delivers nothing itself (a batch split);
  // under one that does (a bill of material), it is a component and the main item is what was sold.
  const byPosnr = new Map(read.map((item) => [item.posnr, item]))
  const counts = (item: Item) => compareDecimals(item.quantity, '0') > 0 && (item.hipos === '' || !byPosnr.has(item.hipos) || compareDecimals(byPosnr.get(item.hipos)!.quantity, '0') === 0)
  const lines = new Map<string, Map<string, string>>()
  for (const item of read) {
    if (!counts(item)) continue
    const perSku = lines.get(item.order!) ?? new Map<string, string>()
    perSku.set(item.sku, perSku.has(item.sku) ? addDecimals([perSku.get(item.sku)!, item.quantity]) : item.quantity)
    lines.set(item.order!, perSku)
  }

  const carrierSegment = qualified(segments(header, 'E1ADRM1'), 'PARTNER_Q', inbound.carrierPartnerFunction)?.segment
  const carrier = carrierSegment ? field(carrierSegment, 'NAME1') || field(carrierSegment, 'PARTNER_ID') : ''
  const trackingNumber = inbound.trackingNumberField === 'EXIDV' ? field(segments(header, 'E1EDL37')[0], 'EXIDV') : field(header, inbound.trackingNumberField)
  const podDate = isoDate(field(header, 'PODAT'))
  if (podDate === null) issues.add(`${path}.PODAT`, 'must be a date YYYYMMDD')
  const podTime = field(header, 'POTIM')
  const deliveredAt = podDate && /^\d{6}$/.test(podTime) && podTime !== '000000' ? `${podDate}T${podTime.slice(0, 2)}:${podTime.slice(2, 4)}:${podTime.slice(4)}` : podDate
  if (issues.list.length) return []

  const events: InboundEvent[] = []
  for (const [order, perSku] of lines) {
    events.push({
      type: 'order.shipped',
      externalId: order,
      sourceVersion: 0,
      document: {
        ...(carrier ? { carrier } : {}),
        ...(trackingNumber ? { trackingNumber } : {}),
        lines: [...perSku].map(([sku, quantity]) => ({ sku, quantity })),
      },
    })
    if (deliveredAt) events.push({ type: 'order.delivered', externalId: order, sourceVersion: 0, document: { at: deliveredAt } })
  }
  return events
}

function invoicEvents(idoc: XmlNode, at: string, issues: Issues): InboundEvent[] {
  const header = segments(idoc, 'E1EDK01')[0]
  if (!header) {
    issues.add(`${at}.E1EDK01`, 'the header segment E1EDK01 is required')
    return []
  }
  const references = segments(idoc, 'E1EDK02')
  const invoiceNumber = field(header, 'BELNR') || field(qualified(references, 'QUALF', '009')?.segment, 'BELNR')
  if (invoiceNumber === '') issues.add(`${at}.E1EDK01.BELNR`, 'the invoice number is required (E1EDK01 BELNR or E1EDK02 qualifier 009)')
  if (field(header, 'BSART') === 'CRME') issues.add(`${at}.E1EDK01.BSART`, 'is CRME, a credit memo; orderbridge takes invoices only')

  const totals = segments(idoc, 'E1EDS01')
  const billed = qualified(totals, 'SUMID', '011')
  const amount = billed ? field(billed.segment, 'SUMME') : ''
  const amountPath = billed ? `${at}.E1EDS01[${billed.index}].SUMME` : `${at}.E1EDS01[SUMID=011].SUMME`
  if (amount === '') issues.add(amountPath, 'the billed value (E1EDS01 qualifier 011) is required')
  else if (!isDecimalString(amount) || compareDecimals(amount, '0') < 0) issues.add(amountPath, `"${amount.slice(0, 20)}" is not an amount (a decimal such as 1190.00)`)
  const currency = field(header, 'CURCY') || (billed ? field(billed.segment, 'WAERQ') : '')
  if (!/^[A-Z]{3}$/.test(currency)) issues.add(`${at}.E1EDK01.CURCY`, currency === '' ? 'the currency is required' : `"${currency.slice(0, 10)}" is not an ISO currency code`)

  const due = qualified(segments(idoc, 'E1EDK03'), 'IDDAT', '028')
  const dueDate = due ? isoDate(field(due.segment, 'DATUM')) : undefined
  if (due && dueDate === null) issues.add(`${at}.E1EDK03[${due.index}].DATUM`, 'the due date must be a date YYYYMMDD')

  let order = orderKey(field(qualified(references, 'QUALF', '001')?.segment, 'BELNR'), field(qualified(references, 'QUALF', '002')?.segment, 'BELNR'))
  if (!order) {
    // Collective billing documents carry the order on each item (E1EDP02).
    const itemOrders = new Set<string>()
    for (const item of segments(idoc, 'E1EDP01')) {
      const itemReferences = segments(item, 'E1EDP02')
      const key = orderKey(field(qualified(itemReferences, 'QUALF', '001')?.segment, 'BELNR'), field(qualified(itemReferences, 'QUALF', '002')?.segment, 'BELNR'))
      if (key) itemOrders.add(key)
    }
    if (itemOrders.size > 1) issues.add(`${at}.E1EDP01`, `bills ${itemOrders.size} orders; orderbridge takes an invoice for one order (E1EDK02 qualifier 001)`)
    order = [...itemOrders][0]
  }
  if (!order) issues.add(`${at}.E1EDK02`, 'names no order: E1EDK02 qualifier 001 (our reference) or 002 (the sales order) is required')
  if (issues.list.length) return []
  return [
    {
      type: 'order.invoiced',
      externalId: order!,
      sourceVersion: 0,
      document: { invoiceNumber, amount, currency, ...(dueDate ? { dueDate } : {}) },
    },
  ]
}

function ordrspEvents(idoc: XmlNode, at: string, issues: Issues): InboundEvent[] {
  const header = segments(idoc, 'E1EDK01')[0]
  if (!header) {
    issues.add(`${at}.E1EDK01`, 'the header segment E1EDK01 is required')
    return []
  }
  const references = segments(idoc, 'E1EDK02')
  const salesOrder = field(qualified(references, 'QUALF', '002')?.segment, 'BELNR') || field(header, 'BELNR')
  if (!orderKey(field(qualified(references, 'QUALF', '001')?.segment, 'BELNR'), salesOrder)) {
    issues.add(`${at}.E1EDK02`, 'names no order: E1EDK02 qualifier 001 (our reference) or the sales order number is required')
  }
  // orderbridge has no event for a confirmation: checked, acknowledged, nothing stored.
  return []
}

// ---------------------------------------------------------------------------------------------
// One delivery

/**
 * The IDoc documents of a body: the root element (the basic type or the extension's name), or the
 * one element in a SOAP envelope's body.
 */
function idocRoot(document: XmlNode): { root: XmlNode; at: string; soap: boolean } {
  const envelope = xmlChild(document, 'Envelope')
  let container: XmlValue | undefined = document
  let soap = false
  if (envelope !== undefined) {
    container = xmlChild(envelope, 'Body')
    soap = true
    if (!isNode(container)) throw new WebhookRejected(400, 'not_an_idoc', 'the SOAP envelope has no Body')
  }
  const names = Object.keys(container as XmlNode).filter((key) => !key.startsWith('@') && key !== '#text')
  if (names.length !== 1) throw new WebhookRejected(400, 'not_an_idoc', soap ? 'the SOAP body must hold exactly one IDoc document' : 'the body must be one IDoc document')
  const root = xmlChild(container, names[0]!)
  if (!isNode(root)) throw new WebhookRejected(400, 'not_an_idoc', `${names[0]} holds no IDOC element`)
  return { root, at: names[0]!, soap }
}

/**
 * Reads every IDoc of a verified body (one, or a packet of several) into events. One wrong IDoc
 * refuses the whole delivery, with every problem found and its path.
 */
export function idocEvents(raw: Buffer | string, settings: SapIdocSettings): SapIdocDelivery {
  const inbound = settings.inbound
  if (!inbound) throw new WebhookRejected(401, 'inbound_not_configured', 'this connection is not configured to receive IDocs (settings inbound)')
  let document: XmlNode
  try {
    document = parseXml(raw, { arrays: repeatable })
  } catch (err) {
    if (err instanceof XmlParseError) throw new WebhookRejected(400, err.code === 'doctype' ? 'xml_declarations_refused' : 'malformed_xml', err.message)
    throw err
  }
  const { root, at: rootName, soap } = idocRoot(document)
  const idocs = segments(root, 'IDOC')
  if (idocs.length === 0) throw new WebhookRejected(400, 'not_an_idoc', `${rootName} holds no IDOC element`)

  const issues = new Issues()
  const events: SapIdocDelivery['events'] = []
  const received: ReceivedIdoc[] = []
  const seen = new Set<string>()
  for (const [index, idoc] of idocs.entries()) {
    const at = idocs.length > 1 ? `IDOC[${index}]` : 'IDOC'
    if (xmlAttr(idoc, 'BEGIN') !== '1') issues.add(`${at}.@BEGIN`, 'must be 1')
    const control = segments(idoc, 'EDI_DC40')[0]
    if (!control) {
      issues.add(`${at}.EDI_DC40`, 'the control record is required')
      continue
    }
    const docnumText = field(control, 'DOCNUM')
    const docnum = /^\d{1,16}$/.test(docnumText) ? docnumText.padStart(16, '0') : undefined
    if (!docnum) issues.add(`${at}.EDI_DC40.DOCNUM`, 'the IDoc number (up to 16 digits) is required')
    else if (seen.has(docnum)) issues.add(`${at}.EDI_DC40.DOCNUM`, `IDoc ${docnum} occurs twice in the delivery`)
    if (docnum) seen.add(docnum)
    const direction = field(control, 'DIRECT')
    if (direction !== '' && direction !== '1') issues.add(`${at}.EDI_DC40.DIRECT`, 'must be 1: an IDoc SAP sends out')
    const sender = field(control, 'SNDPRN')
    if (sender !== '' && sender !== settings.controlRecord.receiverPartner) {
      issues.add(`${at}.EDI_DC40.SNDPRN`, `${sender} is not the SAP system of this connection (controlRecord.receiverPartner ${settings.controlRecord.receiverPartner})`)
    }
    const messageType = field(control, 'MESTYP')
    if (!(inboundMessageTypes as readonly string[]).includes(messageType)) {
      issues.add(`${at}.EDI_DC40.MESTYP`, `message type ${messageType || '(none)'} is not one orderbridge reads (${inboundMessageTypes.join(', ')})`)
      continue
    }
    const type = messageType as InboundMessageType
    if (!inbound.messageTypes.includes(type)) {
      issues.add(`${at}.EDI_DC40.MESTYP`, `this connection does not accept ${type} (settings inbound.messageTypes: ${inbound.messageTypes.join(', ')})`)
      continue
    }
    const basicType = field(control, 'IDOCTYP')
    if (!basicTypes[type].test(basicType)) issues.add(`${at}.EDI_DC40.IDOCTYP`, `basic type ${basicType || '(none)'} does not carry ${type}`)
    // Each IDoc's segments are checked on their own; any problem anywhere refuses the delivery below.
    const own = new Issues()
    const found = type === 'DESADV' ? desadvEvents(idoc, at, inbound, own) : type === 'INVOIC' ? invoicEvents(idoc, at, own) : ordrspEvents(idoc, at, own)
    issues.list.push(...own.list)
    if (issues.list.length > 0 || !docnum) continue
    // The IDoc number is what SAP repeats when it sends the IDoc again; a second event of one IDoc gets a suffix.
    found.forEach((event, n) => events.push({ ...event, eventId: n === 0 ? docnum : `${docnum}:${n + 1}` }))
    received.push({ docnum, messageType: type, events: found.length })
  }
  if (issues.list.length) {
    throw new WebhookRejected(422, 'invalid_idoc', `the IDoc does not match what this connection accepts: ${issues.list.length === 1 ? `${issues.list[0]!.path}: ${issues.list[0]!.message}` : `${issues.list.length} problems`}`, issues.list)
  }
  return { events, idocs: received, soap }
}

/** The connector's `customWebhooks.receive`: authenticate, then read. */
export function receiveSapIdocDelivery(delivery: IncomingDelivery<SapIdocSettings, SapIdocSecrets>): SapIdocDelivery {
  const inbound = delivery.settings.inbound
  if (!inbound) throw new WebhookRejected(401, 'inbound_not_configured', 'this connection is not configured to receive IDocs (settings inbound), so no delivery can be verified')
  verifyInboundCredentials(delivery.headers, inbound, delivery.secrets)
  return idocEvents(delivery.raw, delivery.settings)
}

/** 200 with the IDoc numbers taken: in a SOAP envelope when the IDoc came in one, else as XML. */
export function acknowledgeSapIdocDelivery(delivery: ReceivedDelivery): WebhookAnswer {
  const sap = delivery as Partial<SapIdocDelivery>
  const idocs = (sap.idocs ?? []).map((idoc) => ({ '@DOCNUM': idoc.docnum, '@MESTYP': idoc.messageType, '@events': idoc.events }))
  const body = { IdocAcknowledgement: { '@xmlns': 'urn:orderbridge:sap-idoc', Idoc: idocs } }
  // An XML-HTTP port reads only the status; PI/PO and Cloud Integration expect an envelope for an envelope.
  return { contentType: 'text/xml; charset=utf-8', body: sap.soap ? soapEnvelope(body) : buildXml(body) }
}

/**
 * A SOAP 1.1 fault (what PI/PO and Cloud Integration show in their message monitor, readable in a
 * port's log too): the message, the code, and each problem with its path in the IDoc.
 */
export function refuseSapIdocDelivery(rejection: WebhookRejected): WebhookAnswer {
  return {
    contentType: 'text/xml; charset=utf-8',
    body: soapEnvelope({
      'soapenv:Fault': {
        faultcode: rejection.status === 401 ? 'soapenv:Client.Authentication' : 'soapenv:Client',
        faultstring: rejection.message,
        detail: {
          IdocRefusal: {
            '@xmlns': 'urn:orderbridge:sap-idoc',
            code: rejection.code,
            issue: rejection.details.map((detail) => ({ '@path': detail.path, '#text': detail.message })),
          },
        },
      },
    }),
  }
}
