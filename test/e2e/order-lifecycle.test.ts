/**
 * The order's whole life through the HTTP API against the demo simulators: stock reserved, the ERP
 * order created, shipped, delivered, invoiced and paid in parts, each step written back to the CRM;
 * the race for the last units; a hold released by arriving stock; approvals with the credit check;
 * a reminder sent once, and not for an order decided in time.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { verifyStandardWebhook } from '../../src/connector-kit/index.ts'
import { linkOf, orderOf, waitForOrder, type Order } from '../support/order-probes.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'

describe('an order through its whole life', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('postgres', { wms: { stock: { 'SKU-100': 1000, 'SKU-101': 1000, 'SKU-102': 1000, 'SKU-LAST': 5 } } })
  })
  afterAll(() => stack?.close())

  it('reserves, creates the ERP order, ships, delivers, is invoiced and paid in parts, and the CRM hears each step', async () => {
    const document = { ...sampleOrder(1, 'LC-1'), items: [{ product_code: 'SKU-100', qty: 2, price: '100.00' }, { product_code: 'SKU-101', qty: 1, price: '50.50' }] }
    expect((await stack.crm.send('order.created', document)).status).toBe(202)
    const created = await waitForOrder(stack, 'LC-1', 'pending_shipment', (o) => o.state === 'pending_shipment')
    const reservation = linkOf(created, 'inventory.reserve')!.externalId!
    const salesOrder = linkOf(created, 'salesOrders.upsert')!.externalId!
    expect(stack.wms.reservations().find((r) => r.id === reservation)?.lines).toEqual([
      expect.objectContaining({ sku: 'SKU-100', quantity: 2 }),
      expect.objectContaining({ sku: 'SKU-101', quantity: 1 }),
    ])
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-100')).toMatchObject({ reserved: 2, available: 998 })

    // Each write-back carries the status as it is when it runs, so steps quicker than a write-back
    // may reach the CRM together; a state the order rests in while another system works reaches it.
    const crmHeard = (state: string) =>
      stack.waitFor(async () => stack.crmSimulator.statuses().find((x) => x.orderId === 'LC-1')?.history.some((h) => h.status === state) || undefined, `the CRM to hear ${state}`)
    await crmHeard('pending_shipment')

    stack.wms.ship(reservation, { carrier: 'SF Express', trackingNumber: 'SF1234567890' })
    await waitForOrder(stack, 'LC-1', 'shipped', (o) => o.state === 'shipped')
    await crmHeard('shipped')
    stack.wms.deliver(reservation)
    await waitForOrder(stack, 'LC-1', 'delivered', (o) => o.state === 'delivered')
    await crmHeard('delivered')

    const invoice = stack.erp.invoice(salesOrder)
    await waitForOrder(stack, 'LC-1', 'invoiced', (o) => o.paymentState === 'invoiced')
    stack.erp.pay(invoice.id, '100.00')
    const partly = await waitForOrder(stack, 'LC-1', 'partially paid', (o) => o.paymentState === 'partially_paid')
    expect(partly.amountPaid).toBe('100.00')
    stack.erp.pay(invoice.id, '150.50')
    const done = await waitForOrder(stack, 'LC-1', 'completed', (o) => o.state === 'completed')
    expect(done).toMatchObject({ paymentState: 'paid', amountPaid: '250.50', total: '250.50' })

    // The CRM ends with the whole picture.
    const crm = await stack.waitFor(async () => {
      const s = stack.crmSimulator.statuses().find((x) => x.orderId === 'LC-1')
      return s?.current.status === 'completed' ? s : undefined
    }, 'the CRM to hear completed')
    expect(crm.current).toMatchObject({ erp_order_no: salesOrder, invoice_no: expect.any(String), tracking_no: 'SF1234567890', paid_amount: '250.50', payment_status: 'paid' })

    const { body } = await stack.api(`/api/v1/orders/${done.id}/timeline`)
    const transitions = body.timeline.filter((t: { kind: string }) => t.kind === 'transition').map((t: { toState: string }) => t.toState)
    expect(transitions).toEqual(['approved', 'reserved', 'pending_shipment', 'shipped', 'delivered', 'completed'])
    const calls = body.timeline.filter((t: { kind: string; detail: { operation?: string } | null }) => t.kind === 'external_call' && t.detail?.operation)
    expect(calls.map((c: { detail: { operation: string } }) => c.detail.operation)).toEqual(expect.arrayContaining(['inventory.reserve', 'salesOrders.upsert', 'crm.status']))
  })

  it('lets only one of two orders racing for the last units reserve them; the other waits on hold until stock arrives', async () => {
    const racer = (id: string) => ({ ...sampleOrder(2, id), items: [{ product_code: 'SKU-LAST', qty: 5, price: '10.00' }] })
    // Every WMS answer comes late, as over a real network, so both reservations are in flight at once.
    stack.wms.faults.delayMs(300)
    await Promise.all([stack.crm.send('order.created', racer('RACE-A')), stack.crm.send('order.created', racer('RACE-B'))])
    const settled = await stack.waitFor(async () => {
      const [a, b] = [await orderOf(stack, 'RACE-A'), await orderOf(stack, 'RACE-B')]
      const final = (o?: Order) => o && (o.state === 'pending_shipment' || o.state === 'on_hold')
      return final(a) && final(b) ? [a!, b!] : undefined
    }, 'both racers to settle')
    stack.wms.faults.reset()
    expect(settled.map((o) => o.state).sort()).toEqual(['on_hold', 'pending_shipment'])
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-LAST')).toMatchObject({ onHand: 5, reserved: 5, available: 0 })
    const held = settled.find((o) => o.state === 'on_hold')!
    expect(held.hold?.missing).toEqual([expect.objectContaining({ sku: 'SKU-LAST', requested: '5', available: '0' })])

    // Stock arrives: the WMS says so, and the held order reserves and goes on.
    stack.wms.receive('SKU-LAST', 5)
    const externalId = held.id === (await orderOf(stack, 'RACE-A'))!.id ? 'RACE-A' : 'RACE-B'
    await waitForOrder(stack, externalId, 'reserved after the receipt', (o) => o.state === 'pending_shipment')
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-LAST')).toMatchObject({ onHand: 10, reserved: 10, available: 0 })
    // Sales see the stock in the CRM: the WMS's levels are pushed on, debounced.
    await stack.waitFor(async () => stack.crmSimulator.stock().find((l) => l.product_code === 'SKU-LAST' && l.available === '0'), 'the CRM to show SKU-LAST at 0')
  })

  it('releases the reservation and cancels the ERP order when the CRM cancels', async () => {
    const document = { ...sampleOrder(3, 'LC-CANCEL'), items: [{ product_code: 'SKU-102', qty: 4, price: '20.00' }] }
    await stack.crm.send('order.created', document)
    const created = await waitForOrder(stack, 'LC-CANCEL', 'pending_shipment', (o) => o.state === 'pending_shipment')
    await stack.crm.send('order.cancelled', { ...document, version: 2 })
    const cancelled = await waitForOrder(stack, 'LC-CANCEL', 'released and cancelled', (o) => o.state === 'cancelled' && o.links.filter((l) => l.status === 'cancelled').length === 2)
    expect(stack.wms.reservations().find((r) => r.id === linkOf(created, 'inventory.reserve')!.externalId)?.status).toBe('released')
    expect(stack.erp.salesOrders().find((s) => s.id === linkOf(cancelled, 'salesOrders.upsert')!.externalId)?.status).toBe('cancelled')
  })

  it('refuses a change after shipment and tells the CRM', async () => {
    const document = { ...sampleOrder(4, 'LC-LATE'), items: [{ product_code: 'SKU-102', qty: 1, price: '20.00' }] }
    await stack.crm.send('order.created', document)
    const created = await waitForOrder(stack, 'LC-LATE', 'pending_shipment', (o) => o.state === 'pending_shipment')
    stack.wms.ship(linkOf(created, 'inventory.reserve')!.externalId!)
    await waitForOrder(stack, 'LC-LATE', 'shipped', (o) => o.state === 'shipped')
    await stack.crm.send('order.updated', { ...document, version: 2, items: [{ product_code: 'SKU-102', qty: 3, price: '20.00' }] })
    const { body } = await stack.waitFor(async () => {
      const answer = await stack.api(`/api/v1/orders/${created.id}/timeline`)
      return answer.body.timeline.some((t: { kind: string }) => t.kind === 'refused') ? answer : undefined
    }, 'the refusal in the timeline')
    expect(body.timeline.find((t: { kind: string }) => t.kind === 'refused').detail.reason).toMatch(/shipped cannot be changed/)
    expect((await orderOf(stack, 'LC-LATE'))!.state).toBe('shipped')
  })
})

describe('approvals', () => {
  let stack: TestStack
  const rules = {
    rules: [
      { id: 'small', when: { amount: { CNY: { max: '9999.99' } } }, require: [] },
      { id: 'medium', when: { amount: { CNY: { min: '10000', max: '100000' } } }, require: ['sales_manager'] },
      { id: 'large', when: { amount: { CNY: { min: '100000.01' } } }, require: ['sales_manager', 'finance'] },
    ],
  }
  const keys: Record<string, string> = {}
  beforeAll(async () => {
    stack = await startTestStack('postgres', {
      configure: (config) => ({ ...config, approval: rules as never }),
      erp: { credit: { default: { limit: '500000.00', currency: 'CNY' }, customers: { 'ACC-TIGHT': { limit: '50000.00', currency: 'CNY' } } } as never },
    })
    for (const level of ['sales_manager', 'finance', 'warehouse']) {
      const { status, body } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: `${level} approver`, role: 'approver', level } })
      expect(status).toBe(201)
      keys[level] = body.key
    }
  })
  afterAll(() => stack?.close())

  const big = (id: string, customer: string, price: string) => ({ ...sampleOrder(5, id), account: { id: customer, name: customer }, items: [{ product_code: 'SKU-100', qty: 1, price }] })

  it('waits for the sales manager, then the credit check approves finance on its own, recorded as such', async () => {
    await stack.crm.send('order.created', big('AP-1', 'ACC-7', '150000.00'))
    const waiting = await waitForOrder(stack, 'AP-1', 'pending approval', (o) => o.state === 'pending_approval')
    // Only the current level sees it.
    expect((await stack.api('/api/v1/approvals?pending=true', { key: keys.finance })).body.approvals.map((a: { orderId: string }) => a.orderId)).not.toContain(waiting.id)
    const forManager = (await stack.api('/api/v1/approvals?pending=true', { key: keys.sales_manager })).body.approvals
    expect(forManager).toEqual([expect.objectContaining({ orderId: waiting.id, level: 'sales_manager', rule: 'large', total: '150000.00' })])
    expect((await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', key: keys.finance, body: { decision: 'approve' } })).status).toBe(403)

    expect((await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', key: keys.sales_manager, body: { decision: 'approve', comment: 'good customer' } })).status).toBe(200)
    await waitForOrder(stack, 'AP-1', 'approved and on its way', (o) => o.state === 'pending_shipment')
    const { body } = await stack.api(`/api/v1/orders/${waiting.id}/timeline`)
    const finance = body.timeline.find((t: { kind: string; detail: { level?: string } | null }) => t.kind === 'approval' && t.detail?.level === 'finance')
    expect(finance.detail).toMatchObject({ decision: 'approve', automatic: true })
    expect(finance.cause).toMatch(/credit check/)
  })

  it('leaves finance to a person, with the figures, when the order would go over the credit limit; a rejection ends the order and reaches the CRM', async () => {
    await stack.crm.send('order.created', big('AP-2', 'ACC-TIGHT', '120000.00'))
    const waiting = await waitForOrder(stack, 'AP-2', 'pending approval', (o) => o.state === 'pending_approval')
    await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', key: keys.sales_manager, body: { decision: 'approve' } })
    const forFinance = await stack.waitFor(async () => {
      const list = (await stack.api('/api/v1/approvals?pending=true', { key: keys.finance })).body.approvals
      const item = list.find((a: { orderId: string; credit: unknown }) => a.orderId === waiting.id && a.credit)
      return item
    }, 'the order at finance with the credit figures')
    expect(forFinance.credit).toMatchObject({ limit: '50000.00', autoApprove: false })
    expect((await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', key: keys.finance, body: { decision: 'reject', comment: 'over the credit limit' } })).status).toBe(200)
    await waitForOrder(stack, 'AP-2', 'rejected', (o) => o.state === 'rejected')
    const crm = await stack.waitFor(async () => stack.crmSimulator.statuses().find((s) => s.orderId === 'AP-2' && s.current.status === 'rejected'), 'the CRM to hear the rejection')
    expect(crm.current.comment).toBe('over the credit limit')
    expect(stack.erp.salesOrders().some((s) => s.reference === waiting.id)).toBe(false)
  })

  it('lets a small order through without approval, and refuses a malformed decision with field paths', async () => {
    await stack.crm.send('order.created', big('AP-3', 'ACC-7', '500.00'))
    const order = await waitForOrder(stack, 'AP-3', 'synced', (o) => o.state === 'pending_shipment')
    const bad = await stack.api(`/api/v1/orders/${order.id}/approval`, { method: 'POST', key: testCredentials.adminKey, body: { decision: 'maybe' } })
    expect(bad.status).toBe(422)
    expect(bad.body.error.details).toEqual([expect.objectContaining({ path: 'decision' })])
    const late = await stack.api(`/api/v1/orders/${order.id}/approval`, { method: 'POST', key: testCredentials.adminKey, body: { decision: 'approve' } })
    expect(late.status).toBe(409)
  })
})

describe('reminders', () => {
  let stack: TestStack
  let receiver: Server
  const received: { webhookId: string; body: { rule?: string; orderId?: string } }[] = []
  const secret = `whsec_${Buffer.from('reminder-test-secret-0123456789').toString('base64')}`

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let raw = ''
      req.on('data', (c) => (raw += c))
      req.on('end', () => {
        const verified = verifyStandardWebhook(secret, req.headers as Record<string, string>, Buffer.from(raw))
        if (verified.ok) received.push({ webhookId: String(req.headers['webhook-id']), body: JSON.parse(raw) })
        res.writeHead(verified.ok ? 204 : 401).end()
      })
    })
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`
    stack = await startTestStack('postgres', {
      configure: (config) => ({
        ...config,
        approval: { rules: [{ id: 'everything', when: {}, require: ['sales_manager'] }] } as never,
        notifications: {
          webhooks: [{ id: 'ops', url, secret }],
          rules: [{ id: 'approval-waiting', trigger: { on: 'waiting', states: ['pending_approval'], after: 1_500 }, webhooks: ['ops'] }],
        } as never,
      }),
    })
  })
  afterAll(async () => {
    await stack?.close()
    receiver?.close()
  })

  it('reminds once about an order left waiting, and not about one decided in time', async () => {
    await stack.crm.send('order.created', { ...sampleOrder(6, 'RM-WAIT'), items: [{ product_code: 'SKU-100', qty: 1, price: '10.00' }] })
    await stack.crm.send('order.created', { ...sampleOrder(7, 'RM-DECIDED'), items: [{ product_code: 'SKU-100', qty: 1, price: '10.00' }] })
    const waiting = await waitForOrder(stack, 'RM-WAIT', 'pending approval', (o) => o.state === 'pending_approval')
    const decided = await waitForOrder(stack, 'RM-DECIDED', 'pending approval', (o) => o.state === 'pending_approval')
    expect((await stack.api(`/api/v1/orders/${decided.id}/approval`, { method: 'POST', body: { decision: 'approve' } })).status).toBe(200)

    await stack.waitFor(async () => received.some((r) => JSON.stringify(r.body).includes(waiting.id)), 'the reminder', 10_000)
    // Long enough for a second send or the decided order's reminder to have come, had either been due.
    await new Promise((r) => setTimeout(r, 2_500))
    expect(received.filter((r) => JSON.stringify(r.body).includes(waiting.id))).toHaveLength(1)
    expect(received.filter((r) => JSON.stringify(r.body).includes(decided.id))).toHaveLength(0)
  })
})

describe('a CRM that runs approval itself, and a WMS that reserves what it has', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite', {
      wms: { stock: { 'SKU-100': 1000, 'SKU-FEW': 2 } },
      configure: (config) => ({
        ...config,
        approval: { rules: [{ id: 'everything', when: {}, require: ['sales_manager'] }] } as never,
        connections: config.connections.map((c) => (c.id === 'demo-crm' ? { ...c, approvedBy: 'crm' as const } : c.id === 'demo-wms' ? { ...c, stockPolicy: 'partial' as const } : c)),
      }),
    })
  })
  afterAll(() => stack?.close())

  it('waits for the CRM’s decision instead of its own rules, and refuses an approver’s decision it does not own', async () => {
    await stack.crm.send('order.created', { ...sampleOrder(8, 'CRM-AP'), items: [{ product_code: 'SKU-100', qty: 1, price: '10.00' }] })
    const waiting = await waitForOrder(stack, 'CRM-AP', 'pending approval', (o) => o.state === 'pending_approval')
    expect((await stack.api('/api/v1/approvals?pending=true')).body.approvals.map((a: { orderId: string }) => a.orderId)).not.toContain(waiting.id)
    expect((await stack.api(`/api/v1/orders/${waiting.id}/approval`, { method: 'POST', body: { decision: 'approve' } })).status).toBe(409)
    expect((await stack.crm.sendApproval({ order_id: 'CRM-AP', decision: 'approved', approver: 'Wang Lei' })).status).toBe(202)
    await waitForOrder(stack, 'CRM-AP', 'approved by the CRM and on its way', (o) => o.state === 'pending_shipment')
    const { body } = await stack.api(`/api/v1/orders/${waiting.id}/timeline`)
    expect(body.timeline.find((t: { toState: string | null }) => t.toState === 'approved').cause).toMatch(/demo-crm event/)
  })

  it('reserves what there is under the partial policy, records the rest as backordered, and tops it up when stock arrives', async () => {
    await stack.crm.send('order.created', { ...sampleOrder(9, 'PARTIAL'), items: [{ product_code: 'SKU-FEW', qty: 5, price: '10.00' }] })
    await stack.crm.sendApproval({ order_id: 'PARTIAL', decision: 'approved' })
    const order = await waitForOrder(stack, 'PARTIAL', 'reserved in part and sent to the ERP', (o) => o.state === 'pending_shipment')
    const { body } = await stack.api(`/api/v1/orders/${order.id}/timeline`)
    expect(body.timeline.find((t: { toState: string | null }) => t.toState === 'reserved').detail.backordered).toEqual([
      expect.objectContaining({ sku: 'SKU-FEW', requested: '5', reserved: '2' }),
    ])
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-FEW')).toMatchObject({ reserved: 2, available: 0 })
    expect((await stack.api(`/api/v1/orders/${order.id}`)).body.hold).toEqual({ backordered: [expect.objectContaining({ sku: 'SKU-FEW', requested: '5', reserved: '2' })] })

    // The goods arrive: the WMS says so, and the backorder is reserved on the same reservation.
    stack.wms.receive('SKU-FEW', 4)
    const filled = await stack.waitFor(async () => {
      const { body: current } = await stack.api(`/api/v1/orders/${order.id}`)
      return !current.hold && current
    }, 'the backorder filled')
    expect(filled.state).toBe('pending_shipment')
    const reservationId = linkOf(filled, 'inventory.reserve')!.externalId
    expect(stack.wms.reservations().find((r) => r.id === reservationId)?.lines).toEqual([expect.objectContaining({ sku: 'SKU-FEW', quantity: 5, reserved: 5 })])
    expect(stack.wms.stock().find((s) => s.sku === 'SKU-FEW')).toMatchObject({ onHand: 6, reserved: 5, available: 1 })
    const { body: after } = await stack.api(`/api/v1/orders/${order.id}/timeline`)
    expect(after.timeline.find((t: { cause: string }) => t.cause === 'demo-wms: backorder filled')).toMatchObject({ kind: 'stock_arrived', detail: { filled: [expect.objectContaining({ sku: 'SKU-FEW', reserved: '2' })] } })
  })
})
