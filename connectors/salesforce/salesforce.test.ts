/**
 * The Salesforce connector against the vendor's published payloads (the outbound message, Ack and
 * fault fixtures) and against its simulator over real HTTP: notifications become events, refusals
 * are SOAP faults, entity expansion never happens, and writeback logs in once, re-logs in once on
 * INVALID_SESSION_ID, and classifies Salesforce's errors.
 */
import { readFileSync } from 'node:fs'
import { AxiosError, AxiosHeaders, type AxiosResponse } from 'axios'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { WebhookRejected, type OperationContext, type ReceivedDelivery } from '../../src/connector-kit/index.ts'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { classifySalesforceError, salesforce, settingsSchema, type SalesforceSecrets, type SalesforceSettings } from './index.ts'
import { forgetSalesforceSessions, parseSalesforceJson, recordJson, salesforceClient } from './client.ts'
import { orderLinesQuery } from './enrichment.ts'
import { compileMapping } from '../../src/mapping/compile-mapping.ts'
import { loadMappingSpecs } from '../../src/mapping/mapping-catalog.ts'
import { mappedOrderSchema, withTotals } from '../../src/orders/order.schemas.ts'
import { startSalesforceSimulator, type SalesforceRestError, type SalesforceSimulator } from './simulator.ts'
import { createOutboundMessageSender, toCaseSafeId } from './sender.ts'
import { ackEnvelope, faultEnvelope, parseOutboundMessage, readXml, type XmlElement } from './soap.ts'

const fixtures = '/work/shared/fixtures'
const fixture = (name: string) => readFileSync(`${fixtures}/${name}`)
const orderXml = fixture('salesforce-outbound-message-order.xml').toString('utf8')
const orderOrg = '00Dbm00000HtFW5AAA'
const inbound = salesforce.customWebhooks!

const settings = (extra: Record<string, unknown> = {}): SalesforceSettings => settingsSchema.parse({ organizationId: orderOrg, ...extra })

/** The Order fixture with a LastModifiedDate selected, as this connector asks the message to carry. */
const withLastModified = (xml: string, at = '2024-05-20T08:15:30.000Z') => xml.replace('</sObject>', `<sf:LastModifiedDate>${at}</sf:LastModifiedDate></sObject>`)

function receive(raw: string | Buffer, s: SalesforceSettings = settings()): ReceivedDelivery {
  return inbound.receive({ raw: Buffer.isBuffer(raw) ? raw : Buffer.from(raw), headers: { 'content-type': 'text/xml; charset=utf-8' }, settings: s, secrets: {} })
}

function rejection(fn: () => unknown): WebhookRejected {
  try {
    fn()
  } catch (err) {
    if (err instanceof WebhookRejected) return err
    throw err
  }
  throw new Error('expected a WebhookRejected')
}

/** Element names, namespaces, attributes and leaf text: what a SOAP stack compares. */
function shape(el: XmlElement): unknown {
  return {
    name: el.name,
    ns: el.ns,
    attrs: el.attrs,
    ...(el.children.length ? { children: el.children.map(shape) } : { text: el.text.trim() }),
  }
}

