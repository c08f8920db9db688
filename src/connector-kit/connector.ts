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

export interface RemoteRecord {
  externalId: string
}

export interface Operation<Input, Output, Settings, Secrets> {
  inputSchema: z.ZodType<Input>
  /** How a retry stays safe. */
  idempotency: 'native-key' | 'lookup-by-reference' | 'none'
  run(ctx: OperationContext<Settings, Secrets>, input: Input, existing: RemoteRecord | undefined): Promise<Output>
}

export interface SalesOrderCapability<Settings, Secrets> {
  /** Creates the sales order, or updates it when `existing` names it. */
  upsert: Operation<Record<string, unknown>, RemoteRecord, Settings, Secrets>
  findByReference(ctx: ConnectorContext<Settings, Secrets>, reference: string): Promise<RemoteRecord | undefined>
  /** Cancels the sales order; must succeed when it is already cancelled (a retry). */
  cancel?(ctx: OperationContext<Settings, Secrets>, existing: RemoteRecord): Promise<void>
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

export interface CrmWritebackCapability<Settings, Secrets> {
  /** Idempotent: the same update sent twice leaves the CRM as after once. */
  updateOrderStatus(ctx: OperationContext<Settings, Secrets>, crmOrderId: string, update: OrderStatusUpdate): Promise<void>
  /** A task or feed entry on the CRM's order, for reminders and notifications. */
  addNote?(ctx: OperationContext<Settings, Secrets>, crmOrderId: string, note: { title: string; body: string }): Promise<void>
  /** Available quantities per SKU, so sales see stock when they quote. */
  pushStockLevels?(ctx: OperationContext<Settings, Secrets>, levels: readonly StockLevel[]): Promise<void>
}

export interface ConnectorDefinition<Settings = any, Secrets = any, Body = any> {
  manifest: ConnectorManifest<Settings, Secrets>
  check(ctx: ConnectorContext<Settings, Secrets>): Promise<void>
  classify(err: unknown, ctx: ConnectorContext<Settings, Secrets>): SyncFailure
  webhooks?: WebhookCapability<Body>
  salesOrders?: SalesOrderCapability<Settings, Secrets>
  inventory?: InventoryCapability<Settings, Secrets>
  credit?: CreditCapability<Settings, Secrets>
  crm?: CrmWritebackCapability<Settings, Secrets>
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
