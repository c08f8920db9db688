/**
 * Orders short of stock through the HTTP API against the demo simulators, on PostgreSQL: under
 * `reject` the order ends rejected, holding no stock, with a final reservation that no sweep
 * reopens; under `hold` the periodic re-check reserves stock that arrived without a stock event,
 * and a stock event wakes every reservation short of its SKUs, whatever state the order is in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { createQueueSet, type QueueSet } from '../../src/queue/queues.ts'
import { sweep } from '../../src/queue/sweeper.ts'
import { orderOf, waitForOrder, type Order } from '../support/order-probes.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'
import { redisUrl } from '../support/test-redis.ts'

const reservationOf = (o: Order) => o.links.find((l) => l.operation === 'inventory.reserve')

/** The stack's own database and queues, to run a sweep now instead of waiting for its schedule. */
async function sweeperOf(stack: TestStack) {
  const db = await stack.openDatabase()
  const queues: QueueSet = createQueueSet({ redisUrl, prefix: stack.env.ORDERBRIDGE_QUEUE_PREFIX!, syncConnections: ['demo-crm', 'demo-wms', 'demo-erp'] })
  return {
    db,
    /** A sweep that re-checks every order held for stock, however recently it was tried. */
    sweep: () => sweep(db, queues, { graceSeconds: 0, holdRecheckSeconds: 0 }),
    async close() {
      await queues.close()
      await db.close()
    },
  }
}

describe('an inventory connection whose stock policy rejects', () => {
  let stack: TestStack
  let sweeper: Awaited<ReturnType<typeof sweeperOf>>
  beforeAll(async () => {
    stack = await startTestStack('postgres', {
      wms: { stock: { 'SKU-100': 1000, 'SKU-SHORT': 1, 'SKU-GROW': 3 } },
      configure: (config) => ({ ...config, connections: config.connections.map((c) => (c.id === 'demo-wms' ? { ...c, stockPolicy: 'reject' as const } : c)) }),
    })
    sweeper = await sweeperOf(stack)
  })
  afterAll(async () => {
    await sweeper?.close()
    await stack?.close()
  })

  it('rejects an order short of stock, tells the CRM, and closes its reservation for good', async () => {
    await stack.crm.send('order.created', { ...sampleOrder(1, 'REJ-1'), items: [{ product_code: 'SKU-SHORT', qty: 3, price: '10.00' }] })
    const rejected = await waitForOrder(stack, 'REJ-1', 'rejected', (o) => o.state === 'rejected')
    await stack.waitFor(async () => stack.crmSimulator.statuses().find((s) => s.orderId === 'REJ-1' && s.current.status === 'rejected'), 'the CRM to hear the rejection')

    // Nothing was reserved (all or nothing), so the reservation is final: cancelled, not waiting for stock.
    const reservation = reservationOf(rejected)!
    expect(reservation.status).toBe('cancelled')
    expect(stack.wms.reservations().filter((r) => r.reference === rejected.id && r.status === 'active')).toEqual([])
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-SHORT')).toMatchObject({ reserved: 0, available: 1 })
    expect((await stack.api('/api/v1/stats?connection=demo-wms')).body).toMatchObject({ onHold: 0, cancelled: 1, links: { held: 0, pending: 0, cancelled: 1 } })

    // A sweep that re-checks every hold leaves it alone: no new attempt, the link as it was.
    const attempts = async () =>
      (await sweeper.db.query<{ n: number }>(`select count(*)::int as n from sync_attempts where order_id = $1 and operation = 'inventory.reserve'`, [rejected.id]))[0]!.n
    const before = await attempts()
    await sweeper.sweep()
    await new Promise((r) => setTimeout(r, 1_000))
    expect(await attempts()).toBe(before)
    expect(reservationOf((await orderOf(stack, 'REJ-1'))!)).toEqual(reservation)
  })

  it('does not reopen a reservation left held for an order that no longer waits for stock', async () => {
    // A rejected order's reservation as the step used to leave it: held, as if it waited for stock.
    const order = (await orderOf(stack, 'REJ-1'))!
    await sweeper.db.query(`update links set status = 'held', updated_at = now() - interval '1 hour' where order_id = $1 and operation = 'inventory.reserve'`, [order.id])
    await sweeper.sweep()
    const [link] = await sweeper.db.query<{ status: string }>(`select status from links where order_id = $1 and operation = 'inventory.reserve'`, [order.id])
    expect(link!.status).toBe('held')
  })

  it('gives back what an order held when it grows beyond the stock and is rejected', async () => {
    let rejectedId: string | undefined
    // The ERP is down, so the reserved order waits there for its sales order when it grows.
    stack.erp.faults.failNext(1_000, 503)
    try {
      const document = { ...sampleOrder(3, 'REJ-GROW'), items: [{ product_code: 'SKU-GROW', qty: 2, price: '10.00' }] }
      await stack.crm.send('order.created', document)
      const reserved = await waitForOrder(stack, 'REJ-GROW', 'reserved', (o) => o.state === 'reserved')
      const reservationId = reservationOf(reserved)!.externalId!
      await stack.crm.send('order.updated', { ...document, version: 2, items: [{ product_code: 'SKU-GROW', qty: 5, price: '10.00' }] })
      await waitForOrder(stack, 'REJ-GROW', 'on hold for the growth', (o) => o.state === 'on_hold')
      expect(stack.wms.reservations().find((r) => r.id === reservationId)).toMatchObject({ status: 'active', lines: [expect.objectContaining({ sku: 'SKU-GROW', reserved: 2 })] })

      await sweeper.sweep()
      const rejected = await waitForOrder(stack, 'REJ-GROW', 'rejected', (o) => o.state === 'rejected')
      rejectedId = rejected.id
      expect(reservationOf(rejected)).toMatchObject({ status: 'cancelled', externalId: reservationId })
      expect(stack.wms.reservations().find((r) => r.id === reservationId)?.status).toBe('released')
      expect(stack.wms.stock().find((s) => s.sku === 'SKU-GROW')).toMatchObject({ reserved: 0, available: 3 })
    } finally {
      stack.erp.faults.reset()
    }
    // The sales order it was waiting for is not made for a rejected order: its ERP link ends cancelled.
    await waitForOrder(stack, 'REJ-GROW', 'its ERP step closed', (o) => o.links.find((l) => l.operation === 'salesOrders.upsert')?.status === 'cancelled')
    expect(stack.erp.salesOrders().filter((s) => s.reference === (rejectedId ?? ''))).toEqual([])
  })
})

