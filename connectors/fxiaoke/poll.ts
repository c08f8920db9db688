/**
 * Polling SalesOrderObj for changes over /cgi/crm/v2/data/query (Fxiaoke documents no change
 * webhook). Keyset paging on (last_modified_time, _id), always at offset 0:
 *
 * - cursor `T`: every order with last_modified_time ≤ T is done.
 * - cursor `T:id`: every order before T is done, and those at exactly T up to _id `id` (a page
 *   ended inside a run of equal timestamps; the next call drains that run first, by `_id`).
 *
 * Offset paging is not used: it passes over records that move while the pages are read (an order
 * modified meanwhile leaves its place and every later one shifts back by one), and the API refuses
 * offsets over 10 000. Changes younger than `settleMs` wait for the next poll, so a record
 * committed late with an earlier timestamp is not passed over.
 */
import { SyncFailure, type PolledChanges } from '../../src/connector-kit/index.ts'
import { fxiaokeClient, type FxiaokeClient, type FxiaokeContext, type QueryFilter } from './client.ts'
import { orderEvent, orderRecordSchema, type FxRecord } from './records.ts'
import { fxiaokeConnectorId, type FxiaokeSettings } from './settings.ts'

/** The query API's largest page. */
export const maxPageSize = 100

const cursorPattern = /^(\d+)(?::(.+))?$/

interface Position {
  time: number
  /** Set when the run of orders at `time` may go on after this _id. */
  afterId?: string
}

export function parseCursor(cursor: string | null, settings: FxiaokeSettings, now: number): Position {
  if (cursor === null) {
    const since = settings.poll?.since
    // `since` is inclusive; the filter after a cursor is "greater than".
    return { time: since !== undefined ? Date.parse(since) - 1 : now - (settings.poll?.settleMs ?? 0) }
  }
  const match = cursorPattern.exec(cursor)
  if (!match) throw new SyncFailure('bug', `unreadable poll cursor "${cursor.slice(0, 80)}"`, { connectorId: fxiaokeConnectorId })
  return { time: Number(match[1]), ...(match[2] !== undefined ? { afterId: match[2] } : {}) }
}

const filter = (field_name: string, operator: QueryFilter['operator'], ...values: (string | number)[]): QueryFilter => ({ field_name, operator, field_values: values.map(String) })

function idOf(record: FxRecord): string {
  return orderRecordSchema.shape._id.parse(record._id)
}

function timeOf(record: FxRecord): number {
  return orderRecordSchema.shape.last_modified_time.parse(record.last_modified_time)
}

/** The lines of these orders, every page of them. */
async function linesOf(client: FxiaokeClient, settings: FxiaokeSettings, orderIds: readonly string[]): Promise<Map<string, FxRecord[]>> {
  const byOrder = new Map<string, FxRecord[]>()
  if (!orderIds.length) return byOrder
  const { line, lineOrderField } = settings.objects
  let after: string | undefined
  for (;;) {
    const page = await client.query(line, {
      offset: 0,
      limit: maxPageSize,
      filters: [filter(lineOrderField, 'IN', ...orderIds), ...(after !== undefined ? [filter('_id', 'GT', after)] : [])],
      orders: [{ fieldName: '_id', isAsc: true }],
    })
    for (const record of page) {
      const orderId = String(record[lineOrderField] ?? '')
      byOrder.set(orderId, [...(byOrder.get(orderId) ?? []), record])
    }
    if (page.length < maxPageSize) return byOrder
    after = String(page.at(-1)?._id ?? '')
  }
}

export async function fetchOrderChanges(ctx: FxiaokeContext, cursor: string | null, limit: number): Promise<PolledChanges> {
  const { settings } = ctx
  const client = fxiaokeClient(ctx)
  const pageSize = Math.max(1, Math.min(limit, settings.poll?.pageSize ?? maxPageSize, maxPageSize))
  const now = Date.now()
  const position = parseCursor(cursor, settings, now)
  const orderObject = settings.objects.order
  const orders: FxRecord[] = []
  let next = `${position.time}`
  let more = false

  if (position.afterId !== undefined) {
    const tied = await client.query(orderObject, {
      offset: 0,
      limit: pageSize,
      filters: [filter('last_modified_time', 'EQ', position.time), filter('_id', 'GT', position.afterId)],
      orders: [{ fieldName: '_id', isAsc: true }],
    })
    orders.push(...tied)
    const last = tied.at(-1)
    if (tied.length === pageSize && last) {
      next = `${position.time}:${idOf(last)}`
      more = true
    }
  }
  if (!more) {
    const room = pageSize - orders.length
    const later = await client.query(orderObject, {
      offset: 0,
      limit: room,
      filters: [filter('last_modified_time', 'GT', position.time), filter('last_modified_time', 'LTE', now - (settings.poll?.settleMs ?? 0))],
      orders: [
        { fieldName: 'last_modified_time', isAsc: true },
        { fieldName: '_id', isAsc: true },
      ],
    })
    orders.push(...later)
    const last = later.at(-1)
    if (last) {
      // A full page may have stopped inside a run of equal timestamps: remember the _id.
      more = later.length === room
      next = more ? `${timeOf(last)}:${idOf(last)}` : `${timeOf(last)}`
    }
  }

  const lines = await linesOf(client, settings, orders.map(idOf))
  const options = { lineObject: settings.objects.line, writebackFields: writebackFieldNames(settings) }
  return { events: orders.map((order) => orderEvent(order, lines.get(idOf(order)) ?? [], options)), nextCursor: next, more }
}

export function writebackFieldNames(settings: FxiaokeSettings): string[] {
  return Object.values(settings.writeback?.fields ?? {}).filter((name): name is string => name !== undefined)
}
