import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { SyncFailure, parseXml, xmlAttr, xmlChild, type Logger, type OperationContext, type XmlNode, type XmlValue } from '../../src/connector-kit/index.ts'
import { classifySapIdocError, soapFaultOf } from './errors.ts'
import { belnrOf, newDocnum, orders05InputSchema, type Orders05Document } from './idoc.ts'
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

