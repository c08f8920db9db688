/**
 * What of an order each reader may see. Pure: the order read routes (and, later, the approvals
 * routes) pass every order they answer with through projectOrderFor; it does no I/O.
 *
 * | reader | sees |
 * | --- | --- |
 * | admin, ops, viewer, integration (own connection only, see status.routes.ts) | everything |
 * | approver, finance | everything: amounts and credit figures |
 * | approver, sales_manager | everything but credit figures (any field named `credit…`, at any depth) |
 * | approver, warehouse | what picking and shipping need: lines with SKUs and quantities, customer, addresses, delivery dates, state, links, timeline; no prices, amounts, totals, discounts, taxes or credit |
 *
 * The warehouse view is an allow-list, so a field added to orders later stays hidden from it until
 * it is added here: a money field is never shown by accident. Link errors and timeline details are
 * left out of it too, since they may quote amounts.
 */
import type { Principal } from './api-keys.ts'

type Json = Record<string, unknown>

const isRecord = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Names that hold money, even when they also look like logistics (`shippingCost`). */
const moneyName = /price|amount|total|cost|fee|charge|discount|tax|vat|credit|margin|value|rate|payment|balance/i
/** Names of logistics fields the warehouse needs: addresses, whom to ship to, when. */
const logisticsName = /address|^(ship|bill|deliver)to$|^(requested)?(delivery|shipping|ship)(date|by|window)$|^(warehouse|location|incoterms?|carrier)$/i

// Order views (status.routes.ts), and pending approvals (approvals routes) as their items are shaped.
const warehouseView = ['id', 'connection', 'externalId', 'state', 'version', 'revision', 'createdAt', 'updatedAt', 'orderId', 'sourceConnection', 'level', 'rule', 'waitingSince']
const warehouseDocument = ['externalId', 'owner', 'orderedAt']
const warehouseCustomer = ['externalId', 'name']
const warehouseLine = ['sku', 'quantity', 'description', 'name', 'unit', 'uom', 'lineNumber']
const warehouseLink = ['connection', 'operation', 'externalId', 'status', 'lastSyncedVersion', 'updatedAt']
const warehouseTimeline = ['at', 'kind', 'fromState', 'toState', 'cause']
const warehouseApproval = ['level', 'status', 'rule', 'decidedBy', 'decidedAt', 'automatic']

function pick(from: Json, names: readonly string[], extra?: RegExp): Json {
  const out: Json = {}
  for (const [k, v] of Object.entries(from)) {
    if (names.includes(k) || (extra && extra.test(k) && !moneyName.test(k))) out[k] = v
  }
  return out
}

const records = (v: unknown): Json[] => (Array.isArray(v) ? v.filter(isRecord) : [])

function forWarehouse(order: Json): Json {
  const out = pick(order, warehouseView)
  if (isRecord(order.document)) {
    const doc = order.document
    out.document = {
      ...pick(doc, warehouseDocument, logisticsName),
      ...(isRecord(doc.customer) ? { customer: pick(doc.customer, warehouseCustomer, logisticsName) } : {}),
      ...(Array.isArray(doc.lines) ? { lines: records(doc.lines).map((l) => pick(l, warehouseLine, logisticsName)) } : {}),
    }
  }
  if (Array.isArray(order.links)) out.links = records(order.links).map((l) => pick(l, warehouseLink))
  if (Array.isArray(order.timeline)) out.timeline = records(order.timeline).map((t) => pick(t, warehouseTimeline))
  if (isRecord(order.customer)) out.customer = pick(order.customer, warehouseCustomer, logisticsName)
  if (Array.isArray(order.approvals)) out.approvals = records(order.approvals).map((a) => pick(a, warehouseApproval))
  return out
}

function withoutCredit(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutCredit)
  if (!isRecord(value)) return value
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (/credit/i.test(k) ? [] : [[k, withoutCredit(v)]])))
}

/**
 * The order as `principal` may see it. `order` is the read API's view of an order (top-level
 * `total`, `currency`, `document`, `links`, `timeline`, …) or an item of the pending approvals
 * list (`orderId`, `customer`, `total`, `approvals`, …).
 *
 * @example
 * projectOrderFor({ role: 'approver', level: 'warehouse', … }, view).document.lines[0] // { sku, quantity }
 */
export function projectOrderFor<T extends Json>(principal: Principal | undefined, order: T): Json {
  if (principal?.role !== 'approver') return order
  switch (principal.level) {
    case 'finance':
      return order
    case 'sales_manager':
      return withoutCredit(order) as Json
    default:
      // warehouse, and any level this code does not know: the narrowest view
      return forWarehouse(order)
  }
}
