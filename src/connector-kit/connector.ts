import type { z } from 'zod'
import type { SyncFailure } from './failure.ts'

export type ConnectorRole = 'crm' | 'inventory' | 'erp'

export interface ConnectorManifest<Settings = unknown, Secrets = unknown> {
  id: string
  version: string
  displayName: string
  roles: readonly ConnectorRole[]
  settingsSchema: z.ZodType<Settings>
  /** Secrets are write-only: never logged, never returned by the API. */
  secretsSchema: z.ZodType<Secrets>
  limits?: { concurrency?: number }
}

export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface ConnectorContext<Settings = unknown, Secrets = unknown> {
  connectionId: string
  settings: Settings
  secrets: Secrets
  log: Logger
}

export interface OperationContext<Settings = unknown, Secrets = unknown> extends ConnectorContext<Settings, Secrets> {
  /** Made from (order, target, operation, version): the same for every retry of one write. */
  idempotencyKey: string
  /** Our reference for the order (its id); stored in the remote so a retry can find it. */
  reference: string
  /** True when an earlier attempt may have reached the remote: look before writing again. */
  mayHaveWritten: boolean
}

/** Events a CRM sends about its orders; their documents go through the connection's inbound mapping. */
export const inboundEventTypes = ['order.created', 'order.updated', 'order.cancelled'] as const
export type InboundEventType = (typeof inboundEventTypes)[number]

/**
 * Events a WMS, an ERP or a CRM that runs approval itself sends about orders we already hold.
 * The connector turns its own format into the documents below (`fulfilmentDocumentSchemas` in
 * src/orders validates them); no field mapping is involved.
 */
export const fulfilmentEventTypes = [
  'order.approval', // { decision: 'approve' | 'reject', level?, comment?, by? }
  'order.shipped', // { carrier?, trackingNumber?, lines?: [{ sku, quantity }] }
  'order.delivered', // { at? }
  'order.invoiced', // { invoiceNumber, amount, currency, dueDate? }
  'order.payment_received', // { paymentId, amount, currency }
  'stock.changed', // { levels: [{ sku, available }] }
] as const
export type FulfilmentEventType = (typeof fulfilmentEventTypes)[number]

/** What a connector extracts from one verified, validated delivery. */
export interface InboundEvent {
  type: InboundEventType | FulfilmentEventType
  /**
   * Which order: for CRM order events the CRM's id; for fulfilment events the id this connection
   * knows the order by (its sales order or reservation id, as on our link), or `ref:<our order id>`
   * when the system echoes our reference. Empty for `stock.changed`.
   */
  externalId: string
  /** The source's own version of the document; stale or repeated versions change nothing. 0 when the source has none. */
  sourceVersion: number
  document: Record<string, unknown>
}

export interface WebhookCapability<Body> {
  /** How deliveries are authenticated; the secret comes from the connection's secrets. */
  verification: 'standard-webhooks'
  /** Validates the parsed body; its issues become the 422 details. */
  bodySchema: z.ZodType<Body>
  toEvent(body: Body): InboundEvent
}

/**
 * A delivery format other than Standard-Webhooks-signed JSON (Salesforce's SOAP outbound messages,
 * Fxiaoke's signed pushes): the connector verifies and parses the raw body and says how to answer.
 * The ingest route stores every event durably (deduplicated per `eventId`) before it acknowledges.
 */
export interface CustomWebhookCapability<Settings, Secrets> {
  verification: 'custom'
  /** Media types accepted, e.g. `['text/xml', 'application/xml']`; others get 415. */
  contentTypes: readonly string[]
  /** Verifies and parses one delivery; throws WebhookRejected to refuse it. */
  receive(delivery: IncomingDelivery<Settings, Secrets>): ReceivedDelivery
  /** The answer once every event of the delivery is durable (e.g. Salesforce's Ack envelope). */
  acknowledge(delivery: ReceivedDelivery): WebhookAnswer
  /** The answer to a refused delivery (e.g. a SOAP fault); the status is the rejection's. */
  refuse(rejection: WebhookRejected): WebhookAnswer
}

/** One delivery to `POST /webhooks/:connection` as a custom-webhook connector gets it: the bytes, before any parsing. */
export interface IncomingDelivery<Settings, Secrets> {
  raw: Buffer
  headers: Readonly<Record<string, string | undefined>>
  settings: Settings
  secrets: Secrets
}

export interface ReceivedDelivery {
  /** One per notification; `eventId` is what redeliveries repeat (e.g. Salesforce's Notification Id). */
  events: (InboundEvent & { eventId: string })[]
}

export interface WebhookAnswer {
  contentType: string
  body: string
}

