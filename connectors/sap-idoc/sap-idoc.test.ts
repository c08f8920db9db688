import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { SyncFailure, WebhookRejected, asArray, parseXml, xmlAttr, xmlChild, xmlText, type Logger, type OperationContext, type XmlNode, type XmlValue } from '../../src/connector-kit/index.ts'
import { classifySapIdocError, soapFaultOf } from './errors.ts'
import { belnrOf, docnumFor, messageIdFor, newDocnum, orders05InputSchema, type Orders05Document } from './idoc.ts'
import { referenceOfBelnr, type SapIdocDelivery } from './inbound.ts'
import { sapIdoc } from './index.ts'
import { secretsSchema, settingsSchema, type SapIdocSecrets, type SapIdocSettings } from './settings.ts'
import { startSapIdocSimulator, type SapIdocSimulator } from './simulator.ts'
import { freePort } from '../../src/shared/free-port.ts'

const fixturePath = new URL('../../../shared/fixtures/sap-idoc-orders05-ext-lumberliquidators.xml', import.meta.url)
const example = (name: string) => JSON.parse(readFileSync(new URL(`../../mappings/examples/canonical.to-sap.orders05/${name}`, import.meta.url), 'utf8')) as Orders05Document

const credentials = { username: 'IDOC_INBOUND', password: 'Sap-Idoc-Pass-123' }
const partners = { logicalSystem: 'S4HCLNT100', receiverPort: 'SAPS4H', partnerProfiles: ['ORDERBRIDG'] }
const controlRecord = { senderPort: 'ORDERBRIDG', senderPartner: 'ORDERBRIDG', receiverPort: 'SAPS4H', receiverPartner: 'S4HCLNT100' }
const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const upsert = sapIdoc.salesOrders!.upsert

let sap: SapIdocSimulator
let sequence = 0

type Ctx = OperationContext<SapIdocSettings, SapIdocSecrets>

function context(overrides: { settings?: Record<string, unknown>; secrets?: Partial<SapIdocSecrets>; lookup?: boolean } & Partial<Omit<Ctx, 'settings' | 'secrets'>> = {}): Ctx {
  sequence += 1
  const { settings = {}, secrets = {}, lookup = true, ...rest } = overrides
  return {
    connectionId: 'sap-test',
    settings: settingsSchema.parse({
      baseUrl: sap.url,
      sapClient: '100',
      timeoutMs: 5_000,
      controlRecord,
      ...(lookup ? { statusLookup: { path: sap.statusPath } } : {}),
      ...settings,
    }),
    secrets: secretsSchema.parse({ ...credentials, ...secrets }),
    log: noopLogger,
    idempotencyKey: `order-${sequence}.sap.salesOrders.upsert.v1`,
    reference: `7c9e6679-7425-40de-944b-${String(sequence).padStart(12, '0')}`,
    mayHaveWritten: false,
    ...rest,
  }
}

/** The golden example of the outbound mapping: what the pipeline hands the connector. */
const document = () => orders05InputSchema.parse(example('salesforce-order.expected.json'))

async function failureOf(promise: Promise<unknown>, ctx: Ctx): Promise<SyncFailure> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail')
    },
    (err: unknown) => err,
  )
  return sapIdoc.classify(error, ctx)
}

const idocsFor = (reference: string) => sap.idocs().filter((i) => i.belnr === belnrOf(reference))

beforeAll(async () => {
  sap = await startSapIdocSimulator({ ...credentials, ...partners })
})

afterEach(() => {
  sap.faults.reset()
})

afterAll(async () => {
  await sap.close()
})