describe('outbound messages (the vendor fixtures)', () => {
  it('reads the Order fixture: org, action, and the sObject fields as text', () => {
    const message = parseOutboundMessage(fixture('salesforce-outbound-message-order.xml'))
    expect(message).toEqual({
      organizationId: '00Dbm00000HtFW5AAA',
      actionId: '04kbm0000000001AAA',
      enterpriseUrl: 'https://example.my.salesforce.com/services/Soap/c/60.0/00Dbm00000HtFW5',
      partnerUrl: 'https://example.my.salesforce.com/services/Soap/u/60.0/00Dbm00000HtFW5',
      notifications: [
        {
          id: '04lbm0000000001AAA',
          sObjectType: 'Order',
          fields: { Id: '801bm000029lXiHAAU', AccountId: '001bm000028FNI2AAO', Credit_Status__c: 'Approved', OrderNumber: '00000114', TotalAmount: '1100.0' },
        },
      ],
    })
  })

  it('reads the captured Opportunity fixture (single line, as sent)', () => {
    const message = parseOutboundMessage(fixture('salesforce-outbound-message-opportunity.xml'))
    expect(message.organizationId).toBe('00D7F00000107XsUAI')
    expect(message.sessionId).toBeUndefined()
    expect(message.notifications).toEqual([
      {
        id: '04l7F000008aeAyQAI',
        sObjectType: 'Opportunity',
        fields: { Id: '0067F000003pmdWQAQ', AccountId: '0017F000007ydJmQAI', Amount: '120000.0', CloseDate: '2017-04-03', LeadSource: 'Phone Inquiry', Name: 'Express Logistics SLA', StageName: 'Perception Analysis' },
      },
    ])
  })

  it('turns an Order notification into an event: Notification Id, Order Id, LastModifiedDate as version, fields as text', () => {
    const { events } = receive(withLastModified(orderXml))
    expect(events).toEqual([
      {
        eventId: '04lbm0000000001AAA',
        type: 'order.updated',
        externalId: '801bm000029lXiHAAU',
        sourceVersion: Date.parse('2024-05-20T08:15:30.000Z'),
        document: {
          Id: '801bm000029lXiHAAU',
          AccountId: '001bm000028FNI2AAO',
          Credit_Status__c: 'Approved',
          OrderNumber: '00000114',
          TotalAmount: '1100.0',
          LastModifiedDate: '2024-05-20T08:15:30.000Z',
        },
      },
    ])
  })

  it('refuses the Order fixture as published (422): it selects neither LastModifiedDate nor SystemModstamp, so updates could not be ordered', () => {
    const refused = rejection(() => receive(orderXml))
    expect(refused.status).toBe(422)
    expect(refused.details).toEqual([{ path: 'notifications.Notification[0].sObject.LastModifiedDate', message: expect.stringContaining('select LastModifiedDate or SystemModstamp') }])
  })

  it('refuses the Opportunity fixture (422): this connection takes Orders', () => {
    const refused = rejection(() => receive(fixture('salesforce-outbound-message-opportunity.xml'), settings({ organizationId: '00D7F00000107XsUAI' })))
    expect(refused.status).toBe(422)
    expect(refused.details).toContainEqual({ path: 'notifications.Notification[0].sObject', message: 'expected an sf:Order, got sf:Opportunity' })
  })

  it('prefers SystemModstamp, and decides created, updated and cancelled', () => {
    const sender = createOutboundMessageSender({ url: 'http://unused', organizationId: orderOrg, instanceUrl: 'https://acme.my.salesforce.com' })
    const base = { Id: toCaseSafeId('801bm000029lXiH'), CreatedDate: '2024-05-20T08:00:00.000Z' }
    const { xml } = sender.message([
      { id: 'n1', fields: { ...base, LastModifiedDate: '2024-05-20T08:00:00.000Z', SystemModstamp: '2024-05-20T08:00:01.000Z', Status: 'Draft' } },
      { id: 'n2', fields: { ...base, LastModifiedDate: '2024-05-21T09:00:00.000Z', Status: 'Activated' } },
      { id: 'n3', fields: { ...base, LastModifiedDate: '2024-05-22T10:00:00.000+08:00', Status: 'Cancelled' } },
    ])
    const events = receive(xml, settings({ cancelledStatuses: ['Cancelled'] })).events
    expect(events.map((e) => [e.eventId, e.type, e.sourceVersion])).toEqual([
      ['n1', 'order.created', Date.parse('2024-05-20T08:00:01.000Z')],
      ['n2', 'order.updated', Date.parse('2024-05-21T09:00:00.000Z')],
      ['n3', 'order.cancelled', Date.parse('2024-05-22T02:00:00.000Z')],
    ])
    expect(receive(xml, settings({ eventType: 'order.created' })).events.map((e) => e.type)).toEqual(['order.created', 'order.created', 'order.created'])
  })

  it('leaves nil fields out and decodes the predefined entities', () => {
    const sender = createOutboundMessageSender({ url: 'http://unused', organizationId: orderOrg, instanceUrl: 'https://acme.my.salesforce.com' })
    const { xml } = sender.message([{ fields: { Id: '801bm000029lXiHAAU', Description: 'Smith & Sons <rush> "A"', PoNumber: null, LastModifiedDate: '2024-05-20T08:00:00.000Z' } }])
    expect(xml).toContain('<sf:PoNumber xsi:nil="true"/>')
    expect(receive(xml).events[0]!.document).toEqual({ Id: '801bm000029lXiHAAU', Description: 'Smith & Sons <rush> "A"', LastModifiedDate: '2024-05-20T08:00:00.000Z' })
  })
})

describe('refused messages answer with a SOAP fault', () => {
  it('401 for a message from another organization', () => {
    const refused = rejection(() => receive(withLastModified(orderXml), settings({ organizationId: '00D000000000001AAA' })))
    expect(refused).toMatchObject({ status: 401, code: 'wrong_organization' })
    const answer = inbound.refuse(refused)
    expect(answer.contentType).toBe('text/xml; charset=utf-8')
    const fault = readXml(answer.body).children[0]!.children[0]!
    expect(fault.name).toBe('Fault')
    expect(fault.children.map((c) => [c.name, c.text.trim()])).toEqual([
      ['faultcode', 'soapenv:Client'],
      ['faultstring', 'the message comes from organization 00Dbm00000HtFW5AAA, which this connection does not accept'],
      ['detail', ''],
    ])
  })

  it('takes the 15-character form of the configured organization id', () => {
    expect(receive(withLastModified(orderXml), settings({ organizationId: '00Dbm00000HtFW5' })).events).toHaveLength(1)
  })

  it('400 for XML that is not well-formed, for another SOAP body, and for a notifications message missing its parts', () => {
    expect(rejection(() => receive('<soapenv:Envelope><oops></soapenv:Envelope>'))).toMatchObject({ status: 400, code: 'malformed_xml' })
    expect(rejection(() => receive('{"type": "order.created"}'))).toMatchObject({ status: 400, code: 'malformed_xml' })
    expect(rejection(() => receive(fixture('salesforce-outbound-message-ack-response.xml')))).toMatchObject({
      status: 400,
      code: 'malformed_envelope',
      message: 'the SOAP Body holds notificationsResponse, expected notifications in http://soap.sforce.com/2005/09/outbound',
    })
    const gutted = orderXml.replace(/<OrganizationId>.*<\/OrganizationId>/, '').replace(/<Id>04l[^<]*<\/Id>/, '')
    expect(rejection(() => receive(gutted))).toMatchObject({
      status: 400,
      details: [
        { path: 'notifications.OrganizationId', message: 'is required' },
        { path: 'notifications.Notification[0].Id', message: 'is required' },
      ],
    })
  })

  it('400 for more than the 100 notifications the WSDL allows', () => {
    const notification = /<Notification>[\s\S]*<\/Notification>/.exec(orderXml)![0]
    const tooMany = orderXml.replace(notification, notification.repeat(101))
    expect(rejection(() => receive(tooMany)).details).toEqual([{ path: 'notifications.Notification', message: 'at most 100 Notification elements, got 101' }])
  })

  it('never expands entities: a DOCTYPE is refused, and a reference to an undeclared entity stays text', () => {
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
      '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>' +
      orderXml.slice(orderXml.indexOf('<soapenv:Envelope')).replace('Approved', '&lol2;')
    expect(rejection(() => receive(laughs))).toMatchObject({ status: 400, code: 'xml_doctype_refused' })
    const external = `<?xml version="1.0"?><!doctype x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${orderXml.slice(orderXml.indexOf('<soapenv:Envelope')).replace('Approved', '&xxe;')}`
    expect(rejection(() => receive(external))).toMatchObject({ status: 400, code: 'xml_doctype_refused' })
    // Without a declaration, an entity reference is text like any other: kept as written, never expanded.
    expect(receive(withLastModified(orderXml.replace('Approved', '&xxe;'))).events[0]!.document.Credit_Status__c).toBe('&xxe;')
  })
})

