/**
 * Reading an order of the demo CRM through a test stack's API, and waiting for it to get somewhere.
 */
import type { TestStack } from './test-orderbridge.ts'

/** An order as `GET /api/v1/orders` answers it, as far as tests read it. */
export type Order = {
  id: string
  state: string
  paymentState: string
  amountPaid: string
  total: string
  hold?: { missing?: { sku: string; requested: string; available: string }[]; backordered?: { sku: string; requested: string; reserved: string }[] } | null
  links: { operation: string; externalId: string | null; status: string; updatedAt: string }[]
}

export async function orderOf(stack: TestStack, externalId: string): Promise<Order | undefined> {
  const { body } = await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)
  return body.orders[0]
}

export const waitForOrder = (stack: TestStack, externalId: string, what: string, test: (o: Order) => boolean, timeoutMs?: number) =>
  stack.waitFor(
    async () => {
      const o = await orderOf(stack, externalId)
      return o && test(o) ? o : undefined
    },
    `${externalId} ${what}`,
    timeoutMs,
  )

export const linkOf = (o: Order, operation: string) => o.links.find((l) => l.operation === operation)
