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

export const inboundEventTypes = ['order.created', 'order.updated', 'order.cancelled'] as const
export type InboundEventType = (typeof inboundEventTypes)[number]

/** What a source connector extracts from one verified, validated delivery. */
export interface InboundEvent {
  type: InboundEventType
  externalId: string
  /** The source's own version of the document; stale or repeated versions change nothing. */
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

export interface ConnectorDefinition<Settings = any, Secrets = any, Body = any> {
  manifest: ConnectorManifest<Settings, Secrets>
  check(ctx: ConnectorContext<Settings, Secrets>): Promise<void>
  classify(err: unknown, ctx: ConnectorContext<Settings, Secrets>): SyncFailure
  webhooks?: WebhookCapability<Body>
  salesOrders?: SalesOrderCapability<Settings, Secrets>
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
