import { describe, expect, it } from 'vitest'
import { assertTransition, canTransition, orderStates } from '../../src/orders/order-state.ts'

describe('the order state machine', () => {
  it('follows the main path of the order\'s life', () => {
    const path = ['received', 'pending_approval', 'approved', 'reserved', 'pending_shipment', 'shipped', 'delivered', 'completed'] as const
    for (let i = 1; i < path.length; i++) expect(canTransition(path[i - 1]!, path[i]!)).toBe(true)
  })

  it('allows cancellation only before shipment', () => {
    for (const state of ['received', 'pending_approval', 'approved', 'on_hold', 'reserved', 'pending_shipment'] as const) expect(canTransition(state, 'cancelled')).toBe(true)
    for (const state of ['shipped', 'delivered', 'completed', 'rejected', 'cancelled'] as const) expect(canTransition(state, 'cancelled')).toBe(false)
  })

  it('has no way out of a final state', () => {
    for (const final of ['completed', 'cancelled', 'rejected'] as const) for (const to of orderStates) expect(canTransition(final, to)).toBe(false)
  })

  it('explains a refused transition', () => {
    expect(() => assertTransition('shipped', 'approved')).toThrow('an order cannot go from shipped to approved')
  })
})
