/**
 * An SAP system's IDoc inbound on loopback, for tests and the demo: the SOAP IDoc service
 * (`POST /sap/bc/srt/idoc?sap-client=…`, the IDoc inside a SOAP 1.1 envelope, answered with
 * `idocAssign` carrying the transfer id and the IDoc number, or a SOAP fault) and the IDoc XML
 * service (`POST /sap/bc/idoc_xml?sap-client=…`, answered 200 with the IDoc number in a
 * `SapIDocDbId` header as a Cloud Integration flow sets it, or with nothing), both behind HTTP Basic
 * authentication. It checks the XML as SAP's inbound does before it takes an IDoc: no DTD, the
 * control record (inbound, ORDERS05, this system as receiver), segments known to ORDERS05 in their
 * definition order, each with SEGMENT="1". Taken IDocs are "processed" at once: status 53 with a
 * sales order number for ORDERS, or for an ORDCHG that finds its order; 51 otherwise; 56 when no
 * inbound partner profile exists for the sender. An ORDCHG whose header action is 003 deletes the
 * order it finds by sales order number (E1EDK02 002) or by purchase order number and sold-to party,
 * unless it was delivered. Like SAP's SOAP IDoc namespace, the SOAP service receives an IDoc once
 * per message id (EDI_DC40 ARCKEY, `urn:sap.com:msgid=…`); the IDoc XML service has no such check.
 * A status service answers like an OData v2 Gateway service over the IDoc control records.
 *
 * Outbound, it plays SAP's XML-HTTP port: `ship`, `proofOfDelivery`, `invoice` and `confirm` build
 * DESADV (DELVRY07), INVOIC (INVOIC02) and ORDRSP (ORDERS05) IDocs from the orders it holds and POST
 * them, one at a time and in order, to the webhook target (bare IDoc XML or SOAP, HTTP Basic or a
 * token header), retrying after a network error, 408, 429 or 5xx with the same DOCNUM and giving up
 * after another 4xx. Faults are scriptable. It does not log.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { XmlParseError, addDecimals, asArray, buildXml, isDecimalString, parseXml, soapFault, xmlAttr, xmlChild, xmlText, type XmlBuildNode, type XmlNode, type XmlValue } from '../../src/connector-kit/index.ts'
import { ediDc40Fields, idocSoapNamespace, messageIdPrefix, orders05Segments, orders05TopSegments } from './idoc.ts'

export interface SimulatedIdoc {
  /** The IDoc number this system assigned (16 digits). */
  docnum: string
  /** The DOCNUM the sender wrote (the transfer id). */
  transferId: string
  messageType: string
  sender: string
  /** E1EDK02 qualifier 001: the customer's purchase order number. */
  belnr: string
  soldTo: string
  /** E1EDK01 ACTION, when given (003 deletes the order). */
  action?: string
  /** EDI_DC40 ARCKEY: the message id the SOAP inbound receives once. */
  messageId?: string
  /** 53 application document posted, 51 not posted, 56 no partner profile. */
  status: '53' | '51' | '56'
  /** The sales order it created or changed. */
  salesOrder?: string
  statusText: string
  /** How it arrived. */
  transport: 'soap' | 'idoc-xml'
  /** The IDOC element as parsed. */
  idoc: XmlNode
  xml: string
}

export interface SapIdocFaultControl {
  /** The next `count` IDoc posts answer `status` (an HTML page, a SOAP fault, or the body given) and take nothing. */
  failNext(count: number, status: number, options?: FailureOptions): void
  /** The next `count` IDocs are taken, then the connection drops before the answer. */
  commitThenDrop(count: number): void
  /** The status service answers this status (default 503) until reset. */
  statusUnavailable(status?: number): void
  delayMs(ms: number): void
  reset(): void
}

export interface FailureOptions {
  headers?: Record<string, string>
  soapFault?: { code: 'Client' | 'Server'; message: string }
  /** A body of your own, sent as `contentType` (default text/xml). */
  body?: string
  contentType?: string
}

export interface SapIdocSimulator {
  url: string
  /** The path of the OData status service, `{reference}` where the BELNR goes, for `statusLookup.path`. */
  statusPath: string
  idocs(): SimulatedIdoc[]
  /** Sales orders created from ORDERS IDocs, by purchase order number. */
  salesOrdersFor(belnr: string): string[]
  requests(): { method: string; path: string; authorized: boolean }[]
  /** A sales order this system holds, by its number (VBELN, 10 digits). */
  salesOrder(number: string): SimulatedSalesOrder | undefined
  /**
   * Posts goods issue for the order (all of it, or the `lines` given by item POSEX) and sends the
   * DESADV (DELVRY07) to the webhook target; with `proofOfDelivery`, the delivery carries its POD
   * date (PODAT/POTIM) too.
   */
  ship(order: string, options?: ShipOptions): OutboundIdoc
  /** The proof of delivery for a delivery shipped before: its DESADV again, with PODAT/POTIM. */
  proofOfDelivery(delivery: string, pod: { date: string; time?: string }): OutboundIdoc
  /** Bills the order and sends the INVOIC (INVOIC02): net value from the order, plus `tax`. */
  invoice(order: string, options?: InvoiceOptions): OutboundIdoc & { invoiceNumber: string; amount: string }
  /** Sends the order confirmation (ORDRSP, ORDERS05). */
  confirm(order: string): OutboundIdoc
  /** Sends an IDoc sent before again, under the same DOCNUM (as BD87 or WE19 would). */
  resend(docnum: string): OutboundIdoc
  setWebhookTarget(target: SapWebhookTarget | undefined): void
  /** Every outbound IDoc, with how its delivery went. */
  webhookDeliveries(): OutboundIdoc[]
  /** Resolves when every IDoc queued so far was delivered or given up. */
  flushWebhooks(): Promise<void>
  faults: SapIdocFaultControl
  close(): Promise<void>
}

