/**
 * What each reader sees of orders waiting for approval and of the credit check, through the real
 * HTTP API: the pending-approvals list projected like the order routes (the warehouse sees no
 * amounts, finance does), and credit figures (the `credit_checked` entry, the automatic approval's
 * reason, the list's `credit`) shown to finance, admin and ops only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

type TimelineEntry = { kind: string; cause: string; detail?: Record<string, unknown> | null }

describe('what approvers and other readers see of approvals and credit', () => {
  let stack: TestStack
  const keys: Record<string, string> = {}
  const ids: Record<string, string> = {}

  const shipTo = { name: 'Yuntu receiving', street: '88 Wensan Road', city: 'Hangzhou', postal_code: '310012', country: 'CN' }
  const order = (externalId: string, customer: string, sku: string, price: string) => ({ ...sampleOrder(11, externalId), account: { id: customer, name: customer }, items: [{ product_code: sku, qty: 1, price }] })
  const orderId = (externalId: string, what: string, test: (o: { state: string }) => boolean) =>
    stack.waitFor(async () => {
      const found = (await stack.api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)).body.orders[0]
      return found && test(found) ? (found.id as string) : undefined
    }, `${externalId} ${what}`)
  const timeline = async (id: string, key: string): Promise<TimelineEntry[]> => (await stack.api(`/api/v1/orders/${id}/timeline`, { key })).body.timeline
  const pending = async (key?: string) => (await stack.api('/api/v1/approvals?pending=true', key ? { key } : {})).body.approvals as Record<string, unknown>[]

  beforeAll(async () => {
    stack = await startTestStack('postgres', {
      configure: (config) => ({
        ...config,
        approval: {
          rules: [
            { id: 'hazardous', when: { skus: ['SKU-HAZ'] }, require: ['warehouse'] },
            { id: 'large', when: { amount: { CNY: { min: '10000' } } }, require: ['finance'] },
            { id: 'small', when: { amount: { CNY: { below: '10000' } } }, require: [] },
          ],
        } as never,
      }),
      erp: { credit: { default: { limit: '500000.00', currency: 'CNY' }, customers: { 'ACC-TIGHT': { limit: '50000.00', currency: 'CNY' } } } as never },
    })
    for (const [name, body] of [
      ['warehouse', { role: 'approver', level: 'warehouse' }],
      ['sales_manager', { role: 'approver', level: 'sales_manager' }],
      ['finance', { role: 'approver', level: 'finance' }],
      ['viewer', { role: 'viewer' }],
      ['ops', { role: 'ops' }],
    ] as const) {
      const created = await stack.api('/api/v1/keys', { method: 'POST', body: { name, ...body } })
      expect(created.status).toBe(201)
      keys[name] = created.body.key
    }

    // Within the default limit: the credit check approves finance, its reason quoting the sums.
    await stack.crm.send('order.created', order('VIEW-WITHIN', 'ACC-7', 'SKU-100', '12345.00'))
    // Over ACC-TIGHT's limit: the check leaves finance to a person, with the figures.
    await stack.crm.send('order.created', order('VIEW-OVER', 'ACC-TIGHT', 'SKU-100', '120000.00'))
    // Waits for the warehouse.
    await stack.crm.send('order.created', { ...order('VIEW-HAZ', 'ACC-7', 'SKU-HAZ', '777.00'), ship_to: shipTo, deliver_by: '2026-12-03' })
    ids.within = await orderId('VIEW-WITHIN', 'approved by the credit check', (o) => o.state !== 'received' && o.state !== 'pending_approval')
    ids.haz = await orderId('VIEW-HAZ', 'waiting for the warehouse', (o) => o.state === 'pending_approval')
    ids.over = await orderId('VIEW-OVER', 'waiting for finance', (o) => o.state === 'pending_approval')
    await stack.waitFor(async () => (await pending(keys.finance!)).find((a) => a.orderId === ids.over && a.credit), 'the credit figures on the finance approval')
  }, 60_000)
  afterAll(() => stack?.close())

  describe('GET /api/v1/approvals', () => {
    it('shows the warehouse what waits for it without total, currency or credit', async () => {
      const list = await pending(keys.warehouse!)
      expect(list).toEqual([
        {
          orderId: ids.haz,
          externalId: 'VIEW-HAZ',
          sourceConnection: 'demo-crm',
          customer: { externalId: 'ACC-7', name: 'ACC-7' },
          level: 'warehouse',
          rule: 'hazardous',
          waitingSince: expect.any(String),
          approvals: [{ level: 'warehouse', status: 'pending', decidedBy: null, automatic: false }],
        },
      ])
      expect(JSON.stringify(list)).not.toContain('777')
    })

    it('shows finance the total, currency and what the credit check saw', async () => {
      const item = (await pending(keys.finance!)).find((a) => a.orderId === ids.over)
      expect(item).toMatchObject({ level: 'finance', rule: 'large', total: '120000.00', currency: 'CNY', credit: { limit: '50000.00', headroom: '-70000.00', autoApprove: false } })
    })

    it('shows an admin every level’s orders with their amounts', async () => {
      const list = await pending()
      expect(list.map((a) => [a.orderId, a.total])).toEqual(expect.arrayContaining([[ids.haz, '777.00'], [ids.over, '120000.00']]))
    })
  })

  describe('credit figures in an order and its timeline', () => {
    const figures = /50000\.00|headroom|outstanding|exposure/

    it.each(['sales_manager', 'viewer'])('shows a %s key the amounts, and the credit check without its figures or reason', async (reader) => {
      const order = (await stack.api(`/api/v1/orders/${ids.over}`, { key: keys[reader] })).body
      expect(order.total).toBe('120000.00')
      const checked = order.timeline.find((t: TimelineEntry) => t.kind === 'credit_checked')
      expect(checked).toEqual({ at: expect.any(String), kind: 'credit_checked', fromState: null, toState: null, cause: 'demo-erp credit check' })
      expect(JSON.stringify(order)).not.toMatch(figures)
      expect(JSON.stringify(await timeline(ids.over!, keys[reader]!))).not.toMatch(figures)

      const approvedAutomatically = (await timeline(ids.within!, keys[reader]!)).find((t) => t.kind === 'approval')
      expect(approvedAutomatically?.detail).toEqual({ level: 'finance', decision: 'approve', automatic: true })
    })

    it('shows the warehouse where and when to ship, and what, but no prices', async () => {
      const { document } = (await stack.api(`/api/v1/orders/${ids.haz}`, { key: keys.warehouse })).body
      expect(document).toEqual({
        externalId: 'VIEW-HAZ',
        owner: expect.any(String),
        orderedAt: expect.any(String),
        customer: { externalId: 'ACC-7', name: 'ACC-7' },
        shipTo: { name: 'Yuntu receiving', street: '88 Wensan Road', city: 'Hangzhou', postalCode: '310012', country: 'CN' },
        requestedDeliveryDate: '2026-12-03',
        lines: [{ sku: 'SKU-HAZ', quantity: '1' }],
      })
    })

    it('shows the warehouse neither amounts nor the credit check’s details', async () => {
      const order = (await stack.api(`/api/v1/orders/${ids.over}`, { key: keys.warehouse })).body
      expect(order).not.toHaveProperty('total')
      expect(order.timeline.find((t: TimelineEntry) => t.kind === 'credit_checked')).not.toHaveProperty('detail')
      expect(JSON.stringify(order)).not.toMatch(/120000|figures|headroom/)
      expect(JSON.stringify(await timeline(ids.within!, keys.warehouse!))).not.toMatch(/12345|within the credit limit/)
    })

    it.each(['finance', 'ops'])('shows a %s key the figures and the automatic approval’s reason', async (reader) => {
      const checked = (await timeline(ids.over!, keys[reader]!)).find((t) => t.kind === 'credit_checked')
      expect(checked?.detail).toMatchObject({ reason: expect.stringMatching(/over the credit limit/), figures: { limit: '50000.00', outstanding: '0.00', exposure: '120000.00', headroom: '-70000.00', overdue: false } })
      const approvedAutomatically = (await timeline(ids.within!, keys[reader]!)).find((t) => t.kind === 'approval')
      expect(approvedAutomatically?.detail).toMatchObject({ automatic: true, comment: expect.stringMatching(/^within the credit limit: outstanding .* limit 500000\.00$/) })
    })
  })
})