describe('answers', () => {
  it('the Ack has the structure of the published notificationsResponse', () => {
    const answer = inbound.acknowledge({ events: [] })
    expect(answer.contentType).toBe('text/xml; charset=utf-8')
    expect(shape(readXml(answer.body))).toEqual(shape(readXml(fixture('salesforce-outbound-message-ack-response.xml'))))
  })

  it('the fault has the structure of the published fault template', () => {
    const template = fixture('salesforce-outbound-message-fault-response-template.xml').toString('utf8').replace('{0}', 'no &amp; good')
    expect(shape(readXml(faultEnvelope('no & good')))).toEqual(shape(readXml(template)))
    expect(shape(readXml(ackEnvelope()))).not.toEqual(shape(readXml(template)))
  })
})

function axiosError(status: number, data: unknown, headers: Record<string, string> = {}): AxiosError {
  const response = { status, statusText: '', data, headers: AxiosHeaders.from(headers), config: { headers: new AxiosHeaders() } } as AxiosResponse
  return new AxiosError(`Request failed with status code ${status}`, 'ERR_BAD_RESPONSE', undefined, undefined, response)
}

describe('classify', () => {
  const rest = (errorCode: string, fields: string[] = []) => [{ message: `${errorCode} happened`, errorCode, fields }]
  it.each([
    [401, rest('INVALID_SESSION_ID'), 'auth'],
    [403, rest('REQUEST_LIMIT_EXCEEDED'), 'rate_limited'],
    [400, rest('ENTITY_IS_LOCKED'), 'conflict'],
    [400, rest('UNABLE_TO_LOCK_ROW'), 'conflict'],
    [400, rest('FIELD_CUSTOM_VALIDATION_EXCEPTION'), 'data'],
    [400, rest('REQUIRED_FIELD_MISSING', ['Body']), 'data'],
    [400, rest('STRING_TOO_LONG'), 'data'],
    [400, rest('INVALID_FIELD'), 'config'],
    [400, rest('INVALID_FIELD_FOR_INSERT_UPDATE'), 'config'],
    [403, rest('INSUFFICIENT_ACCESS_OR_READONLY'), 'auth'],
    [404, rest('NOT_FOUND'), 'not_found'],
    [400, rest('SOMETHING_NEW'), 'data'],
    [403, rest('SOMETHING_NEW'), 'auth'],
    [500, rest('UNKNOWN_EXCEPTION'), 'transient'],
    [503, rest('SERVER_UNAVAILABLE'), 'transient'],
    [502, '<html>Bad gateway</html>', 'transient'],
    [429, '', 'rate_limited'],
    [400, { error: 'invalid_client', error_description: 'invalid client credentials' }, 'auth'],
    [400, { error: 'invalid_grant', error_description: 'no client credentials user enabled' }, 'auth'],
    [503, { error: 'unavailable' }, 'transient'],
    [400, rest('MALFORMED_QUERY'), 'config'],
    [400, rest('INVALID_TYPE'), 'config'],
    [400, rest('INVALID_QUERY_FILTER_OPERATOR'), 'data'],
    [400, rest('INVALID_QUERY_LOCATOR'), 'transient'],
    [400, rest('QUERY_TIMEOUT'), 'transient'],
  ] as const)('HTTP %i %j is %s', (status, data, kind) => {
    expect(classifySalesforceError(axiosError(status, data)).kind).toBe(kind)
  })

  it('says what Salesforce said, with the fields, and keeps Retry-After', () => {
    const failure = classifySalesforceError(axiosError(400, rest('FIELD_CUSTOM_VALIDATION_EXCEPTION', ['Orderbridge_State__c']), { 'retry-after': '30' }))
    expect(failure.message).toBe('Salesforce FIELD_CUSTOM_VALIDATION_EXCEPTION: FIELD_CUSTOM_VALIDATION_EXCEPTION happened (Orderbridge_State__c)')
    expect(failure.details).toMatchObject({ connectorId: 'salesforce', httpStatus: 400, retryAfterMs: 30_000 })
  })

  it('a connection refused before sending is transient; a timeout is an unknown outcome', () => {
    expect(classifySalesforceError(new AxiosError('connect ECONNREFUSED', 'ECONNREFUSED')).kind).toBe('transient')
    expect(classifySalesforceError(new AxiosError('timeout', 'ECONNABORTED')).kind).toBe('unknown_outcome')
  })
})