describe('settings', () => {
  it('defaults to SOAP on /sap/bc/srt/idoc, or /sap/bc/idoc_xml for bare IDoc XML', () => {
    const soap = settingsSchema.parse({ baseUrl: 'https://s4h.example.com', controlRecord })
    expect(soap).toMatchObject({
      transport: 'soap',
      path: '/sap/bc/srt/idoc',
      whenUncertain: 'refuse',
      controlRecord: { ...controlRecord, senderPartnerType: 'LS', receiverPartnerType: 'LS', messageType: 'ORDERS', changeMessageType: 'ORDCHG', test: false },
      answer: { idocNumberHeader: 'SapIDocDbId', idocNumberElement: 'DbId' },
    })
    expect(settingsSchema.parse({ baseUrl: 'https://s4h.example.com', transport: 'idoc-xml', controlRecord }).path).toBe('/sap/bc/idoc_xml')
  })

  it('takes no IDocs from SAP unless inbound is set; then DESADV and INVOIC over HTTP Basic, tracking number from BOLNR', () => {
    const base = { baseUrl: 'https://s4h.example.com', controlRecord }
    expect(settingsSchema.parse(base).inbound).toBeUndefined()
    expect(settingsSchema.parse({ ...base, inbound: {} }).inbound).toEqual({ messageTypes: ['DESADV', 'INVOIC'], authentication: 'basic', header: 'X-Orderbridge-Token', trackingNumberField: 'BOLNR', carrierPartnerFunction: 'SP' })
    expect(settingsSchema.safeParse({ ...base, inbound: { messageTypes: ['ORDERS'] } }).success).toBe(false)
    expect(secretsSchema.safeParse({ ...credentials, inboundToken: 'too-short' }).success).toBe(false)
  })

  it('refuses partner numbers SAP cannot hold, paths that leave baseUrl, and a status path without {reference}', () => {
    const base = { baseUrl: 'https://s4h.example.com', controlRecord }
    expect(settingsSchema.safeParse({ ...base, controlRecord: { ...controlRecord, senderPartner: 'ORDERBRIDGE1' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ ...base, path: '//evil.example.com/x' }).success).toBe(false)
    expect(settingsSchema.safeParse({ ...base, statusLookup: { path: '/status' } }).success).toBe(false)
  })
})

describe('the outbound mapping and the input schema', () => {
  it('accepts every golden example of canonical.to-sap.orders05', () => {
    for (const name of ['salesforce-order.expected.json', 'without-order-date.expected.json']) {
      const parsed = orders05InputSchema.safeParse(example(name))
      expect(parsed.error?.issues ?? [], name).toEqual([])
    }
  })

  it('refuses numbers, the control record, unknown segments, and orders without sold-to party or material', () => {
    const issues = (idoc: Record<string, unknown>) => orders05InputSchema.safeParse({ IDOC: idoc }).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? []
    const good = document().IDOC
    expect(issues({ ...good, E1EDS01: [{ SUMID: '002', SUMME: 1100.5 }] })).toEqual(['IDOC.E1EDS01.0.SUMME: is a JSON number; IDoc fields are text (send amounts and quantities as decimal strings)'])
    expect(issues({ ...good, EDI_DC40: { DOCNUM: '1' } })).toEqual(['IDOC.EDI_DC40: the control record belongs to the connection; the connector writes it'])
    expect(issues({ ...good, E1EDK99: {} })).toEqual(['IDOC.E1EDK99: E1EDK99 is not a segment of ORDERS05 this connector writes'])
    expect(issues({ ...good, E1EDKA1: [{ PARVW: 'WE', PARTN: '1' }] })).toEqual(['IDOC.E1EDKA1: exactly one sold-to party (E1EDKA1 with PARVW AG and PARTN) is required'])
    expect(issues({ ...good, E1EDP01: [{ POSEX: '000010', MENGE: '1' }] })).toEqual(['IDOC.E1EDP01.0.E1EDP19: the material is required (E1EDP19 IDTNR, or MATNR)'])
    expect(issues({ ...good, E1EDP01: [{ POSEX: '000010', MENGE: 'two', E1EDP19: [{ QUALF: '002', IDTNR: 'X' }] }] })).toEqual(['IDOC.E1EDP01.0.MENGE: "two" is not a decimal'])
  })
})

describe('the ORDERS05 XML', () => {
  const segmentNames = (node: XmlValue | undefined) =>
    node !== undefined && typeof node === 'object' && !Array.isArray(node) ? Object.keys(node).filter((k) => !k.startsWith('@') && /^(E1|EDI_DC40)/.test(k)) : []
  const fieldNames = (node: XmlValue | undefined) => {
    const first = Array.isArray(node) ? node[0] : node
    return first !== undefined && typeof first === 'object' && !Array.isArray(first) ? Object.keys(first).filter((k) => !k.startsWith('@') && typeof first[k] === 'string') : []
  }
  /** `ours` keeps the relative order `theirs` gives the names both have. */
  const sameRelativeOrder = (ours: string[], theirs: string[]) => {
    const common = ours.filter((name) => theirs.includes(name))
    expect(common).toEqual(theirs.filter((name) => common.includes(name)))
  }

  it('reads the published IDoc, decoding &quot; and nothing else', () => {
    const published = parseXml(readFileSync(fixturePath))
    const idoc = xmlChild(xmlChild(published, '_-LUMBERL_-3PL_ORDERS05_EXT'), 'IDOC')
    const items = xmlChild(idoc, 'E1EDP01') as XmlNode[]
    expect(xmlChild(xmlChild(items[0], 'E1EDP19'), 'KTEXT')).toBe('SCH ENG Bamboo QC 9/16x5" Strand Nat')
  })

  it('is structured like the published ORDERS05: control record, segments and fields in the same order, SEGMENT="1"', async () => {
    const ctx = context()
    await upsert.run(ctx, document(), undefined)
    const [sent] = idocsFor(ctx.reference)
    const ours = xmlChild(xmlChild(xmlChild(parseXml(sent!.xml), 'Envelope'), 'Body'), 'ORDERS05')
    const oursIdoc = xmlChild(ours, 'IDOC')
    const theirsIdoc = xmlChild(xmlChild(parseXml(readFileSync(fixturePath)), '_-LUMBERL_-3PL_ORDERS05_EXT'), 'IDOC')

    expect(xmlAttr(oursIdoc, 'BEGIN')).toBe('1')
    const oursSegments = segmentNames(oursIdoc)
    const theirsSegments = segmentNames(theirsIdoc)
    expect(oursSegments).toEqual(['EDI_DC40', 'E1EDK01', 'E1EDK14', 'E1EDK03', 'E1EDKA1', 'E1EDK02', 'E1EDP01', 'E1EDS01'])
    for (const name of oursSegments) expect(theirsSegments, `the published IDoc has ${name}`).toContain(name)
    sameRelativeOrder(oursSegments, theirsSegments)

    const ediDc40 = fieldNames(xmlChild(oursIdoc, 'EDI_DC40'))
    expect(ediDc40).toEqual(['TABNAM', 'DOCNUM', 'DIRECT', 'IDOCTYP', 'MESTYP', 'SNDPOR', 'SNDPRT', 'SNDPRN', 'RCVPOR', 'RCVPRT', 'RCVPRN', 'CREDAT', 'CRETIM'])
    for (const field of ediDc40) expect(fieldNames(xmlChild(theirsIdoc, 'EDI_DC40'))).toContain(field)
    sameRelativeOrder(ediDc40, fieldNames(xmlChild(theirsIdoc, 'EDI_DC40')))
    for (const name of oursSegments.slice(1)) sameRelativeOrder(fieldNames(xmlChild(oursIdoc, name)), fieldNames(xmlChild(theirsIdoc, name)))
    const oursItems = xmlChild(oursIdoc, 'E1EDP01') as XmlNode[]
    const theirsItem = (xmlChild(theirsIdoc, 'E1EDP01') as XmlNode[])[0]
    sameRelativeOrder(fieldNames(oursItems), fieldNames(theirsItem))
    expect(fieldNames(xmlChild(oursItems[0], 'E1EDP19'))).toEqual(['QUALF', 'IDTNR'])
    for (const segment of [xmlChild(oursIdoc, 'EDI_DC40'), xmlChild(oursIdoc, 'E1EDK01'), oursItems[0], xmlChild(oursItems[0], 'E1EDP19')]) {
      const node = Array.isArray(segment) ? segment[0] : segment
      expect(xmlAttr(node, 'SEGMENT')).toBe('1')
    }
  })

  it('carries the partner settings, an inbound DOCNUM per attempt and our reference as BELNR', async () => {
    const ctx = context({ settings: { controlRecord: { ...controlRecord, client: '100', test: true } } })
    await upsert.run(ctx, document(), undefined)
    await upsert.run({ ...ctx, idempotencyKey: 'other' }, document(), { externalId: 'x' })
    const [created, changed] = idocsFor(ctx.reference)
    const control = xmlChild(xmlChild(xmlChild(xmlChild(xmlChild(parseXml(created!.xml), 'Envelope'), 'Body'), 'ORDERS05'), 'IDOC'), 'EDI_DC40') as XmlNode
    expect(control).toMatchObject({
      TABNAM: 'EDI_DC40',
      MANDT: '100',
      DIRECT: '2',
      TEST: 'X',
      IDOCTYP: 'ORDERS05',
      MESTYP: 'ORDERS',
      SNDPOR: 'ORDERBRIDG',
      SNDPRT: 'LS',
      SNDPRN: 'ORDERBRIDG',
      RCVPOR: 'SAPS4H',
      RCVPRT: 'LS',
      RCVPRN: 'S4HCLNT100',
    })
    expect(control.DOCNUM).toMatch(/^\d{16}$/)
    expect(changed!.transferId).not.toBe(created!.transferId)
    expect(created!.belnr).toBe(ctx.reference.replaceAll('-', ''))
    expect(newDocnum()).not.toBe(newDocnum())
  })
})

describe('salesOrders.upsert', () => {
  it('posts the IDoc in a SOAP envelope with Basic auth and sap-client, and answers SAP\'s IDoc number', async () => {
    const ctx = context()
    const from = sap.requests().length
    const result = await upsert.run(ctx, document(), undefined)

    const [idoc] = idocsFor(ctx.reference)
    expect(result).toEqual({ externalId: idoc!.docnum })
    expect(result.externalId).toMatch(/^\d{16}$/)
    expect(idoc).toMatchObject({ messageType: 'ORDERS', status: '53', soldTo: '0000100131', transport: 'soap' })
    expect(sap.salesOrdersFor(idoc!.belnr)).toEqual([idoc!.salesOrder])
    expect(sap.requests().slice(from)).toEqual([{ method: 'POST', path: '/sap/bc/srt/idoc?sap-client=100', authorized: true }])
    expect(idoc!.xml).toContain('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:sap-com:document:sap:idoc:soap:messages">')
  })

  it('posts bare IDoc XML and reads the number from the SapIDocDbId header', async () => {
    const ctx = context({ settings: { transport: 'idoc-xml' } })
    const result = await upsert.run(ctx, document(), undefined)
    const [idoc] = idocsFor(ctx.reference)
    expect(idoc!.transport).toBe('idoc-xml')
    expect(idoc!.xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><ORDERS05><IDOC BEGIN="1"><EDI_DC40 SEGMENT="1">')).toBe(true)
    expect(result).toEqual({ externalId: idoc!.docnum })
  })

  it('uses our DOCNUM as the external id when SAP names no IDoc number', async () => {
    const quiet = await startSapIdocSimulator({ ...credentials, ...partners, idocXmlAnswer: 'empty' })
    try {
      const ctx = context({ settings: { baseUrl: quiet.url, transport: 'idoc-xml' }, lookup: false })
      const result = await upsert.run(ctx, document(), undefined)
      expect(result).toEqual({ externalId: quiet.idocs()[0]!.transferId })
    } finally {
      await quiet.close()
    }
  })

  it('sends a new version as ORDCHG with change actions, and keeps the external id', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, document(), undefined)
    const updated = await upsert.run({ ...ctx, idempotencyKey: `${ctx.idempotencyKey}-v2` }, document(), created)

    expect(updated).toEqual(created)
    const [, change] = idocsFor(ctx.reference)
    expect(change).toMatchObject({ messageType: 'ORDCHG', status: '53' })
    expect(change!.salesOrder).toBe(idocsFor(ctx.reference)[0]!.salesOrder)
    const idoc = change!.idoc
    expect(xmlChild(xmlChild(idoc, 'E1EDK01'), 'ACTION')).toBe('002')
    expect((xmlChild(idoc, 'E1EDP01') as XmlNode[]).map((item) => item.ACTION)).toEqual(['002', '002'])
    await expect(sapIdoc.salesOrders!.findByReference(ctx, ctx.reference)).resolves.toEqual(created)
  })

  describe('when SAP takes the IDoc but the answer is lost', () => {
    it('classifies the loss as unknown_outcome, and the retry finds the IDoc through the status service instead of sending another', async () => {
      const ctx = context()
      sap.faults.commitThenDrop(1)
      const failure = await failureOf(upsert.run(ctx, document(), undefined), ctx)
      expect(failure.kind).toBe('unknown_outcome')
      expect(idocsFor(ctx.reference)).toHaveLength(1)

      const retried = await upsert.run({ ...ctx, mayHaveWritten: true }, document(), undefined)

      expect(idocsFor(ctx.reference)).toHaveLength(1)
      expect(retried).toEqual({ externalId: idocsFor(ctx.reference)[0]!.docnum })
      expect(sap.salesOrdersFor(belnrOf(ctx.reference))).toHaveLength(1)
      expect(sap.requests().at(-1)).toMatchObject({ method: 'GET', path: expect.stringContaining(`$filter=Belnr%20eq%20%27${belnrOf(ctx.reference)}%27`) })
    })

    it('sends on a retry when the status service knows no IDoc for the reference', async () => {
      const ctx = context({ mayHaveWritten: true })
      await upsert.run(ctx, document(), undefined)
      expect(idocsFor(ctx.reference)).toHaveLength(1)
    })

    it('without a status service, refuses to send blind (data, naming the BELNR), unless told to resend', async () => {
      const ctx = context({ lookup: false })
      sap.faults.commitThenDrop(1)
      await failureOf(upsert.run(ctx, document(), undefined), ctx)

      const refused = await failureOf(upsert.run({ ...ctx, mayHaveWritten: true }, document(), undefined), ctx)
      expect(refused.kind).toBe('data')
      expect(refused.message).toContain(belnrOf(ctx.reference))
      expect(idocsFor(ctx.reference)).toHaveLength(1)

      const resend = context({ lookup: false, settings: { whenUncertain: 'resend' } })
      await upsert.run({ ...resend, reference: ctx.reference, mayHaveWritten: true }, document(), undefined)
      // What 'resend' risks: SAP now holds two orders for one purchase order number.
      expect(sap.salesOrdersFor(belnrOf(ctx.reference))).toHaveLength(2)
    })

    it('a status service that is down is transient, and nothing is sent', async () => {
      const ctx = context({ mayHaveWritten: true })
      sap.faults.statusUnavailable(503)
      const failure = await failureOf(upsert.run(ctx, document(), undefined), ctx)
      expect(failure.kind).toBe('transient')
      expect(idocsFor(ctx.reference)).toHaveLength(0)
    })
  })

  describe('classify', () => {
    it('a SOAP Client fault is data (the document), or config when it names the partner setup', async () => {
      const ctx = context()
      sap.faults.failNext(1, 500, { soapFault: { code: 'Client', message: 'EDI: Syntax error in IDoc (segment cannot be identified)' } })
      const data = await failureOf(upsert.run(ctx, document(), undefined), ctx)
      expect(data).toMatchObject({ kind: 'data', details: { httpStatus: 500 } })
      expect(data.message).toBe('SAP answered HTTP 500 with a SOAP fault (Client): EDI: Syntax error in IDoc (segment cannot be identified)')

      const wrongReceiver = context({ settings: { controlRecord: { ...controlRecord, receiverPartner: 'ECCCLNT800' } } })
      const config = await failureOf(upsert.run(wrongReceiver, document(), undefined), wrongReceiver)
      expect(config.kind).toBe('config')
      expect(config.message).toContain('receiver partner ECCCLNT800')
      expect(idocsFor(wrongReceiver.reference)).toEqual([])
    })

    it('a SOAP Server fault is transient; 401 is auth; 503 is transient; an unreachable host is transient', async () => {
      const ctx = context()
      sap.faults.failNext(1, 500, { soapFault: { code: 'Server', message: 'Lock table overflow' } })
      expect((await failureOf(upsert.run(ctx, document(), undefined), ctx)).kind).toBe('transient')
      const wrong = context({ secrets: { password: 'wrong-password' } })
      expect((await failureOf(upsert.run(wrong, document(), undefined), wrong)).kind).toBe('auth')
      sap.faults.failNext(1, 503, { headers: { 'retry-after': '5' } })
      expect(await failureOf(upsert.run(ctx, document(), undefined), ctx)).toMatchObject({ kind: 'transient', details: { retryAfterMs: 5000 } })
      const offline = context({ settings: { baseUrl: `http://127.0.0.1:${await freePort()}` } })
      expect((await failureOf(upsert.run(offline, document(), undefined), offline)).kind).toBe('transient')
    })

    it('refuses an answer with a DTD or entity declarations without reading it: unknown_outcome', async () => {
      const ctx = context()
      const bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><idocAssign><DbId>&lol2;</DbId></idocAssign>'
      sap.faults.failNext(1, 200, { body: bomb })
      const failure = await failureOf(upsert.run(ctx, document(), undefined), ctx)
      expect(failure.kind).toBe('unknown_outcome')
      expect(failure.message).toContain('DOCTYPE')
    })

    it('reads SOAP faults, and nothing from a body that is not one', () => {
      expect(soapFaultOf('<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body><soap-env:Fault><faultcode>soap-env:Client</faultcode><faultstring xml:lang="en">bad</faultstring></soap-env:Fault></soap-env:Body></soap-env:Envelope>')).toEqual({ code: 'Client', message: 'bad' })
      expect(soapFaultOf('<html>Fault</html>')).toBeUndefined()
      expect(classifySapIdocError(new TypeError('x')).kind).toBe('bug')
    })
  })
})

