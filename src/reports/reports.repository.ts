/**
 * The reports' queries: orders received in a time range, grouped, with their amounts and how long
 * they took to reach the ERP, the warehouse's shipment and payment; and sync health per connection
 * and operation. Reads only. Amounts are summed as SQL numeric and returned as text, so they are
 * exact to the last digit they were given in; durations and latencies are not money and come back
 * as numbers with one decimal.
 */
import type { Queryable } from '../db/database.ts'
import { operations } from '../orders/lifecycle.ts'
import { addDecimals } from '../shared/decimal.ts'

export const orderGroupings = ['day', 'state', 'customer', 'connection'] as const
export type OrderGrouping = (typeof orderGroupings)[number]

/** `[from, to)`; `to` is exclusive. */
export interface Range {
  from: Date
  to: Date
}

export interface Durations {
  /** Orders of the group that got there. */
  count: number
  /** Seconds, one decimal; null when none got there. */
  p50: number | null
  p95: number | null
}

export interface OrderGroup {
  group: string
  currency: string
  orders: number
  /** Sum of order totals, exact. */
  total: string
  /** Sum of what was paid on them, exact. */
  paid: string
  /** From received to the sales order created in the ERP (its first successful call). */
  toSynced: Durations
  /** From received to shipped. */
  toShipped: Durations
  /** From received to paid in full. */
  toPaid: Durations
}

export interface CurrencyTotal {
  currency: string
  orders: number
  total: string
  paid: string
}

export interface OrdersReport {
  groupBy: OrderGrouping
  from: string
  to: string
  currency: string | null
  groups: OrderGroup[]
  /** Per currency over all groups: amounts in different currencies are never added together. */
  totals: CurrencyTotal[]
}

// Days are UTC days.
const groupExpressions: Record<OrderGrouping, string> = {
  day: `to_char(o.created_at at time zone 'UTC', 'YYYY-MM-DD')`,
  state: 'o.state',
  customer: `coalesce(o.document->'customer'->>'externalId', '')`,
  connection: 'o.source_connection',
}

const seconds = (column: string, p: number) =>
  `round((percentile_cont(${p}) within group (order by extract(epoch from ${column} - created_at)))::numeric, 1)::float8`

const durations = (prefix: string, column: string) => `count(${column})::int as ${prefix}_count, ${seconds(column, 0.5)} as ${prefix}_p50, ${seconds(column, 0.95)} as ${prefix}_p95`

/** One row per group and currency, in group then currency order. */
export async function ordersReport(db: Queryable, groupBy: OrderGrouping, range: Range, currency?: string): Promise<OrdersReport> {
  const rows = await db.query<Record<string, unknown>>(
    `with received as (
       select o.id, o.currency, o.total, o.amount_paid, o.created_at, ${groupExpressions[groupBy]} as grp
       from orders o
       where o.created_at >= $1 and o.created_at < $2 and ($3::text is null or o.currency = $3)),
     timed as (
       select r.*,
         (select min(a.finished_at) from sync_attempts a where a.order_id = r.id and a.operation = $4 and a.outcome = 'succeeded') as synced_at,
         (select min(e.at) from order_events e where e.order_id = r.id and e.kind = 'transition' and e.to_state = 'shipped') as shipped_at,
         (select min(e.at) from order_events e where e.order_id = r.id and e.kind = 'payment' and e.detail->>'to' = 'paid') as paid_at
       from received r)
     select grp, currency, count(*)::int as orders, sum(total)::text as total, sum(amount_paid)::text as paid,
       ${durations('synced', 'synced_at')}, ${durations('shipped', 'shipped_at')}, ${durations('paid', 'paid_at')}
     from timed group by grp, currency order by grp, currency`,
    [range.from, range.to, currency ?? null, operations.salesOrder],
  )
  const track = (r: Record<string, unknown>, prefix: string): Durations => ({
    count: r[`${prefix}_count`] as number,
    p50: (r[`${prefix}_p50`] as number | null) ?? null,
    p95: (r[`${prefix}_p95`] as number | null) ?? null,
  })
  const groups = rows.map((r): OrderGroup => ({
    group: r.grp as string,
    currency: r.currency as string,
    orders: r.orders as number,
    total: r.total as string,
    paid: r.paid as string,
    toSynced: track(r, 'synced'),
    toShipped: track(r, 'shipped'),
    toPaid: track(r, 'paid'),
  }))
  // From the same rows, so the totals are the groups' sums exactly.
  const totals = [...new Set(groups.map((g) => g.currency))].sort().map((c) => {
    const of = groups.filter((g) => g.currency === c)
    return { currency: c, orders: of.reduce((n, g) => n + g.orders, 0), total: addDecimals(of.map((g) => g.total)), paid: addDecimals(of.map((g) => g.paid)) }
  })
  return { groupBy, from: range.from.toISOString(), to: range.to.toISOString(), currency: currency ?? null, groups, totals }
}