describe('writeback through the simulator', () => {
  let sim: SalesforceSimulator
  const secrets: SalesforceSecrets = { clientId: '3MVG9-test-consumer-key', clientSecret: 'test-consumer-secret' }
  const fields = { state: 'Orderbridge_State__c', erpOrderNumber: 'ERP_Order_Number__c', invoiceNumber: 'Invoice_Number__c', trackingNumber: 'Tracking_Number__c', paidAmount: 'Paid_Amount__c' }
  const silent = { info() {}, warn() {}, error() {} }

  beforeAll(async () => {
    sim = await startSalesforceSimulator({ ...secrets, clientId: secrets.clientId!, clientSecret: secrets.clientSecret!, organizationId: orderOrg, customOrderFields: Object.values(fields), taskExternalIdField: 'Orderbridge_Key__c' })
  })
  afterAll(() => sim?.close())
  beforeEach(() => forgetSalesforceSessions())

  function ctx(extra: Record<string, unknown> = {}, s: SalesforceSecrets = secrets, key = 'order-1-salesforce-crm.status-v1'): OperationContext<SalesforceSettings, SalesforceSecrets> {
    return { connectionId: 'salesforce', settings: settings({ myDomainUrl: sim.url, fields, ...extra }), secrets: s, log: silent, idempotencyKey: key, reference: 'order-1', mayHaveWritten: false }
  }
  const crm = salesforce.crm!

  it('PATCHes the configured Order fields, the paid amount as an exact number, and logs in once for many calls', async () => {
    const order = sim.createOrder({ AccountId: '001bm000028FNI2AAO' })
    const logins = sim.logins()
    const c = ctx()
    await crm.updateOrderStatus(c, order.Id!, { state: 'approved' })
    await crm.updateOrderStatus(c, order.Id!, { state: 'shipped', erpOrderNumber: 'SO-7', trackingNumber: '1Z999', carrier: 'UPS', paidAmount: '1100.10', currency: 'USD' })
    expect(sim.logins() - logins).toBe(1)
    expect(sim.order(order.Id!)).toMatchObject({ Orderbridge_State__c: 'shipped', ERP_Order_Number__c: 'SO-7', Tracking_Number__c: '1Z999', Paid_Amount__c: '1100.10' })
    const patch = sim.requests().filter((r) => r.method === 'PATCH').at(-1)!
    expect(patch).toMatchObject({ path: `/services/data/v62.0/sobjects/Order/${order.Id}`, status: 204 })
    // No carrier or currency field is configured, so neither is sent.
    expect(patch.body).toBe('{"Orderbridge_State__c":"shipped","ERP_Order_Number__c":"SO-7","Tracking_Number__c":"1Z999","Paid_Amount__c":1100.10}')
  })

  it('logs in again once when the session is revoked, and the call succeeds', async () => {
    const order = sim.createOrder()
    const c = ctx()
    await crm.updateOrderStatus(c, order.Id!, { state: 'approved' })
    const logins = sim.logins()
    sim.revokeTokens()
    await crm.updateOrderStatus(c, order.Id!, { state: 'reserved' })
    expect(sim.logins() - logins).toBe(1)
    expect(sim.order(order.Id!)!.Orderbridge_State__c).toBe('reserved')
  })

  it('concurrent calls share one login', async () => {
    const order = sim.createOrder()
    const logins = sim.logins()
    const c = ctx()
    await Promise.all(Array.from({ length: 5 }, (_, i) => crm.updateOrderStatus(c, order.Id!, { state: `state-${i}` })))
    expect(sim.logins() - logins).toBe(1)
  })

  it('gives up after one new login when Salesforce keeps answering INVALID_SESSION_ID: auth', async () => {
    const order = sim.createOrder()
    const c = ctx()
    await crm.updateOrderStatus(c, order.Id!, { state: 'approved' })
    const logins = sim.logins()
    sim.failNext(2, 401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }])
    const err = await crm.updateOrderStatus(c, order.Id!, { state: 'reserved' }).catch((e: unknown) => e)
    expect(sim.logins() - logins).toBe(1)
    expect(salesforce.classify(err, c)).toMatchObject({ kind: 'auth', message: 'the remote refused a freshly opened session' })
  })

  it('classifies what the simulator answers: a locked row is a conflict, a validation rule is data, a wrong field is config', async () => {
    const order = sim.createOrder()
    const c = ctx()
    sim.failNext(1, 400, [{ message: 'unable to obtain exclusive access to this record', errorCode: 'UNABLE_TO_LOCK_ROW', fields: [] }])
    expect(salesforce.classify(await crm.updateOrderStatus(c, order.Id!, { state: 'approved' }).catch((e: unknown) => e), c).kind).toBe('conflict')
    sim.failNext(1, 400, [{ message: 'Orders on credit hold cannot ship', errorCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', fields: [] }])
    expect(salesforce.classify(await crm.updateOrderStatus(c, order.Id!, { state: 'shipped' }).catch((e: unknown) => e), c)).toMatchObject({ kind: 'data', message: 'Salesforce FIELD_CUSTOM_VALIDATION_EXCEPTION: Orders on credit hold cannot ship' })
    sim.failNext(1, 403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }])
    expect(salesforce.classify(await crm.updateOrderStatus(c, order.Id!, { state: 'shipped' }).catch((e: unknown) => e), c).kind).toBe('rate_limited')
    const wrongField = ctx({ fields: { state: 'No_Such_Field__c' } })
    const err = await crm.updateOrderStatus(wrongField, order.Id!, { state: 'approved' }).catch((e: unknown) => e)
    expect(salesforce.classify(err, wrongField)).toMatchObject({ kind: 'config', message: "Salesforce INVALID_FIELD: No such column 'No_Such_Field__c' on sobject of type Order" })
    const missing = await crm.updateOrderStatus(c, '801000000000000AAA', { state: 'approved' }).catch((e: unknown) => e)
    expect(salesforce.classify(missing, c).kind).toBe('not_found')
  })

  it('wrong client credentials are auth; an id that is no Salesforce id never reaches the network', async () => {
    const c = ctx({}, { clientId: secrets.clientId, clientSecret: 'wrong' })
    const err = await crm.updateOrderStatus(c, sim.createOrder().Id!, { state: 'approved' }).catch((e: unknown) => e)
    expect(salesforce.classify(err, c)).toMatchObject({ kind: 'auth', message: 'Salesforce login refused (invalid_client: invalid client credentials)' })
    const bad = await crm.updateOrderStatus(ctx(), '../Account/001', { state: 'approved' }).catch((e: unknown) => e)
    expect(salesforce.classify(bad, ctx()).kind).toBe('data')
  })

  it('a note is a Task upserted by our idempotency key: a retry leaves one Task', async () => {
    const order = sim.createOrder()
    const c = ctx({ notes: { object: 'Task', externalIdField: 'Orderbridge_Key__c' } }, secrets, 'order-9-salesforce-crm.note-v1')
    await crm.addNote!(c, order.Id!, { title: 'Approval waiting', body: 'Order 00000101 waits for finance.' })
    await crm.addNote!(c, order.Id!, { title: 'Approval waiting', body: 'Order 00000101 waits for finance.' })
    const tasks = sim.tasks().filter((t) => t.WhatId === order.Id)
    expect(tasks).toEqual([expect.objectContaining({ Subject: 'Approval waiting', Description: 'Order 00000101 waits for finance.', Status: 'Not Started', Orderbridge_Key__c: 'order-9-salesforce-crm.note-v1' })])
  })

  it('a note can be a plain Task or a Chatter post', async () => {
    const order = sim.createOrder()
    await crm.addNote!(ctx(), order.Id!, { title: 'Shipped', body: 'Tracking 1Z999' })
    await crm.addNote!(ctx({ notes: { object: 'FeedItem' } }), order.Id!, { title: 'Shipped', body: 'Tracking 1Z999' })
    expect(sim.tasks().filter((t) => t.WhatId === order.Id)).toHaveLength(1)
    expect(sim.feedItems().filter((f) => f.ParentId === order.Id)).toEqual([expect.objectContaining({ Type: 'TextPost', Body: 'Shipped\n\nTracking 1Z999' })])
  })

  it('check() logs in and finds every configured field, or names the missing one', async () => {
    await expect(salesforce.check(ctx())).resolves.toBeUndefined()
    await expect(salesforce.check(ctx({ fields: { state: 'Orderbridge_State__c', carrier: 'Carrier__c' } }))).rejects.toMatchObject({ kind: 'config', message: 'Order has no field the integration user can update named Carrier__c' })
    // Push-only: nothing to check, nothing to write back.
    await expect(salesforce.check({ ...ctx(), settings: settings() })).resolves.toBeUndefined()
    expect(crm.enabled!(settings())).toBe(false)
  })

  it('writes decimals digit for digit and refuses anything else as a number', () => {
    expect(recordJson({ A__c: 'x', B__c: { decimal: '0.10' } })).toBe('{"A__c":"x","B__c":0.10}')
    expect(() => recordJson({ B__c: { decimal: '1e3' } })).toThrow('is not a decimal')
  })

  it('needs credentials for writeback (config)', async () => {
    const c = ctx({}, {})
    const err = await salesforceClient(c).updateOrder(sim.createOrder().Id!, {}).catch((e: unknown) => e)
    expect(salesforce.classify(err, c).kind).toBe('config')
  })
})