/** Why a delivery is refused: 401 (signature, organization), 415 (media type), 400 (unparseable), 422 (document). */
export class WebhookRejected extends Error {
  readonly status: 400 | 401 | 415 | 422
  readonly code: string
  readonly details: readonly { path: string; message: string }[]
  constructor(status: WebhookRejected['status'], code: string, message: string, details: readonly { path: string; message: string }[] = []) {
    super(message)
    this.name = 'WebhookRejected'
    this.status = status
    this.code = code
    this.details = details
  }
}

/** One page of changes from a polled source (see `PollCapability`). */
export interface PolledChanges {
  /** Each with an `eventId` that is the same whenever the same version is read again (e.g. `${id}:${modifiedAt}`). */
  events: (InboundEvent & { eventId: string })[]
  /** Where the next call goes on; stored only once every event above is durable in the inbox. */
  nextCursor: string | null
  /** More changes are waiting now: the poller asks again at once instead of at the next interval. */
  more: boolean
}

/**
 * For a source without a change webhook: the generic poller (src/polling) calls `fetchChanges` on a
 * repeatable job per connection, writes the events to the inbox like webhook deliveries (deduplicated
 * per `eventId`), and only then stores `nextCursor` in the database. So the cursor is never ahead of
 * what is durable, and a page read twice (a crash between the inbox commit and the cursor update)
 * only repeats event ids the inbox already holds. The connector owns the cursor's format; it must
 * not skip records that share a timestamp with the last one of a page.
 *
 * @example
 * poll: {
 *   resource: 'SalesOrderObj',
 *   intervalMs: (settings) => settings.poll?.intervalMs,
 *   fetchChanges: (ctx, cursor, limit) => client(ctx).changedOrders(cursor, limit),
 * }
 */
export interface PollCapability<Settings, Secrets> {
  /** What is polled (e.g. `SalesOrderObj`); the poller keeps one cursor per connection and resource. */
  resource: string
  /** How often this connection polls, from its settings; `undefined` means it does not poll. */
  intervalMs(settings: Settings): number | undefined
  /** The changes after `cursor` (`null`: the first poll), at most about `limit` of them. */
  fetchChanges(ctx: ConnectorContext<Settings, Secrets>, cursor: string | null, limit: number): Promise<PolledChanges>
}

export interface RemoteRecord {
  externalId: string
}

export interface Operation<Input, Output, Settings, Secrets> {
  inputSchema: z.ZodType<Input>
  /** How a retry stays safe. */
  idempotency: 'native-key' | 'lookup-by-reference' | 'none'
  run(ctx: OperationContext<Settings, Secrets>, input: Input, existing: RemoteRecord | undefined): Promise<Output>
}

/**
 * A sales order as the ERP holds it now, for reconciliation. Amounts and quantities are decimal
 * strings; a field the ERP does not report is left out (and is then not compared).
 */
export interface RemoteSalesOrder extends RemoteRecord {
  /** Our reference (the order id) as the ERP stores it. */
  reference?: string
  /** `cancelled` when the ERP says so; anything else is `open`. */
  status: 'open' | 'cancelled'
  /** The ERP's own word for its status, shown to people as it is. */
  remoteStatus?: string
  currency?: string
  total?: string
  /** Per line, the SKU and quantity as the ERP names them. */
  lines?: { sku: string; quantity: string }[]
  updatedAt?: string
}

export interface RemoteSalesOrderPage {
  orders: RemoteSalesOrder[]
  /** Where the next page starts; `null` when this was the last. */
  nextCursor: string | null
}

export interface SalesOrderCapability<Settings, Secrets> {
  /** Creates the sales order, or updates it when `existing` names it. */
  upsert: Operation<Record<string, unknown>, RemoteRecord, Settings, Secrets>
  findByReference(ctx: ConnectorContext<Settings, Secrets>, reference: string): Promise<RemoteRecord | undefined>
  /** Cancels the sales order; must succeed when it is already cancelled (a retry). */
  cancel?(ctx: OperationContext<Settings, Secrets>, existing: RemoteRecord): Promise<void>
  /** Reconciliation: the sales order as the ERP holds it now; undefined when it does not exist. */
  fetch?(ctx: ConnectorContext<Settings, Secrets>, externalId: string): Promise<RemoteSalesOrder | undefined>
  /**
   * Reconciliation, batched: every sales order the ERP holds under any of `references` (several per
   * reference when it holds duplicates), whatever their status. The connector splits the list into
   * requests the ERP accepts; the caller sends a page of orders at a time.
   */
  findManyByReference?(ctx: ConnectorContext<Settings, Secrets>, references: readonly string[]): Promise<RemoteSalesOrder[]>
  /**
   * Reconciliation, to find orphans (orders in the ERP we do not know): the sales orders created or
   * changed since `since` (all when unset), a page at a time in a stable order; `cursor` is the
   * `nextCursor` of the previous page (`null` for the first).
   */
  listSince?(ctx: ConnectorContext<Settings, Secrets>, query: { since?: string; cursor: string | null; limit: number }): Promise<RemoteSalesOrderPage>
}

