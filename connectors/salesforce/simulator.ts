/**
 * A Salesforce org as a running system, for the demo and tests: the OAuth 2.0 client credentials
 * token endpoint, the REST sObject routes orderbridge uses (Order describe, GET and PATCH; Task create
 * and upsert by external id; FeedItem create), the query resource for the order lines query (Orders
 * with their Account and OrderItems, child records paged through `nextRecordsUrl`) with
 * Salesforce's success and error bodies, and the org's outbound messaging, which sends Order
 * notifications to a listener and resends them until they are acknowledged. State lives in memory
 * and dies with the server. It does not log.
 */
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { addDecimals, isDecimalString, multiplyDecimals, roundDecimal } from '../../src/connector-kit/index.ts'
import { sameSalesforceId } from './inbound.ts'
import { createOutboundMessageSender, randomSalesforceId, type OutboundMessageSender, type OutboundPostResult, type OutboundMessageToSend } from './sender.ts'
import { SoqlError, parseSoql, soqlErrorMessage, type SoqlName, type SoqlQuery, type SoqlSubquery } from './simulator-soql.ts'

/** One REST error, as Salesforce sends it in an array. */
export interface SalesforceRestError {
  errorCode: string
  message: string
  fields?: string[]
}

export type SimRecord = Record<string, string | null>

export interface SalesforceSimulatorOptions {
  port?: number
  host?: string
  clientId: string
  clientSecret: string
  organizationId?: string
  /** Custom Order fields the org has (all updateable), e.g. Orderbridge_State__c. */
  customOrderFields?: readonly string[]
  /** The Task text field marked External ID, for upserts (none by default). */
  taskExternalIdField?: string
  /** Custom OrderItem fields the org has, e.g. SKU__c (readable in queries). */
  customOrderItemFields?: readonly string[]
  /** How many child records (OrderItems) one query answer holds before the rest goes behind a `nextRecordsUrl` (default 200). */
  childBatchSize?: number
}

/** An order product as a user adds it: the product by its code (created on first use), quantity and unit price as decimal text. */
export interface SimOrderItemInput {
  ProductCode: string
  Quantity: string
  UnitPrice: string
  /** More Product2 fields when the product is created, e.g. Name, StockKeepingUnit. */
  product?: SimRecord
  /** More OrderItem fields, e.g. Description or a custom field. */
  fields?: SimRecord
}

/** A request as the fault matcher sees it: the method and the URL with its query decoded. */
export interface SimRequest {
  method: string
  url: string
}

export interface SalesforceSimulator {
  url: string
  organizationId: string
  /** Creates an Order as a user would; timestamps are set as Salesforce sets them. */
  createOrder(fields?: SimRecord): SimRecord
  /** Changes an Order as a user would: LastModifiedDate and SystemModstamp move on. */
  updateOrder(id: string, fields: SimRecord): SimRecord
  /** Deletes an Order and its OrderItems: queries find nothing, the sObject routes answer NOT_FOUND. */
  deleteOrder(id: string): void
  order(id: string): SimRecord | undefined
  /** Creates an Account (for the Order's AccountId; its Name is what `Account.Name` reads). */
  createAccount(fields?: SimRecord): SimRecord
  /**
   * Adds products to an Order as a user would: OrderItems with OrderItemNumber, ListPrice and
   * TotalPrice; the Order's TotalAmount (a roll-up) and timestamps move on.
   */
  addOrderItems(orderId: string, items: readonly SimOrderItemInput[]): SimRecord[]
  /** The Order's OrderItems, in OrderItemNumber order. */
  orderItems(orderId: string): SimRecord[]
  /** Every PATCH through the API that changed an Order's values, in order (a repeated PATCH adds nothing). */
  changes(id: string): SimRecord[]
  tasks(): SimRecord[]
  feedItems(): SimRecord[]
  /** Token requests answered with a token. */
  logins(): number
  /** Every REST request: method, path, status. */
  requests(): { method: string; path: string; status: number; body?: string }[]
  /** Every issued token stops working (as when a session times out or an admin revokes it). */
  revokeTokens(): void
  /**
   * The next `count` REST requests (not the token endpoint) answer `status` with these errors and
   * change nothing; with `match`, only the requests it picks (others pass and do not count).
   */
  failNext(count: number, status: number, errors: SalesforceRestError[], headers?: Record<string, string>, options?: { match?: (request: SimRequest) => boolean }): void
  /** Outbound messaging to a listener at `url`, for Orders of this org. */
  outboundMessaging(url: string, options?: { fields?: readonly string[] }): SimOutboundMessaging
  close(): Promise<void>
}