export interface SyncRow {
  connection: string
  /** Null on the row of a connection whose breaker opened but that made no call in the range. */
  operation: string | null
  /** Calls started in the range. */
  attempts: number
  succeeded: number
  failed: number
  /** succeeded / (succeeded + failed), four decimals; calls without an answer yet are left out. Null without answers. */
  successRate: number | null
  /** Calls beyond the first for the same order, operation and version. */
  retries: number
  /** Links (order × operation) that became dead letters in the range (change feed `sync.failed`, status `dead`). */
  deadLetters: number
  /** Links that came to need attention in the range. */
  needsAttention: number
  /** Of answered calls, milliseconds with one decimal. */
  meanLatencyMs: number | null
  p95LatencyMs: number | null
  /** Times the connection's circuit breaker opened in the range (change feed `breaker.opened`); per connection, repeated on each of its rows. */
  breakerOpenings: number
}

export interface SyncReport {
  from: string
  to: string
  rows: SyncRow[]
}

export async function syncReport(db: Queryable, range: Range): Promise<SyncReport> {
  const [attempts, failures, breakers] = await Promise.all([
    db.query<Record<string, unknown>>(
      `select connection_id, operation, count(*)::int as attempts,
         count(*) filter (where outcome = 'succeeded')::int as succeeded,
         count(*) filter (where outcome = 'failed')::int as failed,
         (count(*) - count(distinct (order_id, source_version)))::int as retries,
         round(avg(duration_ms)::numeric, 1)::float8 as mean_ms,
         round((percentile_cont(0.95) within group (order by duration_ms))::numeric, 1)::float8 as p95_ms
       from sync_attempts where started_at >= $1 and started_at < $2
       group by connection_id, operation`,
      [range.from, range.to],
    ),
    db.query<{ connection_id: string; operation: string; dead: number; needs_attention: number }>(
      `select connection_id, coalesce(data->>'operation', '') as operation,
         count(distinct order_id) filter (where data->>'status' = 'dead')::int as dead,
         count(distinct order_id) filter (where data->>'status' = 'needs_attention')::int as needs_attention
       from changes where type = 'sync.failed' and at >= $1 and at < $2 and connection_id is not null
       group by 1, 2 having count(*) filter (where data->>'status' in ('dead', 'needs_attention')) > 0`,
      [range.from, range.to],
    ),
    db.query<{ connection_id: string; openings: number }>(
      `select connection_id, count(*)::int as openings from changes
       where type = 'breaker.opened' and at >= $1 and at < $2 and connection_id is not null group by 1`,
      [range.from, range.to],
    ),
  ])
  const openings = new Map(breakers.map((b) => [b.connection_id, b.openings]))
  const rows = new Map<string, SyncRow>()
  const rowFor = (connection: string, operation: string | null) => {
    const key = JSON.stringify([connection, operation])
    let row = rows.get(key)
    if (!row) {
      row = { connection, operation, attempts: 0, succeeded: 0, failed: 0, successRate: null, retries: 0, deadLetters: 0, needsAttention: 0, meanLatencyMs: null, p95LatencyMs: null, breakerOpenings: openings.get(connection) ?? 0 }
      rows.set(key, row)
    }
    return row
  }
  for (const a of attempts) {
    const row = rowFor(a.connection_id as string, a.operation as string)
    Object.assign(row, {
      attempts: a.attempts,
      succeeded: a.succeeded,
      failed: a.failed,
      retries: a.retries,
      meanLatencyMs: a.mean_ms ?? null,
      p95LatencyMs: a.p95_ms ?? null,
    })
    const answered = row.succeeded + row.failed
    row.successRate = answered ? Math.round((row.succeeded / answered) * 10_000) / 10_000 : null
  }
  for (const f of failures) Object.assign(rowFor(f.connection_id, f.operation || null), { deadLetters: f.dead, needsAttention: f.needs_attention })
  for (const connection of openings.keys()) if (![...rows.values()].some((r) => r.connection === connection)) rowFor(connection, null)
  return {
    from: range.from.toISOString(),
    to: range.to.toISOString(),
    rows: [...rows.values()].sort((a, b) => a.connection.localeCompare(b.connection) || (a.operation ?? '').localeCompare(b.operation ?? '')),
  }
}