describe('the simulator\'s IDoc inbound', () => {
  const post = (path: string, body: string, contentType = 'text/xml') =>
    fetch(`${sap.url}${path}?sap-client=100`, {
      method: 'POST',
      headers: { 'content-type': contentType, authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` },
      body,
    })

  it('refuses XML with entity declarations (SOAP fault, or 400 for IDoc XML) and takes nothing', async () => {
    const before = sap.idocs().length
    const xxe = '<?xml version="1.0"?><!DOCTYPE ORDERS05 [<!ENTITY x SYSTEM "file:///etc/passwd">]><ORDERS05><IDOC BEGIN="1"><E1EDK01 SEGMENT="1"><BELNR>&x;</BELNR></E1EDK01></IDOC></ORDERS05>'
    const soap = await post('/sap/bc/srt/idoc', xxe)
    expect(soap.status).toBe(500)
    expect(soapFaultOf(await soap.text())).toEqual({ code: 'Client', message: 'XML documents with a DTD are not accepted' })
    const plain = await post('/sap/bc/idoc_xml', xxe, 'application/xml')
    expect(plain.status).toBe(400)
    expect(sap.idocs().length).toBe(before)
  })

  it('refuses segments out of their ORDERS05 sequence', async () => {
    const ctx = context({ settings: { transport: 'idoc-xml' } })
    await upsert.run(ctx, document(), undefined)
    const [sent] = idocsFor(ctx.reference)
    const k02 = /<E1EDK02 SEGMENT="1">.*?<\/E1EDK02>/.exec(sent!.xml)![0]
    const swapped = sent!.xml.replace(k02, '').replace('<E1EDK01 SEGMENT="1">', `${k02}<E1EDK01 SEGMENT="1">`)
    const answer = await post('/sap/bc/idoc_xml', swapped, 'application/xml')
    expect(answer.status).toBe(400)
    expect(await answer.text()).toBe('EDI: syntax error in IDoc: segment E1EDK01 is out of sequence under IDOC')
  })
})

describe('salesOrders.cancel', () => {
  const cancel = sapIdoc.salesOrders!.cancel!
  const cancelContext = (ctx: Ctx) => ({ ...ctx, idempotencyKey: `${ctx.reference}-sap-salesOrders.cancel-v2` })
  const changesFor = (reference: string) => idocsFor(reference).filter((i) => i.messageType === 'ORDCHG')
  const referencesOf = (idoc: XmlNode) => asArray(xmlChild(idoc, 'E1EDK02')).map((r) => [xmlText(xmlChild(r, 'QUALF')), xmlText(xmlChild(r, 'BELNR'))])

  it('sends ORDCHG with header action 003, our purchase order number and the sales order the status service names; SAP deletes the order', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, document(), undefined)
    const salesOrder = idocsFor(ctx.reference)[0]!.salesOrder!

    await cancel(cancelContext(ctx), created)

    const [change] = changesFor(ctx.reference)
    expect(change).toMatchObject({ messageType: 'ORDCHG', action: '003', status: '53', salesOrder, statusText: `Standard Order ${Number(salesOrder)} has been deleted` })
    expect(referencesOf(change!.idoc)).toEqual([
      ['001', belnrOf(ctx.reference)],
      ['002', salesOrder],
    ])
    expect(xmlChild(change!.idoc, 'E1EDP01')).toBeUndefined()
    expect(sap.salesOrder(salesOrder)!.status).toBe('deleted')
    const control = xmlChild(change!.idoc, 'EDI_DC40')
    expect(xmlText(xmlChild(control, 'DOCNUM'))).toBe(docnumFor(cancelContext(ctx).idempotencyKey))
    expect(xmlText(xmlChild(control, 'ARCKEY'))).toBe(messageIdFor(cancelContext(ctx).idempotencyKey))
    expect(xmlText(xmlChild(control, 'ARCKEY'))).toMatch(/^urn:sap\.com:msgid=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
  })

  it('repeats the same DOCNUM and message id on a retry, so SAP\'s SOAP inbound takes the cancel once', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, document(), undefined)
    sap.faults.commitThenDrop(1)
    const lost = await failureOf(cancel(cancelContext(ctx), created), ctx)
    expect(lost.kind).toBe('unknown_outcome')

    await cancel({ ...cancelContext(ctx), mayHaveWritten: true }, created)
    await cancel({ ...cancelContext(ctx), mayHaveWritten: true }, created)

    expect(changesFor(ctx.reference)).toHaveLength(1)
    expect(changesFor(ctx.reference)[0]!.status).toBe('53')
    expect(docnumFor('a')).toMatch(/^\d{16}$/)
    expect(docnumFor('a')).not.toBe(docnumFor('b'))
  })

  it('over bare IDoc XML, which has no exactly-once, a repeated cancel reaches SAP again and stays in status 51 there', async () => {
    const ctx = context({ settings: { transport: 'idoc-xml' } })
    const created = await upsert.run(ctx, document(), undefined)
    await cancel(cancelContext(ctx), created)
    await cancel({ ...cancelContext(ctx), mayHaveWritten: true }, created)

    const [first, second] = changesFor(ctx.reference)
    expect(first).toMatchObject({ status: '53', transferId: docnumFor(cancelContext(ctx).idempotencyKey) })
    expect(second).toMatchObject({ status: '51', transferId: first!.transferId })
    expect(second!.statusText).toMatch(/is not in the database or has been archived/)
  })

  it('without a status service names no sales order: SAP cannot identify the order by purchase order number alone (51)', async () => {
    const ctx = context({ lookup: false })
    const created = await upsert.run(ctx, document(), undefined)
    await cancel(cancelContext(ctx), created)
    const [change] = changesFor(ctx.reference)
    expect(referencesOf(change!.idoc)).toEqual([['001', belnrOf(ctx.reference)]])
    expect(change).toMatchObject({ status: '51' })
    expect(change!.statusText).toMatch(/cannot be identified/)
    expect(sap.salesOrder(idocsFor(ctx.reference)[0]!.salesOrder!)!.status).toBe('open')
  })

  it('an order SAP has delivered is not deleted (51: subsequent documents)', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, document(), undefined)
    const salesOrder = idocsFor(ctx.reference)[0]!.salesOrder!
    sap.ship(salesOrder)
    await cancel(cancelContext(ctx), created)
    expect(changesFor(ctx.reference)[0]).toMatchObject({ status: '51', statusText: `Sales document ${Number(salesOrder)} cannot be deleted: subsequent documents exist` })
    expect(sap.salesOrder(salesOrder)!.status).toBe('open')
  })

  it('a status service that is down is transient, and nothing is sent', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, document(), undefined)
    sap.faults.statusUnavailable(503)
    expect((await failureOf(cancel(cancelContext(ctx), created), ctx)).kind).toBe('transient')
    expect(changesFor(ctx.reference)).toEqual([])
  })

  it('fails like any IDoc when SAP refuses it: a partner set-up fault is config', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, document(), undefined)
    sap.faults.failNext(1, 500, { soapFault: { code: 'Client', message: 'EDI: Partner profile not available' } })
    expect((await failureOf(cancel(cancelContext(ctx), created), ctx)).kind).toBe('config')
  })
})

describe('status back: IDocs SAP posts to the connection', () => {
  const inboundSecrets = { inboundUsername: 'SAP_OUTBOUND', inboundPassword: 'Outbound-Pass-456' }
  const basic = { type: 'basic' as const, username: inboundSecrets.inboundUsername, password: inboundSecrets.inboundPassword }
  const receiverSettings = (inbound: Record<string, unknown> = {}) => settingsSchema.parse({ baseUrl: 'https://s4h.example.com', controlRecord, inbound })
  type Received = { status: number; contentType: string; body: string; delivery?: SapIdocDelivery; rejection?: WebhookRejected }

  /**
   * Stands in for POST /webhooks/<connection>: runs the connector's receive() on each body and
   * answers as the ingest route does (acknowledge, or refuse with the rejection's status).
   */
  async function startReceiver(settings: SapIdocSettings, secrets: Partial<SapIdocSecrets> = inboundSecrets) {
    const received: Received[] = []
    const custom = sapIdoc.customWebhooks!
    const server = createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]))
        const mediaType = (request.headers['content-type'] ?? '').split(';')[0]!.trim()
        let entry: Received
        try {
          if (!custom.contentTypes.includes(mediaType)) throw new WebhookRejected(415, 'unsupported_media_type', `expected ${custom.contentTypes.join(' or ')}`)
          const delivery = custom.receive({ raw: Buffer.concat(chunks), headers, settings, secrets: secretsSchema.parse({ ...credentials, ...secrets }) }) as SapIdocDelivery
          const answer = custom.acknowledge(delivery)
          entry = { status: 200, contentType: answer.contentType, body: answer.body, delivery }
        } catch (err) {
          if (!(err instanceof WebhookRejected)) throw err
          const answer = custom.refuse(err)
          entry = { status: err.status, contentType: answer.contentType, body: answer.body, rejection: err }
        }
        received.push(entry)
        response.writeHead(entry.status, { 'content-type': entry.contentType }).end(entry.body)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/sap`
    return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
  }

  let receiver: Awaited<ReturnType<typeof startReceiver>>
  beforeAll(async () => {
    receiver = await startReceiver(receiverSettings({ messageTypes: ['DESADV', 'INVOIC', 'ORDRSP'] }))
    sap.setWebhookTarget({ url: receiver.url, authentication: basic })
  })
  afterAll(async () => {
    sap.setWebhookTarget(undefined)
    await receiver.close()
  })

  /** An order SAP holds, created through the connector: our reference and SAP's sales order number. */
  async function orderInSap(overrides: Parameters<typeof context>[0] = {}) {
    const ctx = context(overrides)
    await upsert.run(ctx, document(), undefined)
    return { reference: ctx.reference, salesOrder: idocsFor(ctx.reference)[0]!.salesOrder! }
  }
  /** What the receiver made of the IDoc SAP just sent. */
  async function receivedFor(idoc: { docnum: string }) {
    await sap.flushWebhooks()
    const delivery = sap.webhookDeliveries().find((d) => d.docnum === idoc.docnum)!
    const entry = receiver.received.find((r) => r.delivery?.idocs.some((i) => i.docnum === idoc.docnum) || r.body.includes(idoc.docnum))
    return { delivery, entry }
  }
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(receiver.url, {
      method: 'POST',
      headers: { 'content-type': 'application/xml', authorization: `Basic ${Buffer.from(`${inboundSecrets.inboundUsername}:${inboundSecrets.inboundPassword}`).toString('base64')}`, ...headers },
      body,
    })
  const faultOf = (body: string) => {
    const fault = xmlChild(xmlChild(xmlChild(parseXml(body, { arrays: ['issue'] }), 'Envelope'), 'Body'), 'Fault')
    const refusal = xmlChild(xmlChild(fault, 'detail'), 'IdocRefusal')
    return {
      faultcode: xmlText(xmlChild(fault, 'faultcode')),
      message: xmlText(xmlChild(fault, 'faultstring')),
      code: xmlText(xmlChild(refusal, 'code')),
      issues: asArray(xmlChild(refusal, 'issue')).map((issue) => `${xmlAttr(issue, 'path')}: ${xmlText(issue)}`),
    }
  }

  describe('DESADV', () => {
    it('is order.shipped, named by our reference, with carrier, tracking number and the delivered quantity per material', async () => {
      const { reference, salesOrder } = await orderInSap()
      const desadv = sap.ship(salesOrder, { carrier: 'DHL Freight', trackingNumber: 'JJD000390007788' })
      const { delivery, entry } = await receivedFor(desadv)

      expect(delivery).toMatchObject({ status: 'delivered', attempts: 1, lastHttpStatus: 200 })
      expect(entry!.delivery!.events).toEqual([
        {
          eventId: desadv.docnum,
          type: 'order.shipped',
          externalId: `ref:${reference}`,
          sourceVersion: 0,
          document: { carrier: 'DHL Freight', trackingNumber: 'JJD000390007788', lines: [{ sku: 'GC1040', quantity: '2.0' }, { sku: 'GC5060', quantity: '4.0' }] },
        },
      ])
      expect(desadv.xml).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?><DELVRY07><IDOC BEGIN="1"><EDI_DC40 SEGMENT="1"><TABNAM>EDI_DC40<\/TABNAM>/)
      expect(desadv.xml).toContain('<MESTYP>DESADV</MESTYP>')
      // The acknowledgement names the IDoc it took.
      expect(entry!.body).toContain(`<Idoc DOCNUM="${desadv.docnum}" MESTYP="DESADV" events="1"/>`)
    })

    it('ships only what a partial delivery delivered', async () => {
      const { reference, salesOrder } = await orderInSap()
      const desadv = sap.ship(salesOrder, { lines: [{ posex: '000020', quantity: '1.000' }] })
      const { entry } = await receivedFor(desadv)
      expect(entry!.delivery!.events).toEqual([expect.objectContaining({ externalId: `ref:${reference}`, document: { lines: [{ sku: 'GC5060', quantity: '1.000' }] } })])
    })

    it('with a proof of delivery date is order.shipped and then order.delivered, each with its own event id', async () => {
      const { reference, salesOrder } = await orderInSap()
      const shipped = sap.ship(salesOrder, { trackingNumber: 'TRK-1' })
      const pod = sap.proofOfDelivery(shipped.document, { date: '20260312', time: '142500' })
      const { entry } = await receivedFor(pod)
      expect(entry!.delivery!.events.map((e) => [e.eventId, e.type, e.externalId, e.document])).toEqual([
        [pod.docnum, 'order.shipped', `ref:${reference}`, { trackingNumber: 'TRK-1', lines: [{ sku: 'GC1040', quantity: '2.0' }, { sku: 'GC5060', quantity: '4.0' }] }],
        [`${pod.docnum}:2`, 'order.delivered', `ref:${reference}`, { at: '2026-03-12T14:25:00' }],
      ])
    })

    it('sent again by SAP (same DOCNUM) carries the same event ids, so the inbox stores it once', async () => {
      const { salesOrder } = await orderInSap()
      const first = sap.ship(salesOrder)
      const again = sap.resend(first.docnum)
      await sap.flushWebhooks()
      const both = receiver.received.filter((r) => r.delivery?.idocs.some((i) => i.docnum === first.docnum))
      expect(both).toHaveLength(2)
      expect(both[0]!.delivery!.events).toEqual(both[1]!.delivery!.events)
      expect(again.docnum).toBe(first.docnum)
    })

    it('reads the IDoc inside a SOAP envelope too, and answers with one', async () => {
      const { reference, salesOrder } = await orderInSap()
      sap.setWebhookTarget({ url: receiver.url, authentication: basic, format: 'soap' })
      try {
        const desadv = sap.ship(salesOrder)
        const { delivery, entry } = await receivedFor(desadv)
        expect(delivery.status).toBe('delivered')
        expect(entry!.delivery!.events[0]).toMatchObject({ type: 'order.shipped', externalId: `ref:${reference}` })
        expect(xmlChild(xmlChild(xmlChild(parseXml(entry!.body), 'Envelope'), 'Body'), 'IdocAcknowledgement')).toBeDefined()
      } finally {
        sap.setWebhookTarget({ url: receiver.url, authentication: basic })
      }
    })
  })

  describe('INVOIC', () => {
    it('is order.invoiced with the invoice number, the billed value (E1EDS01 011) as a decimal string, currency and due date', async () => {
      const { reference, salesOrder } = await orderInSap()
      const invoic = sap.invoice(salesOrder, { tax: '209.00', dueDate: '20260415' })
      const { entry } = await receivedFor(invoic)
      expect(invoic.amount).toBe('1309.00')
      expect(entry!.delivery!.events).toEqual([
        {
          eventId: invoic.docnum,
          type: 'order.invoiced',
          externalId: `ref:${reference}`,
          sourceVersion: 0,
          document: { invoiceNumber: invoic.invoiceNumber, amount: '1309.00', currency: 'USD', dueDate: '2026-04-15' },
        },
      ])
      expect(typeof entry!.delivery!.events[0]!.document.amount).toBe('string')
    })
  })

  describe('ORDRSP', () => {
    it('is checked and acknowledged, with no event (orderbridge has none for a confirmation)', async () => {
      const { salesOrder } = await orderInSap()
      const ordrsp = sap.confirm(salesOrder)
      const { delivery, entry } = await receivedFor(ordrsp)
      expect(delivery.status).toBe('delivered')
      expect(entry!.delivery).toMatchObject({ events: [], idocs: [{ docnum: ordrsp.docnum, messageType: 'ORDRSP', events: 0 }] })
    })
  })

  describe('refusals', () => {
    it('a wrong password is 401 and SAP gives up on the IDoc; the fault says what was wrong, not what was sent', async () => {
      const { salesOrder } = await orderInSap()
      sap.setWebhookTarget({ url: receiver.url, authentication: { ...basic, password: 'not-the-password' } })
      try {
        const desadv = sap.ship(salesOrder)
        const { delivery } = await receivedFor(desadv)
        expect(delivery).toMatchObject({ status: 'failed', attempts: 1, lastHttpStatus: 401 })
        expect(faultOf(delivery.lastAnswer!)).toEqual({ faultcode: 'soapenv:Client.Authentication', message: 'the user or password of the delivery is wrong', code: 'unauthorized', issues: [] })
        expect(delivery.lastAnswer).not.toContain('not-the-password')
      } finally {
        sap.setWebhookTarget({ url: receiver.url, authentication: basic })
      }
      const missing = await fetch(receiver.url, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<DELVRY07/>' })
      expect(missing.status).toBe(401)
      expect(faultOf(await missing.text()).message).toBe('the delivery has no Authorization: Basic header')
    })

    it('with header authentication, takes the shared token and refuses a wrong one', async () => {
      const tokens = await startReceiver(receiverSettings({ authentication: 'header', header: 'X-SAP-Token' }), { inboundToken: 'shared-token-0123456789' })
      const { salesOrder } = await orderInSap()
      try {
        sap.setWebhookTarget({ url: tokens.url, authentication: { type: 'header', name: 'X-SAP-Token', value: 'shared-token-0123456789' } })
        const good = sap.ship(salesOrder)
        await sap.flushWebhooks()
        sap.setWebhookTarget({ url: tokens.url, authentication: { type: 'header', name: 'X-SAP-Token', value: 'shared-token-9876543210' } })
        const bad = sap.invoice(salesOrder)
        await sap.flushWebhooks()
        const deliveries = sap.webhookDeliveries()
        expect(deliveries.find((d) => d.docnum === good.docnum)).toMatchObject({ status: 'delivered' })
        expect(deliveries.find((d) => d.docnum === bad.docnum)).toMatchObject({ status: 'failed', lastHttpStatus: 401 })
        expect(tokens.received.map((r) => r.rejection?.message ?? 'ok')).toEqual(['ok', 'the X-SAP-Token header of the delivery is wrong'])
      } finally {
        sap.setWebhookTarget({ url: receiver.url, authentication: basic })
        await tokens.close()
      }
    })

    it('a connection without inbound settings, or without the secrets, verifies nothing: 401', async () => {
      const unconfigured = await startReceiver(settingsSchema.parse({ baseUrl: 'https://s4h.example.com', controlRecord }))
      const noSecrets = await startReceiver(receiverSettings(), {})
      try {
        for (const [target, message] of [
          [unconfigured, 'this connection is not configured to receive IDocs (settings inbound), so no delivery can be verified'],
          [noSecrets, 'this connection has no inboundUsername and inboundPassword, so no delivery can be verified'],
        ] as const) {
          const answer = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<DELVRY07/>' })
          expect(answer.status).toBe(401)
          expect(faultOf(await answer.text())).toMatchObject({ code: 'inbound_not_configured', message })
        }
      } finally {
        await unconfigured.close()
        await noSecrets.close()
      }
    })

    it('an IDoc with wrong fields is 422, naming each one by its path in the IDoc', async () => {
      const { salesOrder } = await orderInSap()
      const invoic = sap.invoice(salesOrder)
      await sap.flushWebhooks()
      const broken = invoic.xml
        .replace(/<SUMID>011<\/SUMID><SUMME>[^<]*<\/SUMME>/, '<SUMID>011</SUMID><SUMME>1.100,00</SUMME>')
        .replace(/<CURCY>USD<\/CURCY>/, '<CURCY>usd</CURCY>')
        .replace(/<IDDAT>028<\/IDDAT><DATUM>\d+<\/DATUM>/, '<IDDAT>028</IDDAT><DATUM>20260231</DATUM>')
      const answer = await post(broken)
      expect(answer.status).toBe(422)
      expect(faultOf(await answer.text())).toEqual({
        faultcode: 'soapenv:Client',
        message: 'the IDoc does not match what this connection accepts: 3 problems',
        code: 'invalid_idoc',
        issues: [
          'IDOC.E1EDS01[3].SUMME: "1.100,00" is not an amount (a decimal such as 1190.00)',
          'IDOC.E1EDK01.CURCY: "usd" is not an ISO currency code',
          'IDOC.E1EDK03[2].DATUM: the due date must be a date YYYYMMDD',
        ],
      })
    })

    it('a DESADV item that names no order, and an IDoc of a type the connection does not take, are 422 with their paths', async () => {
      const { salesOrder } = await orderInSap()
      const desadv = sap.ship(salesOrder)
      await sap.flushWebhooks()
      // Both items lose their order references (E1EDL41, E1EDL43).
      const items = await post(desadv.xml.replaceAll(/<E1EDL41 SEGMENT="1">.*?<\/E1EDL41><E1EDL43 SEGMENT="1">.*?<\/E1EDL43>/g, ''))
      expect(items.status).toBe(422)
      expect(faultOf(await items.text()).issues).toEqual([
        'IDOC.E1EDL20.E1EDL24[0].E1EDL41: names no order: E1EDL41 (QUALI 001, BSTNR: our reference) or E1EDL43 (QUALF C, BELNR: the sales order) is required',
        'IDOC.E1EDL20.E1EDL24[1].E1EDL41: names no order: E1EDL41 (QUALI 001, BSTNR: our reference) or E1EDL43 (QUALF C, BELNR: the sales order) is required',
      ])

      const narrow = await startReceiver(receiverSettings({ messageTypes: ['INVOIC'] }))
      try {
        const answer = await fetch(narrow.url, { method: 'POST', headers: { 'content-type': 'application/xml', authorization: `Basic ${Buffer.from('SAP_OUTBOUND:Outbound-Pass-456').toString('base64')}` }, body: desadv.xml })
        expect(answer.status).toBe(422)
        expect(faultOf(await answer.text()).issues).toEqual(['IDOC.EDI_DC40.MESTYP: this connection does not accept DESADV (settings inbound.messageTypes: INVOIC)'])
      } finally {
        await narrow.close()
      }
    })

    it('an IDoc from another SAP system, or one SAP received (DIRECT 2), is 422', async () => {
      const { salesOrder } = await orderInSap()
      const invoic = sap.invoice(salesOrder)
      await sap.flushWebhooks()
      const answer = await post(invoic.xml.replace('<DIRECT>1</DIRECT>', '<DIRECT>2</DIRECT>').replace('<SNDPRN>S4HCLNT100</SNDPRN>', '<SNDPRN>ECCCLNT800</SNDPRN>'))
      expect(answer.status).toBe(422)
      expect(faultOf(await answer.text()).issues).toEqual([
        'IDOC.EDI_DC40.DIRECT: must be 1: an IDoc SAP sends out',
        'IDOC.EDI_DC40.SNDPRN: ECCCLNT800 is not the SAP system of this connection (controlRecord.receiverPartner S4HCLNT100)',
      ])
    })

    it('XML with a DOCTYPE (no entity is expanded), XML that is not well-formed, and a document without IDOC are 400', async () => {
      const xxe = '<?xml version="1.0"?><!DOCTYPE DELVRY07 [<!ENTITY x SYSTEM "file:///etc/passwd">]><DELVRY07><IDOC BEGIN="1"><E1EDL20 SEGMENT="1"><VBELN>&x;</VBELN></E1EDL20></IDOC></DELVRY07>'
      const declared = await post(xxe)
      expect(declared.status).toBe(400)
      expect(faultOf(await declared.text())).toMatchObject({ code: 'xml_declarations_refused', message: 'XML with a DOCTYPE or entity declaration is not accepted' })
      const malformed = await post('<DELVRY07><IDOC BEGIN="1"></DELVRY07>')
      expect(malformed.status).toBe(400)
      expect(faultOf(await malformed.text()).code).toBe('malformed_xml')
      const empty = await post('<DELVRY07><Something/></DELVRY07>')
      expect(empty.status).toBe(400)
      expect(faultOf(await empty.text())).toMatchObject({ code: 'not_an_idoc', message: 'DELVRY07 holds no IDOC element' })
    })
  })

  it('reads a packet (several IDocs in one body), each IDoc under its own DOCNUM', async () => {
    const one = await orderInSap()
    const two = await orderInSap()
    const first = sap.ship(one.salesOrder)
    const second = sap.invoice(two.salesOrder)
    await sap.flushWebhooks()
    const idocOf = (xml: string) => /<IDOC BEGIN="1">.*<\/IDOC>/s.exec(xml)![0]
    const packet = `<?xml version="1.0" encoding="UTF-8"?><DELVRY07>${idocOf(first.xml)}${idocOf(second.xml)}</DELVRY07>`
    const answer = await post(packet)
    expect(answer.status).toBe(200)
    const entry = receiver.received.at(-1)!
    expect(entry.delivery!.events.map((e) => [e.eventId, e.type, e.externalId])).toEqual([
      [first.docnum, 'order.shipped', `ref:${one.reference}`],
      [second.docnum, 'order.invoiced', `ref:${two.reference}`],
    ])
  })

  it('turns our purchase order number back into the order id, and reads SAP\'s material numbers as SAP shows them', () => {
    expect(referenceOfBelnr('7C9E6679742540DE944BE07FC1F90AE7')).toBe('7c9e6679-7425-40de-944b-e07fc1f90ae7')
    expect(referenceOfBelnr('ORDER-42')).toBe('ORDER-42')
  })
})

describeConnectorConformance('sap-idoc', async () => {
  const sim = await startSapIdocSimulator({ ...credentials, ...partners })
  return {
    connector: sapIdoc,
    ctx: { settings: { baseUrl: sim.url, sapClient: '100', controlRecord, statusLookup: { path: sim.statusPath } }, secrets: credentials },
    // The connector writes our reference into E1EDK02 BELNR itself.
    sampleSalesOrder: () => example('salesforce-order.expected.json'),
    countSalesOrders: (reference) => sim.salesOrdersFor(belnrOf(reference)).length,
    faults: {
      failNext: (status, headers) => sim.faults.failNext(1, status, headers ? { headers } : {}),
      commitThenDropNext: () => sim.faults.commitThenDrop(1),
    },
    reset: () => sim.faults.reset(),
    close: () => sim.close(),
  }
})