/** Quantities are decimal strings, like money: never floats. */
export interface StockLevel {
  sku: string
  available: string
  onHand?: string
  warehouse?: string
}

export interface ReservationRequest {
  lines: { lineId: string; sku: string; quantity: string }[]
  /** When false (the default) the reservation is all-or-nothing. */
  allowPartial: boolean
}

export interface Reservation extends RemoteRecord {
  /** Per requested line, what was reserved; a line short of stock has `reserved` below `requested`. */
  lines: { lineId: string; sku: string; requested: string; reserved: string }[]
}

/** A reservation as the WMS holds it now, for reconciliation. */
export interface RemoteReservation extends Reservation {
  /** Our reference (the order id) it was made under. */
  reference: string
  /** `active` holds stock; `released`, `shipped` and `delivered` no longer do. */
  status: 'active' | 'released' | 'shipped' | 'delivered'
}

export interface InventoryCapability<Settings, Secrets> {
  getStock(ctx: ConnectorContext<Settings, Secrets>, skus: readonly string[]): Promise<StockLevel[]>
  /**
   * Reserves stock under `ctx.idempotencyKey`, or replaces the quantities of `existing`. Must never
   * oversell. Insufficient stock (all-or-nothing) is a `data` SyncFailure whose details carry
   * `missing: [{ lineId, sku, requested, available }]`.
   */
  reserve: Operation<ReservationRequest, Reservation, Settings, Secrets>
  findReservation(ctx: ConnectorContext<Settings, Secrets>, reference: string): Promise<Reservation | undefined>
  /** Releases the reservation; must succeed when it is already released (a retry). */
  release(ctx: OperationContext<Settings, Secrets>, existing: RemoteRecord): Promise<void>
  /**
   * Reconciliation, batched: every reservation held under any of `references`, whatever its status
   * (several per reference when the WMS holds duplicates).
   */
  findManyReservations?(ctx: ConnectorContext<Settings, Secrets>, references: readonly string[]): Promise<RemoteReservation[]>
  /**
   * Reconciliation, to find orphans (reservations for orders we do not know): reservations a page
   * at a time in a stable order, only active ones when `activeOnly`; `cursor` as for `listSince`.
   */
  listReservations?(ctx: ConnectorContext<Settings, Secrets>, query: { activeOnly: boolean; since?: string; cursor: string | null; limit: number }): Promise<{ reservations: RemoteReservation[]; nextCursor: string | null }>
}

export interface CustomerCredit {
  /** Decimal strings in `currency`. */
  limit: string
  outstanding: string
  currency: string
  overdue: boolean
}

export interface CreditCapability<Settings, Secrets> {
  getCustomerCredit(ctx: ConnectorContext<Settings, Secrets>, customerId: string): Promise<CustomerCredit>
}

/** What a CRM is told when an order moves on. Amounts are decimal strings. */
export interface OrderStatusUpdate {
  state: string
  paymentState?: string
  erpOrderNumber?: string
  invoiceNumber?: string
  carrier?: string
  trackingNumber?: string
  paidAmount?: string
  currency?: string
  comment?: string
}

/** A CRM's order as reconciliation sees it: the status last written back, in our words. */
export interface RemoteCrmOrder {
  externalId: string
  /** What the CRM shows; undefined when nothing was ever written back. */
  status?: OrderStatusUpdate
}

export interface CrmWritebackCapability<Settings, Secrets> {
  /** False when this connection's settings leave nothing to write to (a push-only source); default true. */
  enabled?(settings: Settings): boolean
  /** Idempotent: the same update sent twice leaves the CRM as after once. */
  updateOrderStatus(ctx: OperationContext<Settings, Secrets>, crmOrderId: string, update: OrderStatusUpdate): Promise<void>
  /** A task or feed entry on the CRM's order, for reminders and notifications. */
  addNote?(ctx: OperationContext<Settings, Secrets>, crmOrderId: string, note: { title: string; body: string }): Promise<void>
  /** Available quantities per SKU, so sales see stock when they quote. */
  pushStockLevels?(ctx: OperationContext<Settings, Secrets>, levels: readonly StockLevel[]): Promise<void>
  /** Reconciliation: what the CRM shows for its order now; undefined when it does not know the order. */
  fetchOrder?(ctx: ConnectorContext<Settings, Secrets>, crmOrderId: string): Promise<RemoteCrmOrder | undefined>
  /** Reconciliation, batched: as `fetchOrder` for each id; orders the CRM does not know are left out. */
  fetchOrders?(ctx: ConnectorContext<Settings, Secrets>, crmOrderIds: readonly string[]): Promise<RemoteCrmOrder[]>
}