export interface SimOutboundMessaging {
  sender: OutboundMessageSender
  /** One message with a notification per Order id, carrying each Order's current fields. */
  message(orderIds: readonly string[]): OutboundMessageToSend
  /** Sends the Orders' notifications in messages of up to 100, each resent until acknowledged (`retries` times). */
  notify(orderIds: readonly string[], options?: { retries?: number }): Promise<(OutboundPostResult & { message: OutboundMessageToSend; attempts: number })[]>
}

/** Fields Salesforce sets; a write to them is refused. */
const readOnlyOrderFields = ['Id', 'OrderNumber', 'TotalAmount', 'CreatedDate', 'CreatedById', 'LastModifiedDate', 'LastModifiedById', 'SystemModstamp', 'IsDeleted']
const writableOrderFields = ['AccountId', 'EffectiveDate', 'EndDate', 'Status', 'Description', 'OwnerId', 'CurrencyIsoCode', 'Name', 'PoNumber', 'Type', 'BillingCity', 'ShippingCity']
const taskFields = ['WhatId', 'WhoId', 'Subject', 'Description', 'Status', 'Priority', 'ActivityDate', 'OwnerId']
const feedItemFields = ['ParentId', 'Body', 'Type', 'Title', 'LinkUrl']

/** The default fields an outbound message on Order selects in the simulator. */
export const defaultOutboundFields = ['Id', 'AccountId', 'OrderNumber', 'Status', 'EffectiveDate', 'CurrencyIsoCode', 'OwnerId', 'TotalAmount', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp']

const json = 'application/json;charset=UTF-8'

/** What the query resource knows of each object: fields, which are numbers, parent relationships (through `<name>Id`), child relationships. */
interface EntityShape {
  fields: readonly string[]
  numbers: readonly string[]
  parents: Readonly<Record<string, string>>
  children: Readonly<Record<string, { entity: string; parentField: string }>>
}

/** A number in a query answer, written as its decimal text (`2.0`), as Salesforce writes it. */
class RawNumber {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

function toSalesforceJson(value: unknown): string {
  if (value instanceof RawNumber) return value.text
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(toSalesforceJson).join(',')}]`
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined)
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${toSalesforceJson(v)}`).join(',')}}`
}

const notUnderstood = (kind: 'field path' | 'FROM part of query call', name: string) =>
  `Didn't understand relationship '${name}' in ${kind}. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`