export interface SimulatedSalesOrder {
  number: string
  belnr: string
  soldTo: string
  currency: string
  items: { posex: string; material: string; quantity: string; unit: string; netValue?: string }[]
  /** The order's net value (ORDERS E1EDS01 002, else the sum of the items' NETWR). */
  netValue: string
  status: 'open' | 'deleted'
  deliveries: string[]
  invoices: string[]
}

export interface ShipOptions {
  carrier?: string
  trackingNumber?: string
  /** Partial delivery: quantity per item (POSEX of the order); default every item in full. */
  lines?: { posex: string; quantity: string }[]
  proofOfDelivery?: { date: string; time?: string }
}

export interface InvoiceOptions {
  /** Output tax added to the net value (a decimal string; default "0.00"). */
  tax?: string
  /** YYYYMMDD; default 30 days after the billing date. */
  dueDate?: string
}

/** How SAP authenticates at the receiver: an HTTP port's user, or a header a middleware adds. */
export type SapWebhookAuthentication = { type: 'basic'; username: string; password: string } | { type: 'header'; name: string; value: string }

export interface SapWebhookTarget {
  url: string
  authentication: SapWebhookAuthentication
  /** idoc-xml (default): the bare IDoc XML, as an XML-HTTP port sends it; soap: in a SOAP 1.1 envelope. */
  format?: 'idoc-xml' | 'soap'
  /** Default application/xml for idoc-xml, text/xml for soap. */
  contentType?: string
}

export interface OutboundIdoc {
  docnum: string
  messageType: 'DESADV' | 'INVOIC' | 'ORDRSP'
  /** The sales order, delivery or invoice it is about. */
  document: string
  xml: string
  /** pending, delivered (2xx), failed (a 4xx, still no 2xx after the retries, or no target to send to). */
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  lastHttpStatus?: number
  /** The receiver's last answer (up to 4 KiB). */
  lastAnswer?: string
}

export interface SapIdocSimulatorOptions {
  port?: number
  host?: string
  username: string
  password: string
  /** The SAP client; requests must name it in sap-client. Default 100. */
  client?: string
  /** This system's logical system (RCVPRN) and port (RCVPOR). */
  logicalSystem: string
  receiverPort: string
  /** Senders with an inbound partner profile for ORDERS/ORDCHG; others get status 56. */
  partnerProfiles: readonly string[]
  /** How the IDoc XML service answers a taken IDoc. Default `header`. */
  idocXmlAnswer?: 'header' | 'empty'
  /** Where outbound IDocs (DESADV, INVOIC, ORDRSP) go; without one they are built but not sent. */
  webhookTarget?: SapWebhookTarget
  /** The receiver's port and partner number in outbound control records (RCVPOR, RCVPRN). Default ORDERBRIDG. */
  outboundPartner?: string
  /** Retries of an outbound IDoc after a network error, 408, 429 or 5xx (default 3), and the first delay (default 100 ms, doubling). */
  webhookRetries?: number
  webhookRetryDelayMs?: number
}

const statusServicePath = '/sap/opu/odata/sap/ZIDOC_STATUS_SRV/IdocStatusSet'