/** An invoice as the ERP holds it, for reconciliation. Amounts are decimal strings in `currency`. */
export interface RemoteInvoice {
  externalId: string
  /** The number people (and our `order.invoiced` events) use. */
  number: string
  /** Our order id, when the ERP carries it over from the sales order. */
  reference?: string
  salesOrderId?: string
  currency: string
  amount: string
  paid: string
  status?: string
}

/** Invoices for reconciliation: by our order references (batched), or everything since a time. */
export type InvoiceQuery = { orderRefs: readonly string[] } | { since: string; cursor: string | null; limit: number }

export interface InvoiceCapability<Settings, Secrets> {
  /** With `orderRefs`, every invoice of those orders in one page (`nextCursor` null). */
  list(ctx: ConnectorContext<Settings, Secrets>, query: InvoiceQuery): Promise<{ invoices: RemoteInvoice[]; nextCursor: string | null }>
}

/**
 * For sources whose deliveries carry only part of an order (Salesforce's outbound messages carry
 * the Order, not its OrderItems): completes the stored document before it is mapped. Runs in the
 * worker, never while the delivery is being acknowledged; a retryable failure retries the event.
 */
export interface EnrichmentCapability<Settings, Secrets> {
  enrich(ctx: ConnectorContext<Settings, Secrets>, event: { type: string; externalId: string; document: Record<string, unknown> }): Promise<Record<string, unknown>>
}

export interface ConnectorDefinition<Settings = any, Secrets = any, Body = any> {
  manifest: ConnectorManifest<Settings, Secrets>
  check(ctx: ConnectorContext<Settings, Secrets>): Promise<void>
  classify(err: unknown, ctx: ConnectorContext<Settings, Secrets>): SyncFailure
  webhooks?: WebhookCapability<Body>
  /** Instead of `webhooks`, for a vendor's own delivery format. */
  customWebhooks?: CustomWebhookCapability<Settings, Secrets>
  enrichment?: EnrichmentCapability<Settings, Secrets>
  /** For a source without a change webhook: polled for changes (src/polling). */
  poll?: PollCapability<Settings, Secrets>
  salesOrders?: SalesOrderCapability<Settings, Secrets>
  inventory?: InventoryCapability<Settings, Secrets>
  credit?: CreditCapability<Settings, Secrets>
  crm?: CrmWritebackCapability<Settings, Secrets>
  /** Reads the ERP's invoices, so reconciliation can compare amounts and payments. */
  invoices?: InvoiceCapability<Settings, Secrets>
  /**
   * The fields a target document of this connection takes, so the mapping editor can offer them.
   * `target` is `'salesOrder'`, `'customer'` or a connector's own name; an unknown target answers `[]`.
   * May read the connection's settings (configured paths, custom fields) or ask the remote (a
   * metadata endpoint); must not write.
   *
   * @example
   * describeFields: async (ctx, target) => target === 'salesOrder'
   *   ? [{ path: 'reference', type: 'string', required: true, description: 'our order id' },
   *      { path: 'lines[].qty', type: 'decimal', required: true }]
   *   : [],
   */
  describeFields?(ctx: ConnectorContext<Settings, Secrets>, target: FieldTarget): Promise<TargetField[]>
}

/** What `describeFields` describes: the sales order, the customer, or a connector's own document. */
export type FieldTarget = 'salesOrder' | 'customer' | (string & {})

/** One field of a target document, as the mapping editor offers it. */
export interface TargetField {
  /**
   * Dot path in the target document, as a mapping's `to` writes it; `[]` marks the elements of a
   * list (`lines[].itemCode`, the list itself being `lines` with type `array`).
   */
  path: string
  /** A mapping value type (`string`, `integer`, `decimal`, `boolean`, `date`, `datetime`) or `object` / `array`. */
  type: string
  required: boolean
  description?: string
}

/**
 * Declares a connector. Capabilities are the members it implements; the pipeline asks for a
 * capability (e.g. `salesOrders`), never for a connector by name.
 *
 * @example
 * export const acmeErp = defineConnector({
 *   manifest: { id: 'acme-erp', version: '1.0.0', displayName: 'Acme ERP', roles: ['erp'], settingsSchema, secretsSchema },
 *   check: (ctx) => client(ctx).ping(),
 *   classify: (err) => classifyHttpError(err, 'acme-erp'),
 *   salesOrders: { upsert, findByReference },
 * })
 */
export function defineConnector<Settings, Secrets, Body = never>(
  definition: ConnectorDefinition<Settings, Secrets, Body>,
): ConnectorDefinition<Settings, Secrets, Body> {
  return definition
}
