/**
 * The webhook events the generic REST ERP sends about invoices and payments, in its own format
 * (`{ event, occurredAt, invoice | payment }`, amounts as decimal strings), and how they become
 * orderbridge's fulfilment events. Pure: no I/O. The demo ERP simulator sends exactly these.
 */
import { z } from 'zod'
import type { InboundEvent } from '../../src/connector-kit/index.ts'

const money = z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal string such as "199.00"')
const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY')
const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date such as 2026-12-31')

export const erpInvoiceIssuedSchema = z.object({
  event: z.literal('invoice.issued'),
  occurredAt: z.string().min(1),
  invoice: z.object({
    id: z.string().min(1),
    number: z.string().min(1),
    salesOrderId: z.string().min(1),
    reference: z.string().optional(),
    amount: money,
    currency,
    issueDate: isoDate.optional(),
    dueDate: isoDate.optional(),
  }),
})

export const erpPaymentReceivedSchema = z.object({
  event: z.literal('payment.received'),
  occurredAt: z.string().min(1),
  payment: z.object({
    id: z.string().min(1),
    invoiceId: z.string().min(1),
    invoiceNumber: z.string().optional(),
    salesOrderId: z.string().min(1),
    reference: z.string().optional(),
    amount: money,
    currency,
    receivedAt: z.string().optional(),
  }),
  /** The invoice after this payment. */
  invoice: z.object({ amount: money, paid: money, open: money, status: z.enum(['open', 'partially_paid', 'paid']) }).optional(),
})

export const erpWebhookBodySchema = z.discriminatedUnion('event', [erpInvoiceIssuedSchema, erpPaymentReceivedSchema])
export type ErpWebhookBody = z.infer<typeof erpWebhookBodySchema>
export type ErpInvoiceIssued = z.infer<typeof erpInvoiceIssuedSchema>
export type ErpPaymentReceived = z.infer<typeof erpPaymentReceivedSchema>

/**
 * One ERP event as an orderbridge event, named by the ERP's sales order id (what our link holds).
 * Each invoice and payment is a fact of its own, so there is no version (0); a redelivery is caught
 * by its webhook-id.
 */
export function erpEventToInbound(body: ErpWebhookBody): InboundEvent {
  switch (body.event) {
    case 'invoice.issued':
      return {
        type: 'order.invoiced',
        externalId: body.invoice.salesOrderId,
        sourceVersion: 0,
        document: {
          invoiceNumber: body.invoice.number,
          amount: body.invoice.amount,
          currency: body.invoice.currency,
          ...(body.invoice.dueDate !== undefined ? { dueDate: body.invoice.dueDate } : {}),
        },
      }
    case 'payment.received':
      return {
        type: 'order.payment_received',
        externalId: body.payment.salesOrderId,
        sourceVersion: 0,
        document: { paymentId: body.payment.id, amount: body.payment.amount, currency: body.payment.currency },
      }
  }
}