class Refused extends Error {
  readonly kind: 'client' | 'auth'
  constructor(message: string, kind: 'client' | 'auth' = 'client') {
    super(message)
    this.kind = kind
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/**
 * The names of the segments under `parentTag`'s content, in document order, for each segment
 * element (one with a SEGMENT attribute) and the IDOC element: parsed objects do not keep the
 * order of different elements, so the order check reads the tags.
 */
function segmentSequences(xml: string): Map<string, string[][]> {
  const sequences = new Map<string, string[][]>()
  const stack: { name: string; children: string[] }[] = []
  const tag = /<(\/)?([A-Za-z_][\w.:-]*)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/)?>/g
  for (let match = tag.exec(xml); match; match = tag.exec(xml)) {
    const [, closing, rawName, attributes = '', selfClosing] = match
    const name = rawName!.replace(/^.*:/, '')
    const isSegment = name === 'IDOC' || /\bSEGMENT\s*=/.test(attributes)
    if (closing) {
      const top = stack.at(-1)
      if (top && top.name === name) {
        stack.pop()
        const list = sequences.get(name) ?? []
        list.push(top.children)
        sequences.set(name, list)
      }
      continue
    }
    if (!isSegment) continue
    stack.at(-1)?.children.push(name)
    if (!selfClosing) stack.push({ name, children: [] })
  }
  return sequences
}

function checkOrder(parent: string, children: readonly string[], definition: readonly string[]): void {
  let last = -1
  for (const child of children) {
    if (child === 'EDI_DC40' && parent === 'IDOC') continue
    const index = definition.indexOf(child)
    if (index === -1) throw new Refused(`EDI: segment ${child} is not defined under ${parent} in basic type ORDERS05`)
    if (index < last) throw new Refused(`EDI: syntax error in IDoc: segment ${child} is out of sequence under ${parent}`)
    last = index
  }
}

function text(value: XmlValue | undefined): string {
  return xmlText(value) ?? ''
}

function segments(node: XmlValue | undefined, name: string): XmlValue[] {
  return asArray(xmlChild(node, name))
}

/** The sales order an ORDERS IDoc makes: items with material and quantity, currency and net value. */
function salesOrderOf(number: string, idoc: XmlNode, belnr: string, soldTo: string): SimulatedSalesOrder {
  const items = segments(idoc, 'E1EDP01').map((item, index) => {
    const ids = segments(item, 'E1EDP19')
    const material = text(xmlChild(ids.find((id) => text(xmlChild(id, 'QUALF')) === '002'), 'IDTNR')) || text(xmlChild(item, 'MATNR')) || text(xmlChild(ids[0], 'IDTNR'))
    const netValue = text(xmlChild(item, 'NETWR'))
    return {
      posex: text(xmlChild(item, 'POSEX')) || String((index + 1) * 10).padStart(6, '0'),
      material,
      quantity: text(xmlChild(item, 'MENGE')),
      unit: text(xmlChild(item, 'MENEE')) || 'PCE',
      ...(isDecimalString(netValue) ? { netValue } : {}),
    }
  })
  const total = text(xmlChild(segments(idoc, 'E1EDS01').find((sum) => text(xmlChild(sum, 'SUMID')) === '002'), 'SUMME'))
  const netValue = isDecimalString(total) ? total : addDecimals(['0.00', ...items.flatMap((item) => (item.netValue ? [item.netValue] : []))])
  return { number, belnr, soldTo, currency: text(xmlChild(segments(idoc, 'E1EDK01')[0], 'CURCY')), items, netValue, status: 'open', deliveries: [], invoices: [] }
}

/** A segment as SAP writes it: SEGMENT="1", empty fields left out. */
function segment(fields: Record<string, string | undefined | XmlBuildNode | XmlBuildNode[]>): XmlBuildNode {
  const node: XmlBuildNode = { '@SEGMENT': '1' }
  for (const [name, value] of Object.entries(fields)) if (value !== undefined && value !== '') node[name] = value
  return node
}

const sapDate = (at: Date) => at.toISOString().slice(0, 10).replaceAll('-', '')
const sapTime = (at: Date) => at.toISOString().slice(11, 19).replaceAll(':', '')

/**
 * Starts the simulator.
 *
 * @example
 * const sap = await startSapIdocSimulator({ username: 'IDOC_USER', password: 'secret', logicalSystem: 'S4HCLNT100', receiverPort: 'SAPS4H', partnerProfiles: ['ORDERBRIDG'] })
 * // settings: { baseUrl: sap.url, sapClient: '100', statusLookup: { path: sap.statusPath }, … }
 */
export async function startSapIdocSimulator(options: SapIdocSimulatorOptions): Promise<SapIdocSimulator> {
  const client = options.client ?? '100'
  const expected = digest(`Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`)
  const idocs: SimulatedIdoc[] = []
  const salesOrders = new Map<string, string[]>()
  const log: { method: string; path: string; authorized: boolean }[] = []
  let nextIdoc = 427_380
  let nextOrder = 12_000
  let failures: { remaining: number; status: number; options: FailureOptions }[] = []
  let drops = 0
  let statusFailure: number | undefined
  let delay = 0
  const orders = new Map<string, SimulatedSalesOrder>()
  const byMessageId = new Map<string, SimulatedIdoc>()
  const outbound: OutboundIdoc[] = []
  const builtIdocs = new Map<string, { basicType: string; idoc: XmlBuildNode }>()
  const deliveries = new Map<string, { order: string; lines: { item: SimulatedSalesOrder['items'][number]; quantity: string }[]; carrier?: string; trackingNumber?: string }>()
  let target = options.webhookTarget
  let chain: Promise<void> = Promise.resolve()
  let closing = false
  let nextDelivery = 80_000_000
  let nextInvoice = 90_000_000
  const partner = options.outboundPartner ?? 'ORDERBRIDG'

  function take(xml: string, transport: 'soap' | 'idoc-xml'): { idoc: SimulatedIdoc; repeated: boolean } {
    let document: XmlNode
    try {
      document = parseXml(xml)
    } catch (err) {
      throw new Refused(err instanceof XmlParseError && err.code === 'doctype' ? 'XML documents with a DTD are not accepted' : 'the request is not well-formed XML')
    }
    let root: XmlValue | undefined = document
    if (transport === 'soap') {
      const body = xmlChild(xmlChild(document, 'Envelope'), 'Body')
      if (body === undefined || typeof body !== 'object' || Array.isArray(body)) throw new Refused('the request is not a SOAP 1.1 envelope with a body')
      root = body
    }
    const rootNames = typeof root === 'object' && root !== null && !Array.isArray(root) ? Object.keys(root) : []
    if (rootNames.length !== 1) throw new Refused('exactly one IDoc document is expected')
    const idoc = xmlChild(xmlChild(root, rootNames[0]!), 'IDOC')
    if (idoc === undefined || typeof idoc !== 'object' || Array.isArray(idoc)) throw new Refused(`${rootNames[0]} has no single IDOC element`)
    if (xmlAttr(idoc, 'BEGIN') !== '1') throw new Refused('IDOC must have BEGIN="1"')
    const control = xmlChild(idoc, 'EDI_DC40')
    if (control === undefined || Array.isArray(control) || xmlAttr(control, 'SEGMENT') !== '1') throw new Refused('the control record EDI_DC40 (SEGMENT="1") is missing')
    for (const key of Object.keys(control)) if (!key.startsWith('@') && !(ediDc40Fields as readonly string[]).includes(key)) throw new Refused(`EDI_DC40 has no field ${key}`)
    const field = (name: string) => text(xmlChild(control, name))
    if (field('TABNAM') !== 'EDI_DC40') throw new Refused('EDI_DC40-TABNAM must be EDI_DC40')
    if (field('DIRECT') !== '2') throw new Refused('EDI_DC40-DIRECT must be 2 (inbound)')
    if (field('IDOCTYP') !== 'ORDERS05') throw new Refused(`basic type ${field('IDOCTYP') || '(none)'} is not ORDERS05`)
    const messageType = field('MESTYP')
    if (messageType !== 'ORDERS' && messageType !== 'ORDCHG') throw new Refused(`message type ${messageType || '(none)'} is not ORDERS or ORDCHG`)
    if (!/^\d{1,16}$/.test(field('DOCNUM'))) throw new Refused('EDI_DC40-DOCNUM must be up to 16 digits')
    if (field('MANDT') !== '' && field('MANDT') !== client) throw new Refused(`EDI_DC40-MANDT ${field('MANDT')} is not client ${client}`)
    if (field('RCVPRN') !== options.logicalSystem || field('RCVPOR') !== options.receiverPort) {
      throw new Refused(`receiver partner ${field('RCVPRN')} / port ${field('RCVPOR')} is not this system (${options.logicalSystem} / ${options.receiverPort})`)
    }
    for (const name of ['SNDPOR', 'SNDPRT', 'SNDPRN', 'RCVPRT', 'CREDAT', 'CRETIM']) if (field(name) === '') throw new Refused(`EDI_DC40-${name} is required`)

    // Segment structure: every element under IDOC or a segment is a field or a known child segment.
    const checkSegment = (name: string, node: XmlValue) => {
      if (typeof node !== 'object' || Array.isArray(node) || xmlAttr(node, 'SEGMENT') !== '1') throw new Refused(`segment ${name} must have SEGMENT="1"`)
      const definition = orders05Segments[name]!
      for (const [key, value] of Object.entries(node)) {
        if (key.startsWith('@')) continue
        if (orders05Segments[key] !== undefined) {
          if (!definition.children?.includes(key)) throw new Refused(`EDI: segment ${key} is not defined under ${name} in basic type ORDERS05`)
          for (const child of asArray(value)) checkSegment(key, child)
        } else if (typeof value !== 'string') {
          throw new Refused(`EDI: segment ${key} is not defined under ${name} in basic type ORDERS05`)
        } else if (!definition.fields.includes(key)) {
          throw new Refused(`EDI: field ${key} does not exist in segment ${name}`)
        }
      }
    }
    for (const [key, value] of Object.entries(idoc)) {
      if (key.startsWith('@') || key === 'EDI_DC40') continue
      if (!(orders05TopSegments as readonly string[]).includes(key)) throw new Refused(`EDI: segment ${key} is not defined in basic type ORDERS05`)
      for (const node of asArray(value)) checkSegment(key, node)
    }
    for (const [parent, lists] of segmentSequences(xml)) {
      const definition = parent === 'IDOC' ? orders05TopSegments : (orders05Segments[parent]?.children ?? [])
      for (const children of lists) checkOrder(parent, children, definition)
    }
    const header = segments(idoc, 'E1EDK01')
    if (header.length !== 1) throw new Refused('EDI: segment E1EDK01 is mandatory and occurs once')
    const references = segments(idoc, 'E1EDK02')
    const belnr = text(xmlChild(references.find((s) => text(xmlChild(s, 'QUALF')) === '001'), 'BELNR'))
    const orderNumber = text(xmlChild(references.find((s) => text(xmlChild(s, 'QUALF')) === '002'), 'BELNR'))
    const soldTo = text(xmlChild(segments(idoc, 'E1EDKA1').find((s) => text(xmlChild(s, 'PARVW')) === 'AG'), 'PARTN'))
    const action = text(xmlChild(header[0], 'ACTION'))
    const items = segments(idoc, 'E1EDP01')

    // The SOAP IDoc namespace receives each IDoc once per message id (EDI_DC40 ARCKEY, SAP message EA728).
    const messageId = field('ARCKEY')
    if (transport === 'soap' && messageId !== '') {
      if (!messageId.startsWith(messageIdPrefix)) throw new Refused('IDoc SOAP Namespace - Violation (SOAP_MSGID_PREFIX_INVALID)')
      const earlier = byMessageId.get(messageId)
      if (earlier) return { idoc: earlier, repeated: true }
    }

    nextIdoc += 1
    const taken: SimulatedIdoc = {
      docnum: String(nextIdoc).padStart(16, '0'),
      transferId: field('DOCNUM'),
      messageType,
      sender: field('SNDPRN'),
      belnr,
      soldTo,
      ...(action ? { action } : {}),
      ...(messageId ? { messageId } : {}),
      status: '53',
      statusText: '',
      transport,
      idoc: idoc as XmlNode,
      xml,
    }
    // What IDOC_INPUT_ORDERS / IDOC_INPUT_ORDCHG would make of it, at once.
    const failed = (statusText: string) => Object.assign(taken, { status: '51', statusText })
    if (!options.partnerProfiles.includes(taken.sender)) {
      Object.assign(taken, { status: '56', statusText: `EDI: Partner profile not available (${taken.sender}, ${messageType})` })
    } else if (messageType === 'ORDCHG' && action === '003') {
      // Header action 003: the whole sales document is deleted, found by its number (E1EDK02 002)
      // or by purchase order number under the sold-to party.
      const order = orderNumber ? orders.get(orderNumber.padStart(10, '0')) : [...orders.values()].find((o) => o.belnr === belnr && o.soldTo === soldTo)
      const named = orderNumber || belnr
      if (!orderNumber && (!belnr || !soldTo)) failed('Sales document cannot be identified: sales order number (E1EDK02 002), or purchase order number and sold-to party, missing')
      else if (!order) failed(`Sales document ${named} does not exist`)
      else if (order.status === 'deleted') failed(`Sales document ${Number(order.number)} is not in the database or has been archived`)
      else if (order.deliveries.length > 0) failed(`Sales document ${Number(order.number)} cannot be deleted: subsequent documents exist`)
      else {
        order.status = 'deleted'
        Object.assign(taken, { salesOrder: order.number, statusText: `Standard Order ${Number(order.number)} has been deleted` })
      }
    } else if (!belnr || !soldTo || items.length === 0) {
      failed('Sales document was not changed: purchase order number, sold-to party or items missing')
    } else if (messageType === 'ORDERS') {
      nextOrder += 1
      const number = String(nextOrder).padStart(10, '0')
      salesOrders.set(belnr, [...(salesOrders.get(belnr) ?? []), number])
      orders.set(number, salesOrderOf(number, idoc as XmlNode, belnr, soldTo))
      Object.assign(taken, { salesOrder: number, statusText: `Standard Order ${nextOrder} has been saved` })
    } else {
      const number = salesOrders.get(belnr)?.[0]
      if (!number) failed(`No sales order found for purchase order number ${belnr}`)
      else if (orders.get(number)?.status === 'deleted') failed(`Sales document ${Number(number)} is not in the database or has been archived`)
      else Object.assign(taken, { salesOrder: number, statusText: `Standard Order ${Number(number)} has been changed` })
    }
    idocs.push(taken)
    if (transport === 'soap' && messageId !== '') byMessageId.set(messageId, taken)
    return { idoc: taken, repeated: false }
  }

  // ---- Outbound: what SAP sends back (DESADV, INVOIC, ORDRSP), through an XML-HTTP port ----

  function orderNamed(number: string): SimulatedSalesOrder {
    const order = orders.get(number.padStart(10, '0'))
    if (!order) throw new Error(`no sales order ${number}`)
    if (order.status === 'deleted') throw new Error(`sales order ${number} is deleted`)
    return order
  }

  /** EDI_DC40 of an outbound IDoc (DIRECT 1), from this system to orderbridge's logical system. */
  function outboundControl(docnum: string, basicType: string, messageType: string, now: Date): XmlBuildNode {
    return segment({
      TABNAM: 'EDI_DC40',
      MANDT: client,
      DOCNUM: docnum,
      DOCREL: '758',
      STATUS: '30',
      DIRECT: '1',
      OUTMOD: '2',
      IDOCTYP: basicType,
      MESTYP: messageType,
      SNDPOR: options.receiverPort,
      SNDPRT: 'LS',
      SNDPRN: options.logicalSystem,
      RCVPOR: partner,
      RCVPRT: 'LS',
      RCVPRN: partner,
      CREDAT: sapDate(now),
      CRETIM: sapTime(now),
      SERIAL: `${sapDate(now)}${sapTime(now)}`,
    })
  }

  async function deliver(idoc: OutboundIdoc, to: SapWebhookTarget): Promise<void> {
    const retries = options.webhookRetries ?? 3
    const retryDelayMs = options.webhookRetryDelayMs ?? 100
    const soap = to.format === 'soap'
    const headers: Record<string, string> = { 'content-type': to.contentType ?? (soap ? 'text/xml; charset=utf-8' : 'application/xml; charset=utf-8') }
    if (to.authentication.type === 'basic') headers.authorization = `Basic ${Buffer.from(`${to.authentication.username}:${to.authentication.password}`).toString('base64')}`
    else headers[to.authentication.name] = to.authentication.value
    const built = builtIdocs.get(idoc.docnum)!
    const body = soap
      ? buildXml({
          'soapenv:Envelope': {
            '@xmlns:soapenv': 'http://schemas.xmlsoap.org/soap/envelope/',
            'soapenv:Header': null,
            'soapenv:Body': { [`urn:${built.basicType}`]: { '@xmlns:urn': idocSoapNamespace, IDOC: built.idoc } },
          },
        })
      : idoc.xml
    for (let attempt = 0; !closing; attempt++) {
      idoc.attempts += 1
      let retryable = true
      try {
        const response = await fetch(to.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5_000) })
        idoc.lastHttpStatus = response.status
        idoc.lastAnswer = (await response.text()).slice(0, 4096)
        if (response.ok) {
          idoc.status = 'delivered'
          return
        }
        retryable = response.status === 408 || response.status === 429 || response.status >= 500
      } catch {
        delete idoc.lastHttpStatus
      }
      if (!retryable || attempt >= retries) break
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs * 2 ** attempt))
    }
    idoc.status = 'failed'
  }

  /** Queues an IDoc for the target, in order; without a target it is kept, not sent. */
  function send(idoc: OutboundIdoc): OutboundIdoc {
    outbound.push(idoc)
    const to = target
    if (to) chain = chain.then(() => deliver(idoc, to))
    else idoc.status = 'failed'
    return idoc
  }

  function outboundIdoc(messageType: OutboundIdoc['messageType'], basicType: string, document: string, segments: XmlBuildNode): OutboundIdoc {
    nextIdoc += 1
    const docnum = String(nextIdoc).padStart(16, '0')
    const idoc: XmlBuildNode = { '@BEGIN': '1', EDI_DC40: outboundControl(docnum, basicType, messageType, new Date()), ...segments }
    builtIdocs.set(docnum, { basicType, idoc })
    const xml = buildXml({ [basicType]: { IDOC: idoc } })
    return send({ docnum, messageType, document, xml, status: 'pending', attempts: 0 })
  }

  function desadv(delivery: string, pod?: { date: string; time?: string }): OutboundIdoc {
    const shipped = deliveries.get(delivery)!
    const order = orders.get(shipped.order)!
    const today = sapDate(new Date())
    return outboundIdoc('DESADV', 'DELVRY07', delivery, {
      E1EDL20: segment({
        VBELN: delivery,
        VSTEL: '1000',
        VKORG: '1000',
        INCO1: 'FCA',
        BOLNR: shipped.trackingNumber,
        PODAT: pod?.date,
        POTIM: pod?.time,
        E1EDL18: [segment({ QUALF: 'ORI' })],
        E1ADRM1: [
          segment({ PARTNER_Q: 'AG', PARTNER_ID: order.soldTo }),
          segment({ PARTNER_Q: 'WE', PARTNER_ID: order.soldTo }),
          ...(shipped.carrier ? [segment({ PARTNER_Q: 'SP', PARTNER_ID: '0000400001', NAME1: shipped.carrier })] : []),
        ],
        E1EDT13: [segment({ QUALF: '006', NTANF: today, ISDD: today })],
        E1EDL24: shipped.lines.map(({ item, quantity }) =>
          segment({
            POSNR: item.posex,
            MATNR: item.material,
            LFIMG: quantity,
            VRKME: item.unit,
            E1EDL41: [segment({ QUALI: '001', BSTNR: order.belnr, POSEX: item.posex })],
            E1EDL43: [segment({ QUALF: 'C', BELNR: order.number, POSNR: item.posex })],
          }),
        ),
      }),
    })
  }

  function ship(number: string, shipOptions: ShipOptions = {}): OutboundIdoc {
    const order = orderNamed(number)
    const lines = shipOptions.lines
      ? shipOptions.lines.map((line) => {
          const item = order.items.find((i) => i.posex === line.posex)
          if (!item) throw new Error(`sales order ${number} has no item ${line.posex}`)
          return { item, quantity: line.quantity }
        })
      : order.items.map((item) => ({ item, quantity: item.quantity }))
    nextDelivery += 1
    const delivery = String(nextDelivery).padStart(10, '0')
    deliveries.set(delivery, { order: order.number, lines, ...(shipOptions.carrier ? { carrier: shipOptions.carrier } : {}), ...(shipOptions.trackingNumber ? { trackingNumber: shipOptions.trackingNumber } : {}) })
    order.deliveries.push(delivery)
    return desadv(delivery, shipOptions.proofOfDelivery)
  }

  function invoice(number: string, invoiceOptions: InvoiceOptions = {}): OutboundIdoc & { invoiceNumber: string; amount: string } {
    const order = orderNamed(number)
    nextInvoice += 1
    const invoiceNumber = String(nextInvoice).padStart(10, '0')
    order.invoices.push(invoiceNumber)
    const now = new Date()
    const billed = sapDate(now)
    const due = invoiceOptions.dueDate ?? sapDate(new Date(now.getTime() + 30 * 86_400_000))
    const tax = invoiceOptions.tax ?? '0.00'
    const amount = addDecimals([order.netValue, tax])
    const idoc = outboundIdoc('INVOIC', 'INVOIC02', invoiceNumber, {
      E1EDK01: segment({ CURCY: order.currency, HWAER: order.currency, ZTERM: 'NT30', BSART: 'INVO', BELNR: invoiceNumber, FKART_RL: 'LR', RECIPNT_NO: order.soldTo, FKTYP: 'L' }),
      E1EDKA1: [segment({ PARVW: 'AG', PARTN: order.soldTo }), segment({ PARVW: 'RE', PARTN: order.soldTo })],
      E1EDK02: [
        segment({ QUALF: '009', BELNR: invoiceNumber, DATUM: billed }),
        segment({ QUALF: '001', BELNR: order.belnr }),
        segment({ QUALF: '002', BELNR: order.number }),
        ...(order.deliveries[0] ? [segment({ QUALF: '012', BELNR: order.deliveries[0] })] : []),
      ],
      E1EDK03: [segment({ IDDAT: '026', DATUM: billed }), segment({ IDDAT: '012', DATUM: billed }), segment({ IDDAT: '028', DATUM: due })],
      E1EDK18: [segment({ QUALF: '001', TAGE: '30', PRZNT: '0', ZTERM_TXT: 'Net 30 days' })],
      E1EDP01: order.items.map((item) =>
        segment({
          POSEX: item.posex,
          MENGE: item.quantity,
          MENEE: item.unit,
          E1EDP02: [segment({ QUALF: '001', BELNR: order.belnr, ZEILE: item.posex }), segment({ QUALF: '002', BELNR: order.number, ZEILE: item.posex })],
          E1EDP19: [segment({ QUALF: '002', IDTNR: item.material })],
          ...(item.netValue ? { E1EDP26: [segment({ QUALF: '003', BETRG: item.netValue })] } : {}),
        }),
      ),
      E1EDS01: [
        segment({ SUMID: '001', SUMME: String(order.items.length) }),
        segment({ SUMID: '010', SUMME: order.netValue, WAERQ: order.currency }),
        segment({ SUMID: '005', SUMME: tax, WAERQ: order.currency }),
        segment({ SUMID: '011', SUMME: amount, WAERQ: order.currency }),
        segment({ SUMID: '012', SUMME: amount, WAERQ: order.currency }),
      ],
    })
    return Object.assign(idoc, { invoiceNumber, amount })
  }

  function confirm(number: string): OutboundIdoc {
    const order = orderNamed(number)
    return outboundIdoc('ORDRSP', 'ORDERS05', order.number, {
      E1EDK01: segment({ CURCY: order.currency, BSART: 'TA', BELNR: order.number }),
      E1EDKA1: [segment({ PARVW: 'AG', PARTN: order.soldTo })],
      E1EDK02: [segment({ QUALF: '001', BELNR: order.belnr }), segment({ QUALF: '002', BELNR: order.number })],
      E1EDP01: order.items.map((item) => segment({ POSEX: item.posex, MENGE: item.quantity, MENEE: item.unit, E1EDP19: [segment({ QUALF: '002', IDTNR: item.material })] })),
      E1EDS01: [segment({ SUMID: '002', SUMME: order.netValue, SUNIT: order.currency })],
    })
  }

  const app = Fastify({ logger: false, forceCloseConnections: true, bodyLimit: 10 * 1024 * 1024 })
  app.addContentTypeParser(['text/xml', 'application/xml', 'application/soap+xml'], { parseAs: 'string' }, (_request, body, done) => done(null, body))

  app.addHook('onRequest', (request, reply, done) => {
    const given = request.headers.authorization
    const authorized = given !== undefined && timingSafeEqual(digest(given), expected)
    log.push({ method: request.method, path: request.url, authorized })
    const proceed = () => {
      if (!authorized) {
        void reply.code(401).header('www-authenticate', `Basic realm="SAP NetWeaver Application Server [S4H/${client}]"`).type('text/html').send('<html><body>401 Unauthorized</body></html>')
        return
      }
      const sapClient = (request.query as Record<string, string | undefined>)['sap-client']
      if (sapClient !== undefined && sapClient !== client) {
        void reply.code(401).type('text/html').send(`<html><body>Client ${sapClient} is not available in this system</body></html>`)
        return
      }
      done()
    }
    if (delay > 0) setTimeout(proceed, delay)
    else proceed()
  })

  const soapAnswer = (idoc: SimulatedIdoc) =>
    '<?xml version="1.0" encoding="utf-8"?><soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Header/><soap-env:Body>' +
    `<n0:idocAssign xmlns:n0="urn:sap-com:document:sap:idoc:soap:messages"><TransferId>${idoc.transferId}</TransferId><DbId>${idoc.docnum}</DbId></n0:idocAssign>` +
    '</soap-env:Body></soap-env:Envelope>'

  function inbound(transport: 'soap' | 'idoc-xml') {
    return (request: FastifyRequest, reply: FastifyReply) => {
      const failure = failures[0]
      if (failure) {
        failure.remaining -= 1
        if (failure.remaining <= 0) failures.shift()
        const { headers = {}, soapFault: fault, body, contentType = 'text/xml; charset=utf-8' } = failure.options
        void reply.code(failure.status).headers(headers)
        if (body !== undefined) return reply.type(contentType).send(body)
        if (fault) return reply.type('text/xml; charset=utf-8').send(soapFault(fault.code, fault.message))
        return reply.type('text/html').send(`<html><body>HTTP ${failure.status}</body></html>`)
      }
      const body = typeof request.body === 'string' ? request.body : ''
      let taken: SimulatedIdoc
      try {
        taken = take(body, transport).idoc
      } catch (err) {
        if (!(err instanceof Refused)) throw err
        if (transport === 'soap') return reply.code(500).type('text/xml; charset=utf-8').send(soapFault('Client', err.message))
        return reply.code(400).type('text/plain').send(err.message)
      }
      if (drops > 0) {
        drops -= 1
        reply.hijack()
        request.raw.socket.destroy()
        return reply
      }
      if (transport === 'soap') return reply.code(200).type('text/xml; charset=utf-8').send(soapAnswer(taken))
      if ((options.idocXmlAnswer ?? 'header') === 'header') void reply.header('SapIDocDbId', taken.docnum)
      return reply.code(200).send()
    }
  }

  app.post('/sap/bc/srt/idoc', inbound('soap'))
  app.post('/sap/bc/idoc_xml', inbound('idoc-xml'))
  app.get('/sap/bc/srt/idoc', (_request, reply) => reply.type('text/html').send('<html><body>SOAP runtime: IDoc inbound (POST only)</body></html>'))
  app.get('/sap/bc/idoc_xml', (_request, reply) => reply.code(405).type('text/html').send('<html><body>405 Method Not Allowed</body></html>'))

  app.get(statusServicePath, (request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply) => {
    if (statusFailure !== undefined) return reply.code(statusFailure).type('text/html').send(`<html><body>HTTP ${statusFailure}</body></html>`)
    const filter = request.query.$filter ?? ''
    const match = /^Belnr eq '((?:[^']|'')*)'$/.exec(filter.trim())
    if (!match) return reply.code(400).send({ error: { code: 'SY/530', message: { lang: 'en', value: `Invalid filter: ${filter}` } } })
    const belnr = match[1]!.replaceAll("''", "'")
    const results = idocs
      .filter((i) => i.belnr === belnr)
      .map((i) => ({
        __metadata: { type: 'ZIDOC_STATUS_SRV.IdocStatus' },
        Docnum: i.docnum,
        Status: i.status,
        Mestyp: i.messageType,
        Idoctp: 'ORDERS05',
        Sndprn: i.sender,
        Belnr: i.belnr,
        Vbeln: i.salesOrder ?? '',
        Statxt: i.statusText,
      }))
    return reply.send({ d: { results } })
  })

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('SAP IDoc simulator is not listening on a TCP port')
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address

  return {
    url: `http://${host}:${address.port}`,
    statusPath: `${statusServicePath}?$filter=Belnr eq '{reference}'&$format=json`,
    idocs: () => idocs.map((i) => structuredClone(i)),
    salesOrdersFor: (belnr) => [...(salesOrders.get(belnr) ?? [])],
    requests: () => log.map((entry) => ({ ...entry })),
    salesOrder: (number) => {
      const order = orders.get(number.padStart(10, '0'))
      return order ? structuredClone(order) : undefined
    },
    ship,
    proofOfDelivery(delivery, pod) {
      if (!deliveries.has(delivery)) throw new Error(`no delivery ${delivery}`)
      return desadv(delivery, pod)
    },
    invoice,
    confirm,
    resend(docnum) {
      const earlier = outbound.find((idoc) => idoc.docnum === docnum)
      if (!earlier) throw new Error(`no outbound IDoc ${docnum}`)
      return send({ docnum, messageType: earlier.messageType, document: earlier.document, xml: earlier.xml, status: 'pending', attempts: 0 })
    },
    setWebhookTarget(next) {
      target = next
    },
    webhookDeliveries: () => outbound.map((idoc) => ({ ...idoc })),
    flushWebhooks: () => chain,
    faults: {
      failNext(count, status, faultOptions = {}) {
        if (count > 0) failures.push({ remaining: count, status, options: faultOptions })
      },
      commitThenDrop(count) {
        drops += Math.max(0, count)
      },
      statusUnavailable(status = 503) {
        statusFailure = status
      },
      delayMs(ms) {
        delay = Math.max(0, ms)
      },
      reset() {
        failures = []
        drops = 0
        statusFailure = undefined
        delay = 0
      },
    },
    close: async () => {
      closing = true
      await app.close()
    },
  }
}