describe('an order on hold for stock', () => {
  let stack: TestStack
  let sweeper: Awaited<ReturnType<typeof sweeperOf>>
  beforeAll(async () => {
    stack = await startTestStack('postgres', { wms: { stock: { 'SKU-100': 1000, 'SKU-LATE': 0, 'SKU-RISE': 3 } } })
    sweeper = await sweeperOf(stack)
  })
  afterAll(async () => {
    await sweeper?.close()
    await stack?.close()
  })

  it('is reserved by the periodic re-check when stock arrives without a stock event', async () => {
    await stack.crm.send('order.created', { ...sampleOrder(2, 'HOLD-1'), items: [{ product_code: 'SKU-LATE', qty: 2, price: '10.00' }] })
    const held = await waitForOrder(stack, 'HOLD-1', 'on hold', (o) => o.state === 'on_hold')
    expect(held.hold?.missing).toEqual([expect.objectContaining({ sku: 'SKU-LATE', requested: '2', available: '0' })])
    expect(reservationOf(held)?.status).toBe('held')

    // The goods receipt's event is lost: the WMS has no webhook target while the stock arrives.
    await stack.wms.flushWebhooks()
    const sent = stack.wms.deliveries().length
    stack.wms.setWebhookTarget(undefined)
    stack.wms.receive('SKU-LATE', 5)
    stack.wms.setWebhookTarget({ url: `${stack.url}/webhooks/demo-wms`, secret: testCredentials.demoWebhookSecret })
    expect(stack.wms.deliveries()).toHaveLength(sent)
    await new Promise((r) => setTimeout(r, 1_000))
    expect((await orderOf(stack, 'HOLD-1'))!.state).toBe('on_hold')

    await sweeper.sweep()
    const reserved = await waitForOrder(stack, 'HOLD-1', 'reserved after the re-check', (o) => o.state === 'pending_shipment')
    expect(reservationOf(reserved)?.status).toBe('synced')
    expect(stack.wms.reservations().find((r) => r.id === reservationOf(reserved)!.externalId)?.lines).toEqual([expect.objectContaining({ sku: 'SKU-LATE', quantity: 2, reserved: 2 })])
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-LATE')).toMatchObject({ onHand: 5, reserved: 2, available: 3 })
  })

  it('is reserved when the stock event comes, also after its sales order was made', async () => {
    const document = { ...sampleOrder(4, 'RISE-1'), items: [{ product_code: 'SKU-RISE', qty: 2, price: '10.00' }] }
    await stack.crm.send('order.created', document)
    await waitForOrder(stack, 'RISE-1', 'its sales order made', (o) => o.state === 'pending_shipment')

    // It grows past the stock after the ERP made its sales order: held short, still pending shipment.
    await stack.crm.send('order.updated', { ...document, version: 2, items: [{ product_code: 'SKU-RISE', qty: 5, price: '10.00' }] })
    const short = await waitForOrder(stack, 'RISE-1', 'held short', (o) => reservationOf(o)?.status === 'held')
    expect(short.state).toBe('pending_shipment')
    expect(short.hold?.missing).toEqual([expect.objectContaining({ sku: 'SKU-RISE', requested: '5', available: '3' })])

    // The goods receipt's stock event wakes it at once: the periodic re-check (a minute) is not needed.
    stack.wms.receive('SKU-RISE', 5)
    const reserved = await waitForOrder(stack, 'RISE-1', 'reserved in full', (o) => reservationOf(o)?.status === 'synced' && !o.hold, 15_000)
    expect(stack.wms.reservations().find((r) => r.id === reservationOf(reserved)!.externalId)?.lines).toEqual([expect.objectContaining({ sku: 'SKU-RISE', quantity: 5, reserved: 5 })])
    const { body } = await stack.api(`/api/v1/orders/${reserved.id}/timeline`)
    expect(body.timeline).toContainEqual(expect.objectContaining({ kind: 'stock_arrived', detail: { skus: ['SKU-RISE'] } }))
  })
})
