/**
 * What of an order each reader may see. Pure: the order read routes and the pending approvals list
 * pass every order they answer with through projectOrderFor; it does no I/O.
 *
 * | reader | sees |
 * | --- | --- |
 * | admin, ops | everything |
 * | approver, finance | everything: amounts and credit figures |
 * | viewer, integration (own connection only, see status.routes.ts), approver sales_manager | everything but credit figures |
 * | approver, warehouse | what picking and shipping need: lines with SKUs and quantities, customer, addresses, delivery dates, state, links, timeline; no prices, amounts, totals, discounts, taxes or credit |
 *
 * Credit figures are any field named `credit…` at any depth, and what the credit check wrote in the
 * timeline: its `credit_checked` entry (reason and figures) and the comment of the automatic finance
 * approval it gave (its reason, which quotes the sums).
 *
 * The warehouse view is an allow-list, so a field added to orders later stays hidden from it until
 * it is added here: a money field is never shown by accident. Link errors, timeline details and the
 * causes of approval and reconciliation entries are left out of it too, since they may quote amounts.
 */
import { creditCheckedEventKind } from '../approvals/credit-decision.ts'
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
const warehouseTimelineWithoutCause = ['at', 'kind', 'fromState', 'toState']
const warehouseApproval = ['level', 'status', 'rule', 'decidedBy', 'decidedAt', 'automatic']

/**
 * Causes written from the approval rules' reasons (`total 120000.00 CNY is at least 10000`), from a
 * decider's comment, or from a reconciliation's findings: they may quote amounts.
 */
function causeMayQuoteAmounts(entry: Json): boolean {
  if (entry.kind === 'reconciliation') return true
  return entry.kind === 'transition' && (entry.toState === 'pending_approval' || entry.toState === 'approved' || entry.toState === 'rejected')
}

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
  if (Array.isArray(order.timeline)) out.timeline = records(order.timeline).map((t) => pick(t, causeMayQuoteAmounts(t) ? warehouseTimelineWithoutCause : warehouseTimeline))
  if (isRecord(order.customer)) out.customer = pick(order.customer, warehouseCustomer, logisticsName)
  if (Array.isArray(order.approvals)) out.approvals = records(order.approvals).map((a) => pick(a, warehouseApproval))
  return out
}

function withoutCreditFields(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutCreditFields)
  if (!isRecord(value)) return value
  return Object.fromEntries(Object.entries(value).flatMap(([k, v]) => (/credit/i.test(k) ? [] : [[k, withoutCreditFields(v)]])))
}

const without = (from: Json, name: string): Json => Object.fromEntries(Object.entries(from).filter(([k]) => k !== name))

/** A timeline entry without what the credit check wrote in it. */
function entryWithoutCredit(entry: Json): Json {
  if (entry.kind === creditCheckedEventKind) return without(entry, 'detail')
  // Only the credit check approves automatically, and its comment is the reason with the sums.
  if (entry.kind === 'approval' && isRecord(entry.detail) && entry.detail.automatic === true) return { ...entry, detail: without(entry.detail, 'comment') }
  return entry
}

function withoutCredit(order: Json): Json {
  const out = withoutCreditFields(order) as Json
  if (Array.isArray(out.timeline)) out.timeline = out.timeline.map((e: unknown) => (isRecord(e) ? entryWithoutCredit(e) : e))
  return out
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
  switch (principal?.role) {
    case 'admin':
    case 'ops':
      return order
    case 'approver':
      if (principal.level === 'finance') return order
      if (principal.level === 'sales_manager') return withoutCredit(order)
      // warehouse, and any level this code does not know: the narrowest view
      return forWarehouse(order)
    default:
      // viewer, integration, and a role this code does not know
      return withoutCredit(order)
  }
}
