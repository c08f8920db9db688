/**
 * What reconciliation reads from the demo CRM: the status each order shows (what we last wrote
 * back, or what a person changed since), in our words. Reads only; the client knows the URLs.
 */
import type { CrmWritebackCapability, RemoteCrmOrder } from '../../src/connector-kit/index.ts'
import { demoCrmClient, fromCrmStatus, type DemoCrmSecrets, type DemoCrmSettings } from './client.ts'

type Reads = Required<Pick<CrmWritebackCapability<DemoCrmSettings, DemoCrmSecrets>, 'fetchOrder' | 'fetchOrders'>>

async function fetchOrders(ctx: Parameters<Reads['fetchOrders']>[0], crmOrderIds: readonly string[]): Promise<RemoteCrmOrder[]> {
  const found = await demoCrmClient(ctx).getStatuses(crmOrderIds)
  return found.map(({ orderId, status }) => ({ externalId: orderId, status: fromCrmStatus(status) }))
}

export const demoCrmStatusReads: Reads = {
  // The demo CRM keeps no order list of its own for pushed orders: an order without a status is one it does not know.
  fetchOrder: async (ctx, crmOrderId) => (await fetchOrders(ctx, [crmOrderId]))[0],
  fetchOrders,
}