describe('order lines: one SOQL query in the worker (enrichment)', () => {
  let sim: SalesforceSimulator
  const secrets: SalesforceSecrets = { clientId: '3MVG9-lines-consumer-key', clientSecret: 'lines-consumer-secret' }
  const silent = { info() {}, warn() {}, error() {} }
  const enrichment = salesforce.enrichment!
  const mapping = compileMapping(loadMappingSpecs().find((m) => m.id === 'salesforce.to-canonical.order')!)

  beforeAll(async () => {
    // Two items per answer, so three items already take a nextRecordsUrl.
    sim = await startSalesforceSimulator({ ...secrets, clientId: secrets.clientId!, clientSecret: secrets.clientSecret!, organizationId: orderOrg, childBatchSize: 2, customOrderItemFields: ['SKU__c'] })
  })
  afterAll(() => sim?.close())
  beforeEach(() => {
    forgetSalesforceSessions()
    sim.failNext(0, 200, [])
  })

  const ctx = (extra: Record<string, unknown> = {}, s: SalesforceSecrets = secrets) => ({ connectionId: 'salesforce', settings: settings({ myDomainUrl: sim.url, ...extra }), secrets: s, log: silent })
  /** An Order with its items in the org, and the document its outbound message notification becomes. */
  function orderWithItems(items: { code: string; qty: string; price: string; sku?: string }[]) {
    const account = sim.createAccount({ Name: 'Express Logistics and Transport' })
    const order = sim.createOrder({ AccountId: account.Id!, CurrencyIsoCode: 'USD', OwnerId: '005bm000001Xy2ZAAS' })
    if (items.length) {
      sim.addOrderItems(
        order.Id!,
        items.map((i) => ({ ProductCode: i.code, Quantity: i.qty, UnitPrice: i.price, ...(i.sku ? { fields: { SKU__c: i.sku }, product: { StockKeepingUnit: i.sku } } : {}) })),
      )
    }
    const sent = sim.order(order.Id!)!
    const document = Object.fromEntries(Object.entries(sent).filter(([, v]) => v !== null)) as Record<string, string>
    return { account, order: sent, document }
  }
  const enrich = (document: Record<string, unknown>, c = ctx()) => enrichment.enrich(c, { type: 'order.created', externalId: document.Id as string, document })
  const failureOf = async (run: Promise<unknown>, c = ctx()) => salesforce.classify(await run.then(() => undefined, (e: unknown) => e), c)

  it('attaches the Account and the OrderItems in the REST shape, numbers as the text Salesforce wrote, with one query', async () => {
    const { account, order, document } = orderWithItems([
      { code: 'SKU-100', qty: '2.0', price: '350.00' },
      { code: 'SKU-101', qty: '4', price: '100.10' },
    ])
    const before = sim.requests().length
    const enriched = await enrich(document)
    const requests = sim.requests().slice(before)
    expect(requests).toHaveLength(1)
    expect(requests[0]).toMatchObject({ method: 'GET', status: 200 })
    expect(orderLinesQuery(order.Id!, 'Product2.ProductCode')).toBe(
      `SELECT Id, Account.Id, Account.Name, (SELECT Id, Product2.ProductCode, Quantity, UnitPrice FROM OrderItems ORDER BY OrderItemNumber) FROM Order WHERE Id = '${order.Id}'`,
    )
    expect(decodeURIComponent(requests[0]!.path)).toBe(`/services/data/v62.0/query?q=${orderLinesQuery(order.Id!, 'Product2.ProductCode')}`)
    const items = sim.orderItems(order.Id!)
    expect(enriched).toEqual({
      ...document,
      Account: { attributes: { type: 'Account', url: `/services/data/v62.0/sobjects/Account/${account.Id}` }, Id: account.Id, Name: 'Express Logistics and Transport' },
      OrderItems: {
        totalSize: 2,
        done: true,
        records: items.map((item, i) => ({
          attributes: { type: 'OrderItem', url: `/services/data/v62.0/sobjects/OrderItem/${item.Id}` },
          Id: item.Id,
          Product2: { attributes: { type: 'Product2', url: `/services/data/v62.0/sobjects/Product2/${item.Product2Id}` }, ProductCode: ['SKU-100', 'SKU-101'][i] },
          Quantity: ['2.0', '4'][i],
          UnitPrice: ['350.00', '100.10'][i],
        })),
      },
    })
    // The roll-up moved with the items, and the mapping makes a canonical order of it all.
    expect(order.TotalAmount).toBe('1100.40')
    const mapped = await mapping.apply(enriched)
    if (!mapped.ok) throw new Error(JSON.stringify(mapped.errors))
    expect(withTotals(mappedOrderSchema.parse(mapped.value))).toMatchObject({
      externalId: order.Id,
      customer: { externalId: account.Id, name: 'Express Logistics and Transport' },
      currency: 'USD',
      lines: [
        { sku: 'SKU-100', quantity: '2.0', unitPrice: '350.00', lineTotal: '700.00' },
        { sku: 'SKU-101', quantity: '4', unitPrice: '100.10', lineTotal: '400.40' },
      ],
      total: '1100.40',
    })
  })

  it('follows nextRecordsUrl until every OrderItem is read, in OrderItemNumber order', async () => {
    const codes = ['SKU-100', 'SKU-101', 'SKU-102', 'SKU-103', 'SKU-104']
    const { document } = orderWithItems(codes.map((code, i) => ({ code, qty: String(i + 1), price: '1.00' })))
    const before = sim.requests().length
    const enriched = (await enrich(document)) as { OrderItems: { totalSize: number; done: boolean; records: { Product2: { ProductCode: string }; Quantity: string }[] } }
    const paths = sim.requests().slice(before).map((r) => r.path)
    expect(paths).toHaveLength(3)
    expect(paths[1]).toMatch(/^\/services\/data\/v62\.0\/query\/01g[A-Za-z0-9]+-2$/)
    expect(paths[2]).toMatch(/^\/services\/data\/v62\.0\/query\/01g[A-Za-z0-9]+-4$/)
    expect(enriched.OrderItems).toMatchObject({ totalSize: 5, done: true })
    expect(enriched.OrderItems.records.map((r) => [r.Product2.ProductCode, r.Quantity])).toEqual(codes.map((code, i) => [code, String(i + 1)]))
  })

  it('reads the configured SKU field at its own path', async () => {
    const { document } = orderWithItems([{ code: 'GC1040', qty: '1', price: '5', sku: 'SKU-105' }])
    const viaProduct = (await enrich(document, ctx({ skuField: 'Product2.StockKeepingUnit' }))) as { OrderItems: { records: Record<string, unknown>[] } }
    expect(viaProduct.OrderItems.records[0]).toMatchObject({ Product2: { StockKeepingUnit: 'SKU-105' }, Quantity: '1', UnitPrice: '5' })
    const viaItem = (await enrich(document, ctx({ skuField: 'SKU__c' }))) as { OrderItems: { records: Record<string, unknown>[] } }
    expect(viaItem.OrderItems.records[0]).toMatchObject({ SKU__c: 'SKU-105' })
    expect(viaItem.OrderItems.records[0]).not.toHaveProperty('Product2')
    expect(() => settings({ skuField: "Product2.ProductCode FROM Account WHERE Name = 'x'" })).toThrow()
  })

  it('an Order without items gets an empty list, which the mapping refuses: lines are required', async () => {
    const { document } = orderWithItems([])
    const enriched = await enrich(document)
    expect(enriched.OrderItems).toEqual({ totalSize: 0, done: true, records: [] })
    expect(await mapping.apply(enriched)).toMatchObject({ ok: false })
  })

  it('a deleted Order is not_found (permanent), with a clear message', async () => {
    const { document } = orderWithItems([{ code: 'SKU-100', qty: '1', price: '1' }])
    sim.deleteOrder(document.Id!)
    const failure = await failureOf(enrich(document))
    expect(failure).toMatchObject({ kind: 'not_found', message: `Salesforce has no Order ${document.Id}: it was deleted, or the integration user may not see it` })
    expect(failure.retryable).toBe(false)
  })

  it('logs in again once on INVALID_SESSION_ID and reads the lines', async () => {
    const { document } = orderWithItems([{ code: 'SKU-100', qty: '1', price: '1' }])
    await enrich(document)
    const logins = sim.logins()
    sim.revokeTokens()
    await expect(enrich(document)).resolves.toHaveProperty('OrderItems.totalSize', 1)
    expect(sim.logins() - logins).toBe(1)
  })

  it('a 503 is transient (the event is retried), on the first page or a later one', async () => {
    const { document } = orderWithItems(['SKU-100', 'SKU-101', 'SKU-102'].map((code) => ({ code, qty: '1', price: '1' })))
    const unavailable = [{ errorCode: 'SERVER_UNAVAILABLE', message: 'Server temporarily unavailable' }]
    sim.failNext(1, 503, unavailable)
    expect(await failureOf(enrich(document))).toMatchObject({ kind: 'transient', message: 'Salesforce SERVER_UNAVAILABLE: Server temporarily unavailable', retryable: true })
    sim.failNext(1, 503, unavailable, {}, { match: (r) => /\/query\/01g/.test(r.url) })
    expect((await failureOf(enrich(document))).kind).toBe('transient')
    await expect(enrich(document)).resolves.toHaveProperty('OrderItems.totalSize', 3)
  })

  it('a SKU field the org does not have is config, and Salesforce says which; check() finds it at start', async () => {
    const { document } = orderWithItems([{ code: 'SKU-100', qty: '1', price: '1' }])
    const c = ctx({ skuField: 'Product2.Sku__c' })
    const failure = await failureOf(enrich(document, c), c)
    expect(failure.kind).toBe('config')
    // Salesforce's message echoes the query with a caret; the reason and the position are what is kept.
    expect(failure.message).toMatch(/^Salesforce INVALID_FIELD: No such column 'Sku__c' on entity 'Product2'\. If you are attempting to use a custom field/)
    expect(failure.message).toMatch(/\(query row 1, column 50\)$/)
    expect(await failureOf(salesforce.check(c), c)).toMatchObject({ kind: 'config' })
    await expect(salesforce.check(ctx())).resolves.toBeUndefined()
  })

  it('without API access every order needs attention: config', async () => {
    const { document } = orderWithItems([{ code: 'SKU-100', qty: '1', price: '1' }])
    const noUrl = { connectionId: 'salesforce', settings: settings(), secrets, log: silent }
    expect(await failureOf(enrich(document, noUrl), noUrl)).toMatchObject({ kind: 'config', message: expect.stringContaining('need settings.myDomainUrl') })
    const noSecrets = ctx({}, {})
    expect((await failureOf(enrich(document, noSecrets), noSecrets)).kind).toBe('config')
  })

  it('never follows a nextRecordsUrl off the query resource (the token would go with it)', async () => {
    const before = sim.requests().length
    for (const url of ['https://evil.example/services/data/v62.0/query/01gx-2', '/services/data/v62.0/sobjects/Order/801bm000029lXiHAAU', '//evil.example/x']) {
      expect((await failureOf(salesforceClient(ctx()).queryMore(url))).kind).toBe('bug')
    }
    expect(sim.requests().length).toBe(before)
  })

  it('parses Salesforce JSON keeping every number as written', () => {
    expect(parseSalesforceJson('{"Quantity":2.0,"UnitPrice":1100.10,"big":12345678901234567890,"done":true}')).toEqual({ Quantity: '2.0', UnitPrice: '1100.10', big: '12345678901234567890', done: true })
  })
})

