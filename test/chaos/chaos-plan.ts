/**
 * What the chaos test sends and what it expects: a seeded plan of CRM orders (plain, updated in order,
 * updated out of order, cancelled; some delivered twice), each with the deliveries to make and the
 * sales order the ERP must end up holding. Pure: no I/O, the same seed gives the same plan.
 */
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import type { DemoCrmOrder } from '../../connectors/demo-crm/index.ts'
import { seededRandom } from '../../connectors/generic-rest/simulator.ts'

export type EventType = 'order.created' | 'order.updated' | 'order.cancelled'

export interface Delivery {
  type: EventType
  document: DemoCrmOrder
  webhookId: string
  /** Sent this long after the order's first delivery was answered (0: the first delivery itself). */
  afterMs: number
  /** Sent only once the ERP holds the order (then `afterMs` later), so the ERP's order is updated or cancelled. */
  afterSynced?: boolean
}

export type OrderKind = 'plain' | 'updated' | 'out-of-order' | 'cancelled'

export interface PlannedOrder {
  n: number
  externalId: string
  kind: OrderKind
  /** In sending order; the first is sent when the order's turn comes. */
  deliveries: Delivery[]
  /** The first delivery again, with the same webhook-id: at the same moment, or later. */
  redelivery?: 'concurrent' | 'later'
  redeliveryAfterMs: number
  /** The version the order must end at, and its document. */
  final: DemoCrmOrder
  cancelled: boolean
}

export interface PlanShares {
  orders: number
  duplicate: number
  outOfOrder: number
  cancelled: number
  /** Updates that arrive in order, so the ERP sees updates (PUT) under faults too. */
  updated: number
}

/** Version 2 of an order: one more of every item and an extra line, so v1 and v2 differ in lines and total. */
export function secondVersion(v1: DemoCrmOrder): DemoCrmOrder {
  return {
    ...v1,
    version: 2,
    items: [...v1.items.map((item) => ({ ...item, qty: Number(item.qty) + 1 })), { product_code: 'SKU-900', qty: 2, price: '12.34' }],
  }
}

function pick(random: () => number, from: number[], count: number): Set<number> {
  const pool = [...from]
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[pool[i], pool[j]] = [pool[j]!, pool[i]!]
  }
  return new Set(pool.slice(0, count))
}

export function planOrders(seed: number, shares: PlanShares, runTag: string): PlannedOrder[] {
  const random = seededRandom(seed ^ 0x5eed)
  const all = Array.from({ length: shares.orders }, (_, i) => i + 1)
  // Kinds are disjoint; duplicates are drawn from every order, whatever its kind.
  const kinds = pick(random, all, Math.round(shares.orders * (shares.outOfOrder + shares.cancelled + shares.updated)))
  const kindList = [...kinds]
  const outOfOrder = new Set(kindList.slice(0, Math.round(shares.orders * shares.outOfOrder)))
  const cancelled = new Set(kindList.slice(outOfOrder.size, outOfOrder.size + Math.round(shares.orders * shares.cancelled)))
  const duplicates = pick(random, all, Math.round(shares.orders * shares.duplicate))
  const later = () => 200 + Math.floor(random() * 2800)
  // Half the updates and cancellations come soon after the order (often before it reaches the ERP),
  // half once the ERP holds it, so that an existing ERP order is updated or cancelled under faults.
  const followUp = (type: EventType, document: DemoCrmOrder, webhookId: string): Delivery =>
    random() < 0.5 ? { type, document, webhookId, afterMs: later() } : { type, document, webhookId, afterMs: Math.floor(random() * 500), afterSynced: true }

  return all.map((n): PlannedOrder => {
    const externalId = `CH-${runTag}-${n}`
    const v1 = sampleOrder(n, externalId)
    const v2 = secondVersion(v1)
    const id = (suffix: string) => `msg_chaos_${runTag}_${n}_${suffix}`
    const kind: OrderKind = outOfOrder.has(n) ? 'out-of-order' : cancelled.has(n) ? 'cancelled' : kinds.has(n) ? 'updated' : 'plain'
    const deliveries: Delivery[] =
      kind === 'out-of-order'
        ? [
            { type: 'order.updated', document: v2, webhookId: id('v2'), afterMs: 0 },
            { type: 'order.created', document: v1, webhookId: id('v1'), afterMs: later() },
          ]
        : kind === 'cancelled'
          ? [{ type: 'order.created', document: v1, webhookId: id('v1'), afterMs: 0 }, followUp('order.cancelled', { ...v1, version: 2 }, id('v2'))]
          : kind === 'updated'
            ? [{ type: 'order.created', document: v1, webhookId: id('v1'), afterMs: 0 }, followUp('order.updated', v2, id('v2'))]
            : [{ type: 'order.created', document: v1, webhookId: id('v1'), afterMs: 0 }]
    const redelivery = duplicates.has(n) ? (random() < 0.5 ? 'concurrent' : 'later') : undefined
    return {
      n,
      externalId,
      kind,
      deliveries,
      ...(redelivery ? { redelivery } : {}),
      redeliveryAfterMs: later(),
      final: kind === 'plain' ? v1 : kind === 'cancelled' ? { ...v1, version: 2 } : v2,
      cancelled: kind === 'cancelled',
    }
  })
}

/** Integer quantity times a price with two decimals, as the exact decimal string the pipeline produces. */
function cents(price: string): bigint {
  const [whole, fraction = ''] = price.split('.')
  return BigInt(whole!) * 100n + BigInt(fraction.padEnd(2, '0').slice(0, 2))
}

function money(value: bigint): string {
  return `${value / 100n}.${String(value % 100n).padStart(2, '0')}`
}

export interface ExpectedSalesOrder {
  customerCode: string
  currency: string
  total: string
  crmOrderNumber: string
  lines: { itemCode: string; qty: string; price: string; amount: string }[]
}

/**
 * The sales order the demo ERP mapping must produce for a CRM document, computed here independently
 * (integer cents; the demo orders have whole quantities and prices with two decimals).
 */
export function expectedSalesOrder(document: DemoCrmOrder): ExpectedSalesOrder {
  const lines = document.items.map((item) => {
    const amount = BigInt(Number(item.qty)) * cents(item.price)
    return { itemCode: item.product_code, qty: String(item.qty), price: item.price, amount: money(amount), cents: amount }
  })
  return {
    customerCode: document.account.id,
    currency: document.currency,
    total: money(lines.reduce((sum, l) => sum + l.cents, 0n)),
    crmOrderNumber: document.order_id,
    lines: lines.map(({ cents: _, ...line }) => line),
  }
}