export async function startSalesforceSimulator(options: SalesforceSimulatorOptions): Promise<SalesforceSimulator> {
  const organizationId = options.organizationId ?? randomSalesforceId('00D')
  const customOrderFields = options.customOrderFields ?? []
  const orders = new Map<string, SimRecord>()
  const tasks = new Map<string, SimRecord>()
  const feedItems = new Map<string, SimRecord>()
  const changes = new Map<string, SimRecord[]>()
  const accounts = new Map<string, SimRecord>()
  const products = new Map<string, SimRecord>()
  const items = new Map<string, SimRecord[]>()
  /** Query locators: the child records of one subquery answer still to be read. */
  const locators = new Map<string, { records: unknown[]; batch: number }>()
  const childBatchSize = options.childBatchSize ?? 200
  let orderItemNumber = 0
  const tokens = new Set<string>()
  const requests: { method: string; path: string; status: number; body?: string }[] = []
  let logins = 0
  let orderNumber = 100
  let lastStamp = 0
  let faults: { remaining: number; status: number; errors: SalesforceRestError[]; headers: Record<string, string>; match?: (request: SimRequest) => boolean } | undefined

  /** Salesforce's clock never repeats a stamp for one org here, so versions always move on. */
  function stamp(): string {
    lastStamp = Math.max(Date.now(), lastStamp + 1)
    return new Date(lastStamp).toISOString()
  }

  const app = Fastify({ logger: false })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, new URLSearchParams(body as string)))
  // Numbers are kept as their text, as Salesforce (Java BigDecimal) reads them: never through a float.
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, { raw: body, value: JSON.parse(body as string, (_key, value, context?: { source?: string }) => (typeof value === 'number' ? (context?.source ?? String(value)) : value)) })
    } catch {
      done(null, { raw: body, value: undefined })
    }
  })

  const sendErrors = (reply: FastifyReply, status: number, errors: SalesforceRestError[]) => reply.code(status).type(json).send(errors)
  const notFound = (reply: FastifyReply) => sendErrors(reply, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }])

  app.post('/services/oauth2/token', async (req, reply) => {
    const form = req.body instanceof URLSearchParams ? req.body : new URLSearchParams()
    if (form.get('grant_type') !== 'client_credentials') return reply.code(400).type(json).send({ error: 'unsupported_grant_type', error_description: 'grant type not supported' })
    if (form.get('client_id') !== options.clientId || form.get('client_secret') !== options.clientSecret) {
      return reply.code(400).type(json).send({ error: 'invalid_client', error_description: 'invalid client credentials' })
    }
    const token = `${organizationId.slice(0, 15)}!${randomBytes(24).toString('base64url')}`
    tokens.add(token)
    logins++
    return reply.type(json).send({
      access_token: token,
      signature: randomBytes(32).toString('base64'),
      scope: 'api',
      instance_url: simulator.url,
      id: `${simulator.url}/id/${organizationId}/${randomSalesforceId('005')}`,
      token_type: 'Bearer',
      issued_at: String(Date.now()),
      token_format: 'opaque',
    })
  })

  // Every REST route: a valid session first, then any scripted fault, then the route.
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/services/data/')) return
    const auth = req.headers.authorization ?? ''
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : ''
    if (!tokens.has(token)) return sendErrors(reply, 401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }])
    if (faults && faults.remaining > 0 && (!faults.match || faults.match({ method: req.method, url: decodeRequestUrl(req.url) }))) {
      faults.remaining--
      return reply.code(faults.status).headers(faults.headers).type(json).send(faults.errors)
    }
  })
  app.addHook('onResponse', async (req, reply) => {
    if (req.url.startsWith('/services/data/')) {
      const raw = (req.body as { raw?: string } | undefined)?.raw
      requests.push({ method: req.method, path: req.url, status: reply.statusCode, ...(raw !== undefined ? { body: raw } : {}) })
    }
  })

  const versioned = (req: FastifyRequest) => /^v\d{2,3}\.0$/.test((req.params as { version: string }).version)
  const bodyOf = (req: FastifyRequest): Record<string, unknown> | undefined => {
    const value = (req.body as { value?: unknown } | undefined)?.value
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  }

  /** Salesforce's checks of a write: JSON, known fields, writable fields. */
  function checkWrite(reply: FastifyReply, sObject: string, body: Record<string, unknown> | undefined, known: readonly string[], readOnly: readonly string[] = []): body is Record<string, unknown> {
    if (!body) {
      sendErrors(reply, 400, [{ errorCode: 'JSON_PARSER_ERROR', message: 'The request body is not a JSON object' }])
      return false
    }
    const unknown = Object.keys(body).find((f) => !known.includes(f) && !readOnly.includes(f))
    if (unknown) {
      sendErrors(reply, 400, [{ errorCode: 'INVALID_FIELD', message: `No such column '${unknown}' on sobject of type ${sObject}` }])
      return false
    }
    const locked = Object.keys(body).filter((f) => readOnly.includes(f))
    if (locked.length) {
      sendErrors(reply, 400, [{ errorCode: 'INVALID_FIELD_FOR_INSERT_UPDATE', message: `Unable to create/update fields: ${locked.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`, fields: locked }])
      return false
    }
    return true
  }
  const asText = (body: Record<string, unknown>): SimRecord => Object.fromEntries(Object.entries(body).map(([k, v]) => [k, v === null ? null : String(v)]))

  app.get<{ Params: { version: string } }>('/services/data/:version/sobjects/Order/describe', async (req, reply) => {
    if (!versioned(req)) return notFound(reply)
    const fields = [
      ...readOnlyOrderFields.map((name) => ({ name, updateable: false })),
      ...writableOrderFields.map((name) => ({ name, updateable: true })),
      ...customOrderFields.map((name) => ({ name, updateable: true, custom: true })),
    ]
    return reply.type(json).send({ name: 'Order', label: 'Order', updateable: true, fields })
  })

  app.get<{ Params: { version: string; id: string } }>('/services/data/:version/sobjects/Order/:id', async (req, reply) => {
    const order = versioned(req) ? orders.get(req.params.id) : undefined
    if (!order) return notFound(reply)
    return reply.type(json).send({ attributes: { type: 'Order', url: `/services/data/${req.params.version}/sobjects/Order/${order.Id}` }, ...order })
  })

  app.patch<{ Params: { version: string; id: string } }>('/services/data/:version/sobjects/Order/:id', async (req, reply) => {
    const order = versioned(req) ? orders.get(req.params.id) : undefined
    if (!order) return notFound(reply)
    const body = bodyOf(req)
    if (!checkWrite(reply, 'Order', body, [...writableOrderFields, ...customOrderFields], readOnlyOrderFields)) return reply
    const values = asText(body)
    if (Object.entries(values).some(([field, value]) => order[field] !== value)) changes.set(order.Id!, [...(changes.get(order.Id!) ?? []), values])
    // Like Salesforce, a save moves the timestamps even when no value changed.
    simulator.updateOrder(order.Id!, values)
    return reply.code(204).send()
  })

  function create(reply: FastifyReply, sObject: 'Task' | 'FeedItem', body: Record<string, unknown>, store: Map<string, SimRecord>, id?: string) {
    const parentField = sObject === 'Task' ? 'WhatId' : 'ParentId'
    const parent = body[parentField]
    if (typeof parent !== 'string' || !orders.has(parent)) {
      return sendErrors(reply, 400, [{ errorCode: 'INVALID_CROSS_REFERENCE_KEY', message: `invalid cross reference id`, fields: [parentField] }])
    }
    if (sObject === 'FeedItem' && typeof body.Body !== 'string') return sendErrors(reply, 400, [{ errorCode: 'REQUIRED_FIELD_MISSING', message: 'Required fields are missing: [Body]', fields: ['Body'] }])
    const recordId = id ?? randomSalesforceId(sObject === 'Task' ? '00T' : '0D5')
    const now = stamp()
    store.set(recordId, { ...asText(body), Id: recordId, CreatedDate: now, LastModifiedDate: now, SystemModstamp: now })
    return reply.code(201).type(json).send({ id: recordId, success: true, errors: [], ...(id === undefined ? {} : { created: true }) })
  }

  app.post<{ Params: { version: string; sObject: string } }>('/services/data/:version/sobjects/:sObject', async (req, reply) => {
    const { sObject } = req.params
    if (!versioned(req) || (sObject !== 'Task' && sObject !== 'FeedItem')) return notFound(reply)
    const body = bodyOf(req)
    if (!checkWrite(reply, sObject, body, sObject === 'Task' ? [...taskFields, ...(options.taskExternalIdField ? [options.taskExternalIdField] : [])] : feedItemFields)) return reply
    return create(reply, sObject, body, sObject === 'Task' ? tasks : feedItems)
  })

  // Upsert by external id: PATCH /sobjects/Task/<External ID field>/<value>.
  app.patch<{ Params: { version: string; field: string; value: string } }>('/services/data/:version/sobjects/Task/:field/:value', async (req, reply) => {
    if (!versioned(req)) return notFound(reply)
    const { field, value } = req.params
    if (field !== options.taskExternalIdField) return sendErrors(reply, 404, [{ errorCode: 'NOT_FOUND', message: `Provided external ID field does not exist or is not accessible: ${field}` }])
    const body = bodyOf(req)
    if (!checkWrite(reply, 'Task', body, taskFields)) return reply
    const existing = [...tasks.values()].find((t) => t[field] === value)
    if (existing) {
      Object.assign(existing, asText(body), { LastModifiedDate: stamp() })
      return reply.code(200).type(json).send({ id: existing.Id, success: true, errors: [], created: false })
    }
    return create(reply, 'Task', { ...body, [field]: value }, tasks, randomSalesforceId('00T'))
  })

  // The query resource: what the order lines query needs (see simulator-soql.ts for the SOQL it reads).
  const entities: Record<string, EntityShape> = {
    Order: {
      fields: [...readOnlyOrderFields, ...writableOrderFields, ...customOrderFields, 'Pricebook2Id', 'OriginalOrderId'],
      numbers: ['TotalAmount'],
      parents: { Account: 'Account' },
      children: { OrderItems: { entity: 'OrderItem', parentField: 'OrderId' } },
    },
    OrderItem: {
      fields: ['Id', 'OrderId', 'Product2Id', 'PricebookEntryId', 'OrderItemNumber', 'Quantity', 'UnitPrice', 'ListPrice', 'TotalPrice', 'Description', 'ServiceDate', 'EndDate', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp', ...(options.customOrderItemFields ?? [])],
      numbers: ['Quantity', 'UnitPrice', 'ListPrice', 'TotalPrice'],
      parents: { Order: 'Order', Product2: 'Product2' },
      children: {},
    },
    Account: { fields: ['Id', 'Name', 'AccountNumber', 'Type', 'Industry', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp'], numbers: [], parents: {}, children: {} },
    Product2: { fields: ['Id', 'Name', 'ProductCode', 'StockKeepingUnit', 'Family', 'IsActive', 'Description'], numbers: [], parents: {}, children: {} },
  }
  const recordOf = (entity: string, id: string | null | undefined): SimRecord | undefined => {
    if (!id) return undefined
    const store = entity === 'Order' ? orders : entity === 'Account' ? accounts : entity === 'Product2' ? new Map([...products.values()].map((p) => [p.Id!, p])) : undefined
    if (store) return [...store.entries()].find(([key]) => sameSalesforceId(key, id))?.[1]
    if (entity === 'OrderItem') return [...items.values()].flat().find((i) => sameSalesforceId(i.Id!, id))
    return undefined
  }

  /** An object's fields: its shape's, and any field its records were given (createOrder's extra fields, say). */
  const fieldsOf = (entity: string): Set<string> => {
    const store = entity === 'Order' ? [...orders.values()] : entity === 'OrderItem' ? [...items.values()].flat() : entity === 'Account' ? [...accounts.values()] : [...products.values()]
    return new Set([...entities[entity]!.fields, ...store.flatMap((r) => Object.keys(r))])
  }

  /** The canonical name of `name` among `names` (SOQL names are case-insensitive). */
  const canonical = (names: Iterable<string>, name: string) => [...names].find((n) => n.toLowerCase() === name.toLowerCase())

  /** Checks a field path against the objects, as Salesforce does before it reads any record: the canonical path, or an error. */
  function resolvePath(soql: string, entity: string, path: SoqlName): string[] {
    const parts = path.text.split('.')
    const resolved: string[] = []
    let current = entity
    for (const [i, part] of parts.entries()) {
      const shape = entities[current]!
      if (i < parts.length - 1) {
        const relationship = canonical(Object.keys(shape.parents), part)
        if (!relationship) throw new SoqlError('INVALID_FIELD', soqlErrorMessage(soql, path.at, notUnderstood('field path', part)))
        resolved.push(relationship)
        current = shape.parents[relationship]!
        continue
      }
      const field = canonical(fieldsOf(current), part)
      if (!field) {
        throw new SoqlError(
          'INVALID_FIELD',
          soqlErrorMessage(
            soql,
            path.at,
            `No such column '${part}' on entity '${current}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`,
          ),
        )
      }
      resolved.push(field)
    }
    return resolved
  }

  const attributesOf = (entity: string, record: SimRecord, version: string) => ({ type: entity, url: `/services/data/${version}/sobjects/${entity}/${record.Id}` })

  /** One record as a query answers it: attributes, then each selected path, parents as nested records (null when unset). */
  function selectRecord(entity: string, record: SimRecord, paths: readonly string[][], version: string): Record<string, unknown> {
    const out: Record<string, unknown> = { attributes: attributesOf(entity, record, version) }
    const shape = entities[entity]!
    for (const path of paths) {
      const [head, ...rest] = path as [string, ...string[]]
      if (rest.length === 0) {
        const value = record[head] ?? null
        out[head] = value !== null && shape.numbers.includes(head) && isDecimalString(value) ? new RawNumber(value) : value
        continue
      }
      const parentEntity = shape.parents[head]!
      const parent = recordOf(parentEntity, record[`${head}Id`])
      if (!parent) {
        out[head] = null
        continue
      }
      const nested = selectRecord(parentEntity, parent, [rest], version)
      out[head] = { ...(out[head] as Record<string, unknown> | undefined), ...nested }
    }
    return out
  }

  /** The value at a resolved path: the record's own field, or its parents' (null when a parent is unset). */
  function valueAt(entity: string, record: SimRecord | undefined, path: readonly string[]): string | null {
    if (!record) return null
    const [head, ...rest] = path as [string, ...string[]]
    if (rest.length === 0) return record[head] ?? null
    const parentEntity = entities[entity]!.parents[head]!
    return valueAt(parentEntity, recordOf(parentEntity, record[`${head}Id`]), rest)
  }

  function sortRecords(entity: string, records: SimRecord[], orderBy: SoqlSubquery['orderBy'], path: string[] | undefined): SimRecord[] {
    if (!orderBy || !path) return records
    const numeric = path.length === 1 && entities[entity]!.numbers.includes(path[0]!)
    const valueOf = (r: SimRecord) => valueAt(entity, r, path) ?? ''
    const sorted = [...records].sort((a, b) => (numeric ? Number(valueOf(a)) - Number(valueOf(b)) : valueOf(a) < valueOf(b) ? -1 : valueOf(a) > valueOf(b) ? 1 : 0))
    return orderBy.descending ? sorted.reverse() : sorted
  }

  /** A page of child records; the rest behind a query locator. */
  function childResult(records: unknown[], version: string): Record<string, unknown> | null {
    if (records.length === 0) return null
    if (records.length <= childBatchSize) return { totalSize: records.length, done: true, records }
    const locator = randomSalesforceId('01g')
    locators.set(locator, { records, batch: childBatchSize })
    return { totalSize: records.length, done: false, nextRecordsUrl: `/services/data/${version}/query/${locator}-${childBatchSize}`, records: records.slice(0, childBatchSize) }
  }

  function runQuery(soql: string, version: string): Record<string, unknown> {
    const query: SoqlQuery = parseSoql(soql)
    const from = canonical(Object.keys(entities), query.from.text)
    if (from !== 'Order') {
      throw new SoqlError(
        'INVALID_TYPE',
        soqlErrorMessage(soql, query.from.at, `sObject type '${query.from.text}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`),
      )
    }
    const shape = entities.Order!
    const paths = query.fields.map((f) => resolvePath(soql, 'Order', f))
    const subqueries = query.subqueries.map((sub) => {
      const relationship = canonical(Object.keys(shape.children), sub.from.text)
      if (!relationship) throw new SoqlError('INVALID_TYPE', soqlErrorMessage(soql, sub.from.at, notUnderstood('FROM part of query call', sub.from.text)))
      const child = shape.children[relationship]!
      return { relationship, child, sub, paths: sub.fields.map((f) => resolvePath(soql, child.entity, f)), orderPath: sub.orderBy ? resolvePath(soql, child.entity, sub.orderBy.field) : undefined }
    })
    const wherePath = query.where ? resolvePath(soql, 'Order', query.where.field) : undefined
    if (query.where && wherePath?.join('.') === 'Id' && !/^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$/.test(query.where.value)) {
      throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', soqlErrorMessage(soql, query.where.field.at, `invalid ID field: ${query.where.value}`))
    }
    const orderPath = query.orderBy ? resolvePath(soql, 'Order', query.orderBy.field) : undefined

    let found = [...orders.values()].filter((order) => {
      if (!query.where || !wherePath) return true
      const value = valueAt('Order', order, wherePath)
      return wherePath.at(-1) === 'Id' && value !== null ? sameSalesforceId(value, query.where.value) : value === query.where.value
    })
    found = sortRecords('Order', found, query.orderBy, orderPath)
    if (query.limit !== undefined) found = found.slice(0, query.limit)
    const records = found.map((order) => {
      const record = selectRecord('Order', order, paths, version)
      for (const { relationship, sub, paths: childPaths, orderPath: childOrder } of subqueries) {
        let children = sortRecords('OrderItem', [...(items.get(order.Id!) ?? [])], sub.orderBy, childOrder)
        if (sub.limit !== undefined) children = children.slice(0, sub.limit)
        record[relationship] = childResult(
          children.map((c) => selectRecord('OrderItem', c, childPaths, version)),
          version,
        )
      }
      return record
    })
    return { totalSize: records.length, done: true, records }
  }

  const sendQuery = (req: FastifyRequest<{ Params: { version: string }; Querystring: { q?: string } }>, reply: FastifyReply) => {
    if (!versioned(req)) return notFound(reply)
    const soql = req.query.q
    if (typeof soql !== 'string' || soql.trim() === '') return sendErrors(reply, 400, [{ errorCode: 'MALFORMED_QUERY', message: 'A query string has to be specified' }])
    try {
      return reply.type(json).send(toSalesforceJson(runQuery(soql, req.params.version)))
    } catch (err) {
      if (err instanceof SoqlError) return sendErrors(reply, 400, [{ message: err.message, errorCode: err.errorCode }])
      throw err
    }
  }
  app.get<{ Params: { version: string }; Querystring: { q?: string } }>('/services/data/:version/query', sendQuery)
  app.get<{ Params: { version: string }; Querystring: { q?: string } }>('/services/data/:version/query/', sendQuery)

  // The rest of a subquery's records: /query/<locator>-<offset>, as nextRecordsUrl names it.
  app.get<{ Params: { version: string; locator: string } }>('/services/data/:version/query/:locator', async (req, reply) => {
    if (!versioned(req)) return notFound(reply)
    const [, id, offsetText] = /^([A-Za-z0-9]+)-(\d+)$/.exec(req.params.locator) ?? []
    const locator = id === undefined ? undefined : locators.get(id)
    if (!locator) return sendErrors(reply, 400, [{ errorCode: 'INVALID_QUERY_LOCATOR', message: 'invalid query locator' }])
    const offset = Number(offsetText)
    const records = locator.records.slice(offset, offset + locator.batch)
    const end = offset + locator.batch
    const done = end >= locator.records.length
    if (done) locators.delete(id!)
    return reply
      .type(json)
      .send(toSalesforceJson({ totalSize: locator.records.length, done, ...(done ? {} : { nextRecordsUrl: `/services/data/${req.params.version}/query/${id}-${end}` }), records }))
  })

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : options.port

  const simulator: SalesforceSimulator = {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    organizationId,
    createOrder(fields = {}) {
      const id = randomSalesforceId('801')
      const now = stamp()
      const order: SimRecord = {
        Status: 'Draft',
        EffectiveDate: now.slice(0, 10),
        ...fields,
        Id: id,
        OrderNumber: String(++orderNumber).padStart(8, '0'),
        CreatedDate: now,
        LastModifiedDate: now,
        SystemModstamp: now,
      }
      orders.set(id, order)
      return { ...order }
    },
    updateOrder(id, fields) {
      const order = orders.get(id)
      if (!order) throw new Error(`no Order ${id}`)
      const now = stamp()
      Object.assign(order, fields, { LastModifiedDate: now, SystemModstamp: now })
      return { ...order }
    },
    deleteOrder(id) {
      if (!orders.delete(id)) throw new Error(`no Order ${id}`)
      items.delete(id)
    },
    order: (id) => (orders.has(id) ? { ...orders.get(id)! } : undefined),
    createAccount(fields = {}) {
      const id = randomSalesforceId('001')
      const now = stamp()
      const account: SimRecord = { Name: `Account ${accounts.size + 1}`, ...fields, Id: id, CreatedDate: now, LastModifiedDate: now, SystemModstamp: now }
      accounts.set(id, account)
      return { ...account }
    },
    addOrderItems(orderId, added) {
      const order = orders.get(orderId)
      if (!order) throw new Error(`no Order ${orderId}`)
      const list = items.get(orderId) ?? []
      const created = added.map((item) => {
        if (!isDecimalString(item.Quantity) || !isDecimalString(item.UnitPrice)) throw new Error(`Quantity and UnitPrice must be decimal text, got ${item.Quantity} and ${item.UnitPrice}`)
        let product = products.get(item.ProductCode)
        if (!product) {
          product = { Name: item.ProductCode, IsActive: 'true', ...item.product, Id: randomSalesforceId('01t'), ProductCode: item.ProductCode }
          products.set(item.ProductCode, product)
        }
        const now = stamp()
        const record: SimRecord = {
          ...item.fields,
          Id: randomSalesforceId('802'),
          OrderId: order.Id!,
          Product2Id: product.Id!,
          PricebookEntryId: randomSalesforceId('01u'),
          OrderItemNumber: String(++orderItemNumber).padStart(10, '0'),
          Quantity: item.Quantity,
          UnitPrice: item.UnitPrice,
          ListPrice: item.UnitPrice,
          // Currency fields hold two decimals here (the org's currency scale).
          TotalPrice: roundDecimal(multiplyDecimals(item.Quantity, item.UnitPrice), 2),
          CreatedDate: now,
          LastModifiedDate: now,
          SystemModstamp: now,
        }
        list.push(record)
        return record
      })
      items.set(orderId, list)
      // TotalAmount is a roll-up of the items: the Order changes with them.
      simulator.updateOrder(orderId, { TotalAmount: roundDecimal(addDecimals(list.map((i) => i.TotalPrice!)), 2) })
      return created.map((r) => ({ ...r }))
    },
    orderItems: (orderId) => (items.get(orderId) ?? []).map((i) => ({ ...i })),
    changes: (id) => [...(changes.get(id) ?? [])],
    tasks: () => [...tasks.values()].map((t) => ({ ...t })),
    feedItems: () => [...feedItems.values()].map((f) => ({ ...f })),
    logins: () => logins,
    requests: () => [...requests],
    revokeTokens() {
      tokens.clear()
    },
    failNext(count, status, errors, headers = {}, failOptions = {}) {
      faults = { remaining: count, status, errors, headers, ...(failOptions.match ? { match: failOptions.match } : {}) }
    },
    outboundMessaging(url, messagingOptions = {}) {
      const fields = messagingOptions.fields ?? defaultOutboundFields
      const sender = createOutboundMessageSender({ url, organizationId, instanceUrl: simulator.url })
      const notificationOf = (orderId: string) => {
        const order = orders.get(orderId)
        if (!order) throw new Error(`no Order ${orderId}`)
        // The message carries the Order as it is when sent, not as it was when the change happened.
        return { sObjectType: 'Order', fields: Object.fromEntries(fields.map((f) => [f, order[f] ?? null])) }
      }
      return {
        sender,
        message: (orderIds) => sender.message(orderIds.map(notificationOf)),
        async notify(orderIds, notifyOptions = {}) {
          const results = []
          for (let i = 0; i < orderIds.length; i += 100) {
            results.push(await sender.send(orderIds.slice(i, i + 100).map(notificationOf), { retries: notifyOptions.retries ?? 3 }))
          }
          return results
        },
      }
    },
    close: () => app.close(),
  }
  return simulator
}

function decodeRequestUrl(url: string): string {
  try {
    return decodeURIComponent(url.replace(/\+/g, ' '))
  } catch {
    return url
  }
}
