/**
 * The order's life as a pure state machine (see DESIGN.md). No I/O: callers record transitions.
 */
export const orderStates = [
  'received',
  'pending_approval',
  'approved',
  'rejected',
  'on_hold',
  'reserved',
  'pending_shipment',
  'shipped',
  'delivered',
  'completed',
  'cancelled',
] as const
export type OrderState = (typeof orderStates)[number]

const transitions: Record<OrderState, readonly OrderState[]> = {
  received: ['pending_approval', 'approved', 'rejected', 'cancelled'],
  pending_approval: ['approved', 'rejected', 'cancelled'],
  // rejected: the stock policy rejects orders it cannot reserve.
  approved: ['reserved', 'on_hold', 'pending_shipment', 'rejected', 'cancelled'],
  on_hold: ['approved', 'reserved', 'rejected', 'cancelled'],
  // Without an inventory connection, the ERP order is created straight from `approved`.
  reserved: ['pending_shipment', 'on_hold', 'cancelled'],
  pending_shipment: ['shipped', 'cancelled'],
  shipped: ['delivered'],
  delivered: ['completed'],
  rejected: [],
  completed: [],
  cancelled: [],
}

/**
 * States in which the order's stock should be (or stay) reserved: the stock step reserves only in
 * these, and a hold or a backorder is re-checked (src/queue/sweeper.ts) or tried again when stock
 * arrives only in these.
 */
export const reservingStates: readonly OrderState[] = ['approved', 'on_hold', 'reserved', 'pending_shipment']

export function canTransition(from: OrderState, to: OrderState): boolean {
  return transitions[from].includes(to)
}

export class InvalidTransition extends Error {
  constructor(from: OrderState, to: OrderState) {
    super(`an order cannot go from ${from} to ${to}`)
    this.name = 'InvalidTransition'
  }
}

export function assertTransition(from: OrderState, to: OrderState): void {
  if (!canTransition(from, to)) throw new InvalidTransition(from, to)
}
