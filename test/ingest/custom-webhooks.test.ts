/**
 * Deliveries in a vendor's own format (`customWebhooks`), through the real HTTP API: Salesforce
 * outbound messages from the Salesforce simulator are stored once per notification and only then
 * acknowledged with the SOAP Ack; the worker then reads each Order's OrderItems with one SOQL query
 * (the connector's enrichment) and the order goes on to the demo WMS and ERP; a query that fails for
 * good leaves the event in needs-attention, a transient one is retried; redeliveries store nothing
 * new; refusals are SOAP faults and are recorded like every other refusal. The Standard Webhooks
 * JSON path is covered, unchanged, by webhook-rejections.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSalesforceSimulator, type SalesforceSimulator } from '../../connectors/salesforce/simulator.ts'
import { readXml } from '../../connectors/salesforce/soap.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

const credentials = { clientId: '3MVG9-orderbridge-test', clientSecret: 'orderbridge-test-secret' }

describe('Salesforce outbound messages through POST /webhooks/:connection', () => {
  let sim: SalesforceSimulator
  let stack: TestStack
  const webhookUrl = () => `${stack.url}/webhooks/salesforce`

  beforeAll(async () => {
    // Two OrderItems per query answer: three items already take a nextRecordsUrl.
    sim = await startSalesforceSimulator({ ...credentials, customOrderFields: ['Orderbridge_State__c'], childBatchSize: 2 })
    stack = await startTestStack('pglite', {
      configure: (config) => ({
        ...config,
        connections: [
          ...config.connections,
          {
            id: 'salesforce',
            connector: 'salesforce',
            settings: { organizationId: sim.organizationId, myDomainUrl: sim.url, fields: { state: 'Orderbridge_State__c' } },
            secrets: credentials,
            mappings: { inbound: 'salesforce.to-canonical.order' },
          },
        ],
      }),
    })
  })
  afterAll(async () => {
    await stack?.close()
    await sim?.close()
  })

  const stats = async () => (await stack.api('/api/v1/stats?connection=salesforce')).body as { accepted: number; duplicate: number; rejected: number }
  const post = async (body: string, contentType = 'text/xml; charset=utf-8') => {
    const response = await fetch(webhookUrl(), { method: 'POST', headers: { 'content-type': contentType, soapaction: '""' }, body })
    return { status: response.status, contentType: response.headers.get('content-type'), body: await response.text() }
  }
  const faultString = (body: string) => {
    const fault = readXml(body).children[0]!.children[0]!
    expect(fault.name).toBe('Fault')
    return fault.children.find((c) => c.name === 'faultstring')!.text
  }

  type Link = { connection: string; operation: string; externalId: string | null; status: string }
  const findOrder = async (externalId: string) => (await stack.api(`/api/v1/orders?connection=salesforce&externalId=${externalId}`)).body.orders[0]
  /** The order once its sales order is in the demo ERP. */
  const inErp = (externalId: string) =>
    stack.waitFor(async () => {
      const order = await findOrder(externalId)
      return order?.links.some((l: Link) => l.operation === 'salesOrders.upsert' && l.status === 'synced') && order
    }, `Salesforce order ${externalId} in the demo ERP`)
  const failureOf = (notificationId: string) =>
    stack.waitFor(async () => {
      const { body } = await stack.api('/api/v1/failures?connection=salesforce')
      return body.failures.find((f: { webhookId: string }) => f.webhookId === notificationId)
    }, `notification ${notificationId} to need attention`)
  /** An Order with products whose codes are the demo WMS's SKUs (SKU-100 … SKU-109, 1000 each). */
  function orderWithItems() {
    const account = sim.createAccount({ Name: 'Express Logistics and Transport' })
    const order = sim.createOrder({ AccountId: account.Id!, CurrencyIsoCode: 'USD', OwnerId: '005bm000001Xy2ZAAS', EffectiveDate: '2024-05-20' })
    sim.addOrderItems(order.Id!, [
      { ProductCode: 'SKU-100', Quantity: '2.0', UnitPrice: '350.00' },
      { ProductCode: 'SKU-101', Quantity: '4.0', UnitPrice: '100.10' },
      { ProductCode: 'SKU-102', Quantity: '1.0', UnitPrice: '0.05' },
    ])
    return { account, order: sim.order(order.Id!)! }
  }
  const queriesOf = (orderId: string) => sim.requests().filter((r) => r.path.startsWith('/services/data/v62.0/query?') && decodeURIComponent(r.path).includes(`'${orderId}'`))

  it('stores an Order notification, answers the Ack, reads its OrderItems in the worker, and the order reaches the demo WMS and ERP', async () => {
    const { account, order } = orderWithItems()
    const [sent] = await sim.outboundMessaging(webhookUrl()).notify([order.Id!], { retries: 0 })
    expect(sent).toMatchObject({ status: 200, ack: true, attempts: 1 })
    expect(await stats()).toMatchObject({ accepted: 1, duplicate: 0 })

    const synced = await inErp(order.Id!)
    expect(synced).toMatchObject({ connection: 'salesforce', externalId: order.Id, currency: 'USD', total: '1100.45' })
    // One query, and the third item through the subquery's nextRecordsUrl.
    expect(queriesOf(order.Id!).map((r) => r.status)).toEqual([200])
    expect(sim.requests().some((r) => /^\/services\/data\/v62\.0\/query\/01g/.test(r.path) && r.status === 200)).toBe(true)

    const erpOrders = stack.erp.salesOrders().filter((o) => o.reference === synced.id)
    expect(erpOrders).toHaveLength(1)
    expect(erpOrders[0]).toMatchObject({ customerCode: account.Id, currency: 'USD', total: '1100.45' })
    const reservations = stack.wms.reservations().filter((r) => r.reference === synced.id)
    expect(reservations).toHaveLength(1)
    expect(reservations[0]!.lines.map((l) => [l.sku, l.quantity])).toEqual([
      ['SKU-100', 2],
      ['SKU-101', 4],
      ['SKU-102', 1],
    ])
    const { body: detail } = await stack.api(`/api/v1/orders/${synced.id}`)
    expect(detail.document).toMatchObject({
      customer: { externalId: account.Id, name: 'Express Logistics and Transport' },
      lines: [
        { sku: 'SKU-100', quantity: '2.0', unitPrice: '350.00', lineTotal: '700.00' },
        { sku: 'SKU-101', quantity: '4.0', unitPrice: '100.10', lineTotal: '400.40' },
        { sku: 'SKU-102', quantity: '1.0', unitPrice: '0.05', lineTotal: '0.05' },
      ],
    })
    // And the order's state goes back to the Order in Salesforce.
    await stack.waitFor(async () => sim.order(order.Id!)?.Orderbridge_State__c === 'pending_shipment', 'the state written back to Salesforce')
  })

  it('an Order deleted before the worker reads its lines waits in needs-attention, saying so', async () => {
    const { order } = orderWithItems()
    const messaging = sim.outboundMessaging(webhookUrl())
    const message = messaging.message([order.Id!])
    sim.deleteOrder(order.Id!)
    expect(await messaging.sender.post(message)).toMatchObject({ status: 200, ack: true })

    const failure = await failureOf(message.notificationIds[0]!)
    expect(failure).toMatchObject({
      type: 'event',
      connection: 'salesforce',
      status: 'needs_attention',
      // Adding products edits the Order (its TotalAmount rolls up), so it is no longer as created.
      eventType: 'order.updated',
      externalId: order.Id,
      sourceVersion: Date.parse(order.SystemModstamp!),
      errors: [`salesforce could not complete the order: not_found: Salesforce has no Order ${order.Id}: it was deleted, or the integration user may not see it`],
    })
    expect(queriesOf(order.Id!).map((r) => r.status)).toEqual([200])
    expect(await findOrder(order.Id!)).toBeUndefined()
  })

  it('a query answered 503 is retried, and the order then goes through', async () => {
    const { order } = orderWithItems()
    sim.failNext(1, 503, [{ errorCode: 'SERVER_UNAVAILABLE', message: 'Server temporarily unavailable' }], {}, { match: (r) => r.url.includes(`'${order.Id}'`) })
    const [sent] = await sim.outboundMessaging(webhookUrl()).notify([order.Id!], { retries: 0 })
    expect(sent).toMatchObject({ status: 200, ack: true })

    const synced = await inErp(order.Id!)
    expect(synced.total).toBe('1100.45')
    expect(queriesOf(order.Id!).map((r) => r.status)).toEqual([503, 200])
    expect(stack.erp.salesOrders().filter((o) => o.reference === synced.id)).toHaveLength(1)
    const { body } = await stack.api('/api/v1/failures?connection=salesforce')
    expect(body.failures.filter((f: { externalId: string }) => f.externalId === order.Id)).toEqual([])
  })

  it('stores 100 notifications of one message once each; the same message again is acknowledged and stores nothing', async () => {
    const before = await stats()
    const ids = Array.from({ length: 100 }, (_, i) => sim.createOrder({ AccountId: `001bm00002${String(i).padStart(6, '0')}AA` }).Id!)
    const messaging = sim.outboundMessaging(webhookUrl())
    const message = messaging.message(ids)
    expect(await messaging.sender.post(message)).toMatchObject({ status: 200, ack: true })
    expect(await stats()).toMatchObject({ accepted: before.accepted + 100, duplicate: before.duplicate })

    // Salesforce resends a message whose Ack it did not see: the same envelope, the same notification ids.
    expect(await messaging.sender.post(message)).toMatchObject({ status: 200, ack: true })
    expect(await stats()).toMatchObject({ accepted: before.accepted + 100, duplicate: before.duplicate + 100 })
  })

  it('a message mixing redelivered and new notifications stores only the new ones', async () => {
    const before = await stats()
    const messaging = sim.outboundMessaging(webhookUrl())
    const orders = Array.from({ length: 4 }, () => sim.createOrder())
    const first = messaging.message(orders.slice(0, 2).map((o) => o.Id!))
    expect((await messaging.sender.post(first)).ack).toBe(true)
    const mixed = messaging.sender.message([
      { id: first.notificationIds[0], fields: sim.order(orders[0]!.Id!)! },
      { id: first.notificationIds[1], fields: sim.order(orders[1]!.Id!)! },
      { fields: sim.order(orders[2]!.Id!)! },
      { fields: sim.order(orders[3]!.Id!)! },
    ])
    expect((await messaging.sender.post(mixed)).ack).toBe(true)
    expect(await stats()).toMatchObject({ accepted: before.accepted + 4, duplicate: before.duplicate + 2 })
  })

  it('a notification repeated inside one message is stored once', async () => {
    const before = await stats()
    const messaging = sim.outboundMessaging(webhookUrl())
    const order = sim.createOrder()
    const twice = messaging.sender.message([
      { id: 'n-twice', fields: sim.order(order.Id!)! },
      { id: 'n-twice', fields: sim.order(order.Id!)! },
    ])
    expect((await messaging.sender.post(twice)).ack).toBe(true)
    expect(await stats()).toMatchObject({ accepted: before.accepted + 1, duplicate: before.duplicate + 1 })
  })

  it('401 with a SOAP fault for a message from another org', async () => {
    const other = await startSalesforceSimulator({ ...credentials })
    try {
      const [sent] = await other.outboundMessaging(webhookUrl()).notify([other.createOrder().Id!], { retries: 0 })
      expect(sent).toMatchObject({ status: 401, ack: false, fault: { code: 'soapenv:Client', message: `the message comes from organization ${other.organizationId}, which this connection does not accept` } })
    } finally {
      await other.close()
    }
  })

  it('400 with a SOAP fault for a malformed envelope and for a DOCTYPE (entities are never expanded)', async () => {
    const malformed = await post('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>')
    expect(malformed).toMatchObject({ status: 400, contentType: 'text/xml; charset=utf-8' })
    expect(faultString(malformed.body)).toMatch(/^the body is not well-formed XML/)

    const message = sim.outboundMessaging(webhookUrl()).message([sim.createOrder().Id!])
    const laughs = message.xml.replace('?>', '?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>').replace('<sf:Status>Draft', '<sf:Status>&lol1;')
    const refused = await post(laughs)
    expect(refused.status).toBe(400)
    expect(faultString(refused.body)).toBe('a DOCTYPE or ENTITY declaration is not allowed in a SOAP message')
  })

  it('415 with a SOAP fault for a body that is not text/xml', async () => {
    const answer = await post('{"type": "order.created"}', 'application/json')
    expect(answer.status).toBe(415)
    expect(faultString(answer.body)).toBe('expected text/xml or application/xml, got application/json')
  })

  it('413 with a SOAP fault for a body over the limit', async () => {
    const answer = await post(`<x>${'a'.repeat(1_100_000)}</x>`)
    expect(answer.status).toBe(413)
    expect(faultString(answer.body)).toBe('the body is larger than 1048576 bytes')
  })

  it('records every refusal for operators, and none of them reached the inbox', async () => {
    const { body } = await stack.api('/api/v1/deliveries/rejected?connection=salesforce&limit=100')
    expect(body.rejected.map((r: { code: string }) => r.code).sort()).toEqual(['body_too_large', 'malformed_xml', 'unsupported_media_type', 'wrong_organization', 'xml_doctype_refused'])
    expect(body.rejected.find((r: { code: string }) => r.code === 'wrong_organization')).toMatchObject({ connectionId: 'salesforce', httpStatus: 401 })
    // 3 + 100 + 4 + 1 notifications were stored; nothing refused added to them.
    expect(await stats()).toMatchObject({ accepted: 108, rejected: 5 })
  })
})
