/**
 * The filtered, cursor-paged order list behind GET /api/v1/orders. Reads only.
 *
 * Ordering: newest first by (created_at, id), which never change once an order exists. So paging
 * is stable while orders are updated: an order that changes state or is updated between two pages
 * keeps its place, and no order that existed when paging began is returned twice or skipped.
 * Orders created meanwhile sort before the first page (or, when their transaction began before
 * paging did, among the later pages, once). Filters on
 * what changes (state, paymentState, updatedSince, needsAttention) are evaluated when each page is
 * read. To follow changes rather than list, read the change feed.
 */
import type { Queryable } from '../db/database.ts'
import { orderFromRow, type OrderRow } from '../orders/order.repository.ts'

export interface OrderListFilter {
  states?: readonly string[]
  paymentStates?: readonly string[]
  /** From this connection or linked to it. */
  connection?: string
  externalId?: string
  updatedSince?: Date
  /** document.customer.externalId */
  customer?: string
  /** true: some link needs attention or is dead; false: none is. */
  needsAttention?: boolean
  /** Cursor: the last order of the previous page. */
  after?: string
  /** An integration key's connection: only orders from or linked to it (the rule of connection-scope.ts). */
  visibleTo?: string
  limit: number
}

// The columns orderFromRow reads.
const orderColumns =
  'o.id, o.source_connection, o.external_id, o.state, o.source_version, o.revision, o.document, o.currency, o.total::text as total, o.payment_state, o.amount_paid::text as amount_paid, o.hold, o.created_at, o.updated_at'

const fromOrLinkedTo = (param: string) => `(o.source_connection = ${param} or exists (select 1 from links l where l.order_id = o.id and l.connection_id = ${param}))`

/** Only the conditions asked for are in the statement, so each combination gets a plan of its own. */
export async function listOrderPage(db: Queryable, f: OrderListFilter): Promise<{ orders: OrderRow[]; next: string | null }> {
  const params: unknown[] = []
  const param = (value: unknown) => {
    params.push(value)
    return `$${params.length}`
  }
  const where: string[] = []
  if (f.states?.length) where.push(`o.state = any(${param(f.states)}::text[])`)
  if (f.paymentStates?.length) where.push(`o.payment_state = any(${param(f.paymentStates)}::text[])`)
  if (f.connection !== undefined) where.push(fromOrLinkedTo(`${param(f.connection)}::text`))
  if (f.visibleTo !== undefined) where.push(fromOrLinkedTo(`${param(f.visibleTo)}::text`))
  if (f.externalId !== undefined) where.push(`o.external_id = ${param(f.externalId)}`)
  if (f.updatedSince) where.push(`o.updated_at >= ${param(f.updatedSince)}::timestamptz`)
  if (f.customer !== undefined) where.push(`(o.document->'customer'->>'externalId') = ${param(f.customer)}::text`)
  if (f.needsAttention !== undefined) {
    where.push(`${f.needsAttention ? '' : 'not '}exists (select 1 from links l where l.order_id = o.id and l.status in ('needs_attention', 'dead'))`)
  }
  if (f.after) where.push(`(o.created_at, o.id) < (select created_at, id from orders where id = ${param(f.after)}::uuid)`)
  const rows = await db.query(
    `select ${orderColumns} from orders o ${where.length ? `where ${where.join(' and ')}` : ''}
     order by o.created_at desc, o.id desc limit ${param(f.limit + 1)}`,
    params,
  )
  const orders = rows.slice(0, f.limit).map(orderFromRow)
  return { orders, next: rows.length > f.limit ? orders.at(-1)!.id : null }
}
