/**
 * Events from the WMS and the ERP that do not fit the order's state, through the real HTTP API:
 * each is refused, not applied. The order keeps its state and payment track, and the refusal with
 * its reason is in the order's timeline, in the change feed (`event.refused`) and in the event's own
 * status. Money follows one rule: an invoice or a payment is taken from approval to completion,
 * never for a cancelled order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ErpInvoiceIssued } from '../../connectors/generic-rest/events.ts'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'
import { deliverSigned, reasonsOf, refusalOf } from './fulfilment-support.ts'
import { linkOf, orderOf, waitForOrder } from '../support/order-probes.ts'

describe('events that do not fit the order’s state', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('postgres')
  })
  afterAll(() => stack?.close())

  const orderFor = (n: number, externalId: string, quantity = 1) => ({ ...sampleOrder(n, externalId), items: [{ product_code: 'SKU-100', qty: quantity, price: '30.00' }] })
  const everywhere = (reason: string) => ({ feed: reason, event: [reason], timeline: reason })
  const now = () => new Date().toISOString()

  it('refuses a shipment while the ERP order is missing, and the order stays reserved', async () => {
    stack.erp.faults.failNext(1, 422)
    await stack.crm.send('order.created', orderFor(1, 'OOS-EARLY'))
    const reserved = await waitForOrder(stack, 'OOS-EARLY', 'reserved, its ERP order refused', (o) => o.state === 'reserved' && linkOf(o, 'salesOrders.upsert')?.status === 'needs_attention')

    // The warehouse ships what it reserved before the ERP took the order.
    stack.wms.ship(linkOf(reserved, 'inventory.reserve')!.externalId!)
    const refusal = await refusalOf(stack, reserved.id, 'order.shipped')
    expect(reasonsOf(refusal)).toEqual(everywhere('an order in state reserved cannot be shipped'))
    expect(refusal.event).toMatchObject({ status: 'processed', type: 'order.shipped', orderId: reserved.id })
    expect(refusal.change.connectionId).toBe('demo-wms')
    expect((await orderOf(stack, 'OOS-EARLY'))!.state).toBe('reserved')
  })

  it('refuses a delivery before the shipment, and takes both when they come in order', async () => {
    await stack.crm.send('order.created', orderFor(2, 'OOS-DELIVERED'))
    const waiting = await waitForOrder(stack, 'OOS-DELIVERED', 'pending shipment', (o) => o.state === 'pending_shipment')
    const reservation = linkOf(waiting, 'inventory.reserve')!.externalId!

    expect(await deliverSigned(stack, 'demo-wms', { type: 'shipment.delivered', sequence: 1, occurred_at: now(), reservation_id: reservation, delivered_at: now() })).toBe(202)
    const refusal = await refusalOf(stack, waiting.id, 'order.delivered')
    expect(reasonsOf(refusal)).toEqual(everywhere('an order in state pending_shipment cannot be delivered'))
    expect((await orderOf(stack, 'OOS-DELIVERED'))!.state).toBe('pending_shipment')

    stack.wms.ship(reservation)
    await waitForOrder(stack, 'OOS-DELIVERED', 'shipped', (o) => o.state === 'shipped')
    stack.wms.deliver(reservation)
    await waitForOrder(stack, 'OOS-DELIVERED', 'delivered', (o) => o.state === 'delivered')
  })

  it('refuses an invoice the ERP sends again, and the payment track stays as it was', async () => {
    await stack.crm.send('order.created', orderFor(3, 'OOS-INVOICE'))
    const waiting = await waitForOrder(stack, 'OOS-INVOICE', 'pending shipment', (o) => o.state === 'pending_shipment')
    const invoice = stack.erp.invoice(linkOf(waiting, 'salesOrders.upsert')!.externalId!)
    const invoiced = await waitForOrder(stack, 'OOS-INVOICE', 'invoiced', (o) => o.paymentState === 'invoiced')

    // The same invoice under a new webhook id: a resend, not a duplicate delivery.
    const issued = stack.erp.deliveries().map((d) => d.body).find((b): b is ErpInvoiceIssued => b.event === 'invoice.issued' && b.invoice.id === invoice.id)!
    expect(await deliverSigned(stack, 'demo-erp', issued)).toBe(202)
    const refusal = await refusalOf(stack, waiting.id, 'order.invoiced')
    expect(reasonsOf(refusal)).toEqual(everywhere(`invoice ${invoice.number} is recorded already`))
    expect(await orderOf(stack, 'OOS-INVOICE')).toMatchObject({ state: 'pending_shipment', paymentState: 'invoiced', amountPaid: invoiced.amountPaid })
  })

  it('adds a second invoice under another number instead of refusing it: an ERP may invoice an order in parts', async () => {
    await stack.crm.send('order.created', orderFor(4, 'OOS-PARTS', 2))
    const waiting = await waitForOrder(stack, 'OOS-PARTS', 'pending shipment', (o) => o.state === 'pending_shipment')
    const salesOrderId = linkOf(waiting, 'salesOrders.upsert')!.externalId!
    const part = (number: string) => ({ event: 'invoice.issued', occurredAt: now(), invoice: { id: `ID-${number}`, number, salesOrderId, amount: '30.00', currency: 'CNY' } })

    expect(await deliverSigned(stack, 'demo-erp', part('FP-PART-1'))).toBe(202)
    await waitForOrder(stack, 'OOS-PARTS', 'invoiced in part', (o) => o.paymentState === 'invoiced')
    expect(await deliverSigned(stack, 'demo-erp', part('FP-PART-2'))).toBe(202)
    const { body } = await stack.waitFor(async () => {
      const answer = await stack.api(`/api/v1/orders/${waiting.id}/timeline`)
      return answer.body.timeline.some((t: { kind: string; detail: { invoiceNumber?: string } | null }) => t.kind === 'payment' && t.detail?.invoiceNumber === 'FP-PART-2') ? answer : undefined
    }, 'the second invoice recorded')
    expect(body.timeline.filter((t: { kind: string }) => t.kind === 'refused')).toEqual([])
  })

  it('takes a prepayment before shipment', async () => {
    await stack.crm.send('order.created', orderFor(5, 'OOS-PREPAID'))
    const waiting = await waitForOrder(stack, 'OOS-PREPAID', 'pending shipment', (o) => o.state === 'pending_shipment')
    const invoice = stack.erp.invoice(linkOf(waiting, 'salesOrders.upsert')!.externalId!)
    await waitForOrder(stack, 'OOS-PREPAID', 'invoiced', (o) => o.paymentState === 'invoiced')
    stack.erp.pay(invoice.id, invoice.amount)
    const paid = await waitForOrder(stack, 'OOS-PREPAID', 'paid', (o) => o.paymentState === 'paid')
    expect(paid).toMatchObject({ state: 'pending_shipment', amountPaid: invoice.amount })
  })

  it('refuses a shipment and a payment for a cancelled order, and records neither', async () => {
    const document = orderFor(6, 'OOS-CANCELLED', 2)
    await stack.crm.send('order.created', document)
    const waiting = await waitForOrder(stack, 'OOS-CANCELLED', 'pending shipment', (o) => o.state === 'pending_shipment')
    const reservation = linkOf(waiting, 'inventory.reserve')!.externalId!
    // Invoiced for prepayment, then cancelled in the CRM: the reservation is released, the ERP order cancelled.
    const invoice = stack.erp.invoice(linkOf(waiting, 'salesOrders.upsert')!.externalId!)
    const invoiced = await waitForOrder(stack, 'OOS-CANCELLED', 'invoiced', (o) => o.paymentState === 'invoiced')
    await stack.crm.send('order.cancelled', { ...document, version: 2 })
    await waitForOrder(stack, 'OOS-CANCELLED', 'cancelled', (o) => o.state === 'cancelled')

    // The warehouse ships it all the same, and the customer pays the invoice.
    expect(await deliverSigned(stack, 'demo-wms', { type: 'shipment.shipped', sequence: 1, occurred_at: now(), reservation_id: reservation, carrier: 'SF Express', tracking_number: 'SF-LATE-1' })).toBe(202)
    stack.erp.pay(invoice.id, invoice.amount)

    const shipped = await refusalOf(stack, waiting.id, 'order.shipped')
    expect(reasonsOf(shipped)).toEqual(everywhere('an order in state cancelled cannot be shipped'))
    const payment = await refusalOf(stack, waiting.id, 'order.payment_received')
    expect(reasonsOf(payment)).toEqual(everywhere('an order in state cancelled cannot take a payment'))
    expect(payment.change.connectionId).toBe('demo-erp')
    expect(await orderOf(stack, 'OOS-CANCELLED')).toMatchObject({ state: 'cancelled', paymentState: 'invoiced', amountPaid: invoiced.amountPaid })
  })
})
