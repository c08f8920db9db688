import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  asArray,
  buildXml,
  escapeXmlText,
  parseXml,
  soapEnvelope,
  soapFault,
  xmlAttr,
  xmlChild,
  xmlText,
  XmlParseError,
} from '../../src/connector-kit/index.ts'

const salesforceMessage = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000062EAA</OrganizationId>
   <SessionId xsi:nil="true"/>
   <Notification>
    <Id>04l000000000001AAA</Id>
    <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>006000000000001AAA</sf:Id>
     <sf:Amount>0012.50</sf:Amount>
     <sf:Name>Tom &amp; Jerry &lt;3 &#x4E2D;&#25991;</sf:Name>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>`

function expectRefused(body: string | Uint8Array, code: string): void {
  let thrown: unknown
  try {
    parseXml(body)
  } catch (err) {
    thrown = err
  }
  expect(thrown).toBeInstanceOf(XmlParseError)
  expect((thrown as XmlParseError).code).toBe(code)
}

describe('parseXml', () => {
  it('strips namespace prefixes and xmlns attributes, keeps attribute values, and leaves every value a string', () => {
    const doc = parseXml(salesforceMessage, { arrays: ['Notification'] })
    const notifications = xmlChild(xmlChild(xmlChild(doc, 'Envelope'), 'Body'), 'notifications')
    expect(xmlText(xmlChild(notifications, 'OrganizationId'))).toBe('00D000000000062EAA')
    const list = asArray(xmlChild(notifications, 'Notification'))
    expect(list).toHaveLength(1)
    const sObject = xmlChild(list[0], 'sObject')
    expect(xmlAttr(sObject, 'type')).toBe('sf:Opportunity')
    expect(xmlText(xmlChild(sObject, 'Amount'))).toBe('0012.50')
    expect(xmlText(xmlChild(sObject, 'Name'))).toBe('Tom & Jerry <3 中文')
    expect(xmlAttr(sObject, 'xmlns:sf')).toBeUndefined()
    expect(xmlAttr(notifications, 'xmlns')).toBeUndefined()
  })

  it('keeps prefixes and xmlns attributes when asked', () => {
    const doc = parseXml(salesforceMessage, { keepPrefixes: true })
    const envelope = xmlChild(doc, 'soapenv:Envelope')
    expect(xmlAttr(envelope, 'xmlns:soapenv')).toBe('http://schemas.xmlsoap.org/soap/envelope/')
    const sObject = xmlChild(xmlChild(xmlChild(xmlChild(envelope, 'soapenv:Body'), 'notifications'), 'Notification'), 'sObject')
    expect(xmlText(xmlChild(sObject, 'sf:Id'))).toBe('006000000000001AAA')
  })

  it('makes repeated elements arrays, and named ones arrays even when single, by name or by path', () => {
    const two = parseXml('<r><line>1</line><line>2</line><one>x</one></r>')
    expect(xmlChild(two, 'r')).toEqual({ line: ['1', '2'], one: 'x' })
    expect(xmlChild(parseXml('<r><line>1</line></r>', { arrays: ['line'] }), 'r')).toEqual({ line: ['1'] })
    expect(xmlChild(parseXml('<r><a><line>1</line></a><line>2</line></r>', { arrays: ['r.a.line'] }), 'r')).toEqual({ a: { line: ['1'] }, line: '2' })
    expect(asArray(undefined)).toEqual([])
    expect(asArray('x')).toEqual(['x'])
  })

  it('reads attributes beside text, and empty elements as empty strings', () => {
    const doc = parseXml('<amount currency="CNY" note="a&quot;b">19.90</amount>')
    expect(xmlText(xmlChild(doc, 'amount'))).toBe('19.90')
    expect(xmlAttr(xmlChild(doc, 'amount'), 'currency')).toBe('CNY')
    expect(xmlAttr(xmlChild(doc, 'amount'), 'note')).toBe('a"b')
    expect(xmlText(xmlChild(parseXml('<a><b/></a>'), 'a'))).toBe('')
    expect(xmlChild(parseXml('<a><b/></a>'), 'a')).toEqual({ b: '' })
  })

  it('decodes references in one pass, leaves CDATA and unknown entities as written', () => {
    const doc = parseXml('<a><b>&amp;lt; &amp;#65; &#65;&#x42; &foo;</b><c><![CDATA[<x>&amp;</x>]]></c></a>')
    expect(xmlText(xmlChild(xmlChild(doc, 'a'), 'b'))).toBe('&lt; &#65; AB &foo;')
    expect(xmlText(xmlChild(xmlChild(doc, 'a'), 'c'))).toBe('<x>&amp;</x>')
  })

  it('does not treat inherited properties as children', () => {
    const doc = parseXml('<a><b>1</b></a>')
    expect(xmlChild(xmlChild(doc, 'a'), 'toString')).toBeUndefined()
    expect(xmlChild(xmlChild(doc, 'a'), 'hasOwnProperty')).toBeUndefined()
  })

  describe('refuses entity tricks before anything is expanded', () => {
    it('a billion-laughs body', () => {
      const lol = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>`
      expectRefused(lol, 'doctype')
    })

    it('an external entity', () => {
      expectRefused('<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>', 'doctype')
      expectRefused('<!DOCTYPE foo SYSTEM "http://attacker.example/evil.dtd"><foo/>', 'doctype')
      expectRefused('<!doctype foo><foo/>', 'doctype')
    })

    it('a declaration after a comment, and after the root', () => {
      expectRefused('<!-- hi --><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', 'doctype')
      expectRefused('<a>1</a><!ENTITY e "x">', 'doctype')
    })

    it('but accepts "<!DOCTYPE" inside a comment or CDATA, where it is only text', () => {
      const doc = parseXml('<!-- <!DOCTYPE x> --><a><![CDATA[<!DOCTYPE html><p>&e;</p>]]></a>')
      expect(xmlText(xmlChild(doc, 'a'))).toBe('<!DOCTYPE html><p>&e;</p>')
    })

    it('an entity that was never declared stays unexpanded', () => {
      expect(xmlText(xmlChild(parseXml('<a>&xxe;</a>'), 'a'))).toBe('&xxe;')
    })
  })

  it('refuses malformed XML, several roots and illegal character references with a position', () => {
    for (const body of ['<a><b>1</a>', '<a><b>1</b>', 'not xml', '', '<a>1</a><b>2</b>', '<a>&#0;</a>']) {
      expectRefused(body, 'malformed')
    }
    expect(() => parseXml('<a><b>1</a>')).toThrow(/line 1/)
  })

  it('decodes bytes as UTF-8 or as the declared encoding, and refuses bytes that do not decode', () => {
    expect(xmlText(xmlChild(parseXml(Buffer.from('\uFEFF<a>中文</a>', 'utf8')), 'a'))).toBe('中文')
    const gbk = Buffer.concat([Buffer.from('<?xml version="1.0" encoding="GBK"?><a>'), Buffer.from([0xd6, 0xd0, 0xce, 0xc4]), Buffer.from('</a>')])
    expect(xmlText(xmlChild(parseXml(gbk), 'a'))).toBe('中文')
    expectRefused(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]), 'encoding')
    expectRefused(Buffer.from('<?xml version="1.0" encoding="x-no-such"?><a/>'), 'encoding')
  })
})

describe('buildXml', () => {
  it('escapes text and attributes so no value can add markup', () => {
    const xml = buildXml({ a: { '@note': `"quoted" & 'single' <tag>\n`, b: '</b><evil/>&amp;', c: ['1', 2, true], d: null, e: undefined, f: '' } })
    expect(xml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><a note="&quot;quoted&quot; &amp; &apos;single&apos; &lt;tag&gt;&#10;"><b>&lt;/b&gt;&lt;evil/&gt;&amp;amp;</b><c>1</c><c>2</c><c>true</c><d/><f/></a>',
    )
    expect(xmlChild(parseXml(xml), 'a')).toEqual({ '@note': `"quoted" & 'single' <tag>\n`, b: '</b><evil/>&amp;', c: ['1', '2', 'true'], d: '', f: '' })
  })

  it('round-trips what parseXml reads, prefixes included', () => {
    const doc = parseXml(salesforceMessage, { keepPrefixes: true })
    expect(parseXml(buildXml(doc as never), { keepPrefixes: true })).toEqual(doc)
  })

  it('replaces characters XML cannot carry and refuses names that are not XML names', () => {
    expect(escapeXmlText('a\u0000b\u001Fc\uD800d')).toBe('a\uFFFDb\uFFFDc\uFFFDd')
    expect(() => buildXml({ 'a><evil': 'x' })).toThrow(/not a valid XML name/)
    expect(() => buildXml({ a: { '@x y': '1' } })).toThrow(/not a valid XML name/)
    expect(() => buildXml({ a: '1', b: '2' })).toThrow(/one root/)
    expect(() => buildXml({ a: Number.NaN })).toThrow(/cannot be written/)
  })

  it('writes SOAP envelopes and faults', () => {
    const ack = soapEnvelope({ notificationsResponse: { '@xmlns': 'http://soap.sforce.com/2005/09/outbound', Ack: true } })
    expect(ack).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>',
    )
    const fault = parseXml(soapFault('Client', 'organization <x> & not allowed'))
    const body = xmlChild(xmlChild(fault, 'Envelope'), 'Body')
    expect(xmlChild(body, 'Fault')).toEqual({ faultcode: 'soapenv:Client', faultstring: 'organization <x> & not allowed' })
  })
})

const fixtures = new URL('../../../shared/fixtures/', import.meta.url)
const fixture = (name: string) => readFileSync(new URL(name, fixtures))

describe.skipIf(!existsSync(fixtures))('vendor fixtures (../shared/fixtures)', () => {
  it('reads a Salesforce Order outbound message', () => {
    const doc = parseXml(fixture('salesforce-outbound-message-order.xml'), { arrays: ['Notification'] })
    const notifications = xmlChild(xmlChild(xmlChild(doc, 'Envelope'), 'Body'), 'notifications')
    const [notification] = asArray(xmlChild(notifications, 'Notification'))
    expect(xmlText(xmlChild(notification, 'Id'))).toBe('04lbm0000000001AAA')
    const order = xmlChild(notification, 'sObject')
    expect(xmlAttr(order, 'type')).toBe('sf:Order')
    expect(xmlText(xmlChild(order, 'OrderNumber'))).toBe('00000114')
    expect(xmlText(xmlChild(order, 'TotalAmount'))).toBe('1100.0')
    expect(xmlChild(notifications, 'SessionId')).toEqual({ '@nil': 'true' })
  })

  it('reads the captured single-line Opportunity message', () => {
    const doc = parseXml(fixture('salesforce-outbound-message-opportunity.xml'), { arrays: ['Envelope.Body.notifications.Notification'] })
    const notifications = xmlChild(xmlChild(xmlChild(doc, 'Envelope'), 'Body'), 'notifications')
    expect(asArray(xmlChild(notifications, 'Notification'))).toHaveLength(1)
    expect(xmlAttr(xmlChild(asArray(xmlChild(notifications, 'Notification'))[0], 'sObject'), 'type')).toBe('sf:Opportunity')
  })

  it('builds the acknowledgement Salesforce expects, and reads its fault template (with a BOM)', () => {
    const ack = soapEnvelope({ notificationsResponse: { '@xmlns': 'http://soap.sforce.com/2005/09/outbound', Ack: true } })
    expect(parseXml(ack)).toEqual(parseXml(fixture('salesforce-outbound-message-ack-response.xml')))
    const template = parseXml(fixture('salesforce-outbound-message-fault-response-template.xml'))
    expect(xmlChild(xmlChild(xmlChild(template, 'Envelope'), 'Body'), 'Fault')).toMatchObject({ faultcode: 'soapenv:Client', faultstring: '{0}' })
  })

  it('reads a SAP ORDERS05 IDoc: segments as arrays, numbers kept as written', () => {
    const doc = parseXml(fixture('sap-idoc-orders05-ext-lumberliquidators.xml'), { arrays: ['E1EDP01', 'E1EDK14'] })
    const idoc = xmlChild(xmlChild(doc, '_-LUMBERL_-3PL_ORDERS05_EXT'), 'IDOC')
    expect(xmlText(xmlChild(xmlChild(idoc, 'EDI_DC40'), 'DOCNUM'))).toBe('0000000064132944')
    const items = asArray(xmlChild(idoc, 'E1EDP01'))
    expect(items).toHaveLength(3)
    expect(xmlText(xmlChild(items[0], 'POSEX'))).toBe('00001')
    expect(xmlText(xmlChild(items[0], 'MENGE'))).toBe('5602.800')
    expect(xmlAttr(items[0], 'SEGMENT')).toBe('1')
    expect(asArray(xmlChild(idoc, 'E1EDK14'))).toHaveLength(4)
  })
})