describe("the simulator's query resource", () => {
  let sim: SalesforceSimulator
  const creds = { clientId: 'sim-query-key', clientSecret: 'sim-query-secret' }
  let token = ''
  beforeAll(async () => {
    sim = await startSalesforceSimulator({ ...creds, organizationId: orderOrg, childBatchSize: 1 })
    const answer = await fetch(`${sim.url}/services/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: creds.clientId, client_secret: creds.clientSecret }).toString(),
    })
    token = ((await answer.json()) as { access_token: string }).access_token
  })
  afterAll(() => sim?.close())
  const get = async (path: string) => {
    const answer = await fetch(`${sim.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
    return { status: answer.status, text: await answer.text() }
  }
  const query = (soql: string) => get(`/services/data/v62.0/query?q=${encodeURIComponent(soql)}`)

  it('answers Salesforce error bodies for what SOQL refuses', async () => {
    const cases: [string, string, string][] = [
      ['SELEC Id FROM Order', 'MALFORMED_QUERY', 'unexpected token: SELEC'],
      ['SELECT Id FROM', 'MALFORMED_QUERY', 'unexpected token: <EOF>'],
      ["SELECT Id FROM Order WHERE Id = '801", 'MALFORMED_QUERY', "mismatched character '<EOF>'"],
      ['SELECT Id, (SELECT Id FROM OrderItems FROM Order', 'MALFORMED_QUERY', 'unexpected token: FROM'],
      ['SELECT Id, FROM FROM Order', 'MALFORMED_QUERY', 'unexpected token: FROM'],
      ['SELECT Id FROM Widget__c', 'INVALID_TYPE', "sObject type 'Widget__c' is not supported"],
      ['SELECT Id, (SELECT Id FROM Items) FROM Order', 'INVALID_TYPE', "Didn't understand relationship 'Items' in FROM part of query call"],
      ['SELECT Id, Nope__c FROM Order', 'INVALID_FIELD', "No such column 'Nope__c' on entity 'Order'"],
      ['SELECT Id, Owner.Name FROM Order', 'INVALID_FIELD', "Didn't understand relationship 'Owner' in field path"],
      ["SELECT Id FROM Order WHERE Id = 'x'", 'INVALID_QUERY_FILTER_OPERATOR', 'invalid ID field: x'],
    ]
    for (const [soql, errorCode, reason] of cases) {
      const answer = await query(soql)
      expect(answer.status, soql).toBe(400)
      const [error] = JSON.parse(answer.text) as { errorCode: string; message: string }[]
      expect(error?.errorCode, soql).toBe(errorCode)
      expect(error?.message, soql).toContain(reason)
    }
    expect(JSON.parse((await query('SELEC Id FROM Order')).text)).toEqual([{ message: '\nSELEC Id FROM Order\n^\nERROR at Row:1:Column:1\nunexpected token: SELEC', errorCode: 'MALFORMED_QUERY' }])
    expect(JSON.parse((await get('/services/data/v62.0/query')).text)).toEqual([{ errorCode: 'MALFORMED_QUERY', message: 'A query string has to be specified' }])
    expect(JSON.parse((await get('/services/data/v62.0/query/01gNOSUCHLOCATOR-1')).text)).toEqual([{ errorCode: 'INVALID_QUERY_LOCATOR', message: 'invalid query locator' }])
  })

  it('writes numbers as JSON numbers, unset parents and empty subqueries as null, and pages child records', async () => {
    const order = sim.createOrder({ AccountId: '001bm000028FNI2AAO' })
    const empty = JSON.parse((await query(`SELECT Id, Account.Name, (SELECT Id FROM OrderItems) FROM Order WHERE Id = '${order.Id}'`)).text)
    expect(empty).toEqual({ totalSize: 1, done: true, records: [{ attributes: { type: 'Order', url: `/services/data/v62.0/sobjects/Order/${order.Id}` }, Id: order.Id, Account: null, OrderItems: null }] })
    sim.addOrderItems(order.Id!, [
      { ProductCode: 'A', Quantity: '1.0', UnitPrice: '10.50' },
      { ProductCode: 'B', Quantity: '2', UnitPrice: '0.10' },
    ])
    // Keywords and names in any case, a 15-character id, a descending order.
    const answer = await query(`select id, totalamount, (select quantity, unitprice, product2.productcode from orderitems order by OrderItemNumber desc) from order where id = '${order.Id!.slice(0, 15)}'`)
    expect(answer.text).toContain('"TotalAmount":10.70')
    expect(answer.text).toContain('"Quantity":2,"UnitPrice":0.10')
    const first = JSON.parse(answer.text)
    expect(first.records[0].OrderItems).toMatchObject({ totalSize: 2, done: false, records: [{ Quantity: 2, Product2: { ProductCode: 'B' } }] })
    const rest = JSON.parse((await get(first.records[0].OrderItems.nextRecordsUrl)).text)
    expect(rest).toMatchObject({ totalSize: 2, done: true, records: [{ Quantity: 1, Product2: { ProductCode: 'A' } }] })
    expect(rest).not.toHaveProperty('nextRecordsUrl')
  })
})

/** What Salesforce answers with each status the suite injects (it never sends 409, 422 or 429 itself; its codes are unknown here). */
const conformanceErrors: Record<number, SalesforceRestError> = {
  400: { errorCode: 'JSON_PARSER_ERROR', message: 'Unexpected character' },
  401: { errorCode: 'INVALID_SESSION_ID', message: 'Session expired or invalid' },
  403: { errorCode: 'INSUFFICIENT_ACCESS_OR_READONLY', message: 'insufficient access rights on object id' },
  404: { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
  409: { errorCode: 'CONFLICT', message: 'conflict with the current state of the resource' },
  422: { errorCode: 'UNPROCESSABLE', message: 'unprocessable' },
  429: { errorCode: 'TOO_MANY_REQUESTS', message: 'too many requests' },
  500: { errorCode: 'UNKNOWN_EXCEPTION', message: 'An unexpected error occurred. Please include this ErrorId if you contact support: 1234-5678 (-1)' },
  503: { errorCode: 'SERVER_UNAVAILABLE', message: 'Server temporarily unavailable' },
}

describeConnectorConformance('salesforce', async () => {
  forgetSalesforceSessions()
  const secrets = { clientId: '3MVG9-conformance-key', clientSecret: 'conformance-consumer-secret' }
  const sim = await startSalesforceSimulator({ ...secrets, organizationId: orderOrg, customOrderFields: ['Orderbridge_State__c', 'ERP_Order_Number__c', 'Orderbridge_Comment__c'] })
  return {
    connector: salesforce,
    ctx: {
      settings: { organizationId: orderOrg, myDomainUrl: sim.url, timeoutMs: 5_000, fields: { state: 'Orderbridge_State__c', erpOrderNumber: 'ERP_Order_Number__c', comment: 'Orderbridge_Comment__c' } },
      secrets,
    },
    sampleCrmOrderId: () => sim.createOrder().Id!,
    countCrmStatuses: (id) => sim.changes(id).length,
    faults: {
      // A 401 is INVALID_SESSION_ID, which the client answers by logging in once more: both calls must meet it.
      failNext: (status, headers) => sim.failNext(status === 401 ? 2 : 1, status, [conformanceErrors[status] ?? { errorCode: 'UNKNOWN_EXCEPTION', message: 'unexpected' }], headers),
    },
    reset: () => sim.failNext(0, 200, []),
    close: () => sim.close(),
  }
})
