/**
 * What an integration key may see: orders that came from its connection or are linked to it (the
 * same rule as listOrders' `visibleTo`). Reads only.
 */
import type { Queryable } from '../db/database.ts'

/** Of `orderIds`, the orders visible to `connection`. */
export async function ordersVisibleTo(db: Queryable, connection: string, orderIds: readonly string[]): Promise<Set<string>> {
  if (!orderIds.length) return new Set()
  const rows = await db.query<{ id: string }>(
    `select id from orders
     where id = any($1::uuid[])
       and (source_connection = $2 or exists (select 1 from links l where l.order_id = orders.id and l.connection_id = $2))`,
    [[...new Set(orderIds)], connection],
  )
  return new Set(rows.map((r) => r.id))
}
