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
 * inbound partner profile exists for the sender. A status service answers like an OData v2 Gateway
 * service over the IDoc control records. Faults are scriptable. It does not log.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { XmlParseError, asArray, parseXml, soapFault, xmlAttr, xmlChild, xmlText, type XmlNode, type XmlValue } from '../../src/connector-kit/index.ts'
import { ediDc40Fields, orders05Segments, orders05TopSegments } from './idoc.ts'

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
  faults: SapIdocFaultControl
  close(): Promise<void>
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

  function take(xml: string, transport: 'soap' | 'idoc-xml'): SimulatedIdoc {
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
    const belnr = text(xmlChild(segments(idoc, 'E1EDK02').find((s) => text(xmlChild(s, 'QUALF')) === '001'), 'BELNR'))
    const soldTo = text(xmlChild(segments(idoc, 'E1EDKA1').find((s) => text(xmlChild(s, 'PARVW')) === 'AG'), 'PARTN'))
    const items = segments(idoc, 'E1EDP01')

    nextIdoc += 1
    const taken: SimulatedIdoc = {
      docnum: String(nextIdoc).padStart(16, '0'),
      transferId: field('DOCNUM'),
      messageType,
      sender: field('SNDPRN'),
      belnr,
      soldTo,
      status: '53',
      statusText: '',
      transport,
      idoc: idoc as XmlNode,
      xml,
    }
    // What IDOC_INPUT_ORDERS / IDOC_INPUT_ORDCHG would make of it, at once.
    if (!options.partnerProfiles.includes(taken.sender)) {
      Object.assign(taken, { status: '56', statusText: `EDI: Partner profile not available (${taken.sender}, ${messageType})` })
    } else if (!belnr || !soldTo || items.length === 0) {
      Object.assign(taken, { status: '51', statusText: 'Sales document was not changed: purchase order number, sold-to party or items missing' })
    } else if (messageType === 'ORDERS') {
      nextOrder += 1
      const order = String(nextOrder).padStart(10, '0')
      salesOrders.set(belnr, [...(salesOrders.get(belnr) ?? []), order])
      Object.assign(taken, { salesOrder: order, statusText: `Standard Order ${nextOrder} has been saved` })
    } else {
      const order = salesOrders.get(belnr)?.[0]
      if (order) Object.assign(taken, { salesOrder: order, statusText: `Standard Order ${Number(order)} has been changed` })
      else Object.assign(taken, { status: '51', statusText: `No sales order found for purchase order number ${belnr}` })
    }
    idocs.push(taken)
    return taken
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
        taken = take(body, transport)
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
    close: () => app.close(),
  }
}
