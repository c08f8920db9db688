/**
 * The demo with Tryton as the ERP and inventory (`orderbridge demo --erp tryton`): the connection
 * for a Tryton started by ../shared/tryton/setup.sh, the demo CRM's products and currency in it,
 * and a "clerk" who does in Tryton what people would (ships confirmed sales, posts and pays their
 * invoices) so the demo's orders go all the way to completed. Demo only: nothing else imports it.
 */
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import type { Logger } from '../../src/connector-kit/index.ts'
import { models, type Models, type Row } from './models.ts'
import { settingsSchema, secretsSchema, type TrytonSettings } from './settings.ts'
import { date, decimal } from './values.ts'

/** What setup.sh writes to `$STATE/env.json` (the parts the demo uses). */
export const trytonEnvFileSchema = z.object({
  url: z.string(),
  database: z.string(),
  user: z.string(),
  password: z.string(),
  admin_user: z.string().default('admin'),
  admin_password: z.string(),
  demo: z.object({ warehouse: z.number().int(), company: z.number().int() }).loose(),
})
export type TrytonEnvFile = z.infer<typeof trytonEnvFileSchema>

/** The env.json of ../shared/tryton/setup.sh: `file`, else `TRYTON_ENV_JSON`, else its default state dir. */
export function readTrytonEnvFile(file = process.env.TRYTON_ENV_JSON ?? `${process.env.TMPDIR ?? '/tmp'}/orderbridge-tryton/env.json`): TrytonEnvFile {
  return trytonEnvFileSchema.parse(JSON.parse(readFileSync(file, 'utf8')))
}

/** The demo's Tryton connection (a connections-file entry): ERP and inventory, polled every 2 s. */
export function trytonDemoConnection(target: TrytonEnvFile, id = 'tryton') {
  return {
    id,
    connector: 'tryton',
    settings: { url: target.url, database: target.database, username: target.user, warehouseId: target.demo.warehouse, poll: { intervalMs: 2_000, settleMs: 1_000 } },
    secrets: { password: target.password },
    mappings: { salesOrder: 'canonical.to-tryton.sale' },
  }
}

/**
 * Approval for the Tryton demo: none. Tryton reports credit in the company's currency (USD) and the
 * demo CRM orders in CNY, so a credit check could not compare them and finance would decide each.
 */
export const trytonDemoApprovalPolicy = {
  rules: [{ id: 'demo-tryton', description: 'The Tryton demo approves every order', when: {}, require: [] as never[] }],
  unmatchedCurrency: { require: [] as never[] },
}

const silent: Logger = { info: () => {}, warn: () => {}, error: () => {} }

function adminModels(target: TrytonEnvFile, log: Logger = silent): Models {
  const settings: TrytonSettings = settingsSchema.parse({ url: target.url, database: target.database, username: target.admin_user, warehouseId: target.demo.warehouse })
  return models({ connectionId: 'tryton-demo-admin', settings, secrets: secretsSchema.parse({ password: target.admin_password }), log })
}

/**
 * Makes a Tryton from setup.sh take the demo CRM's orders: the currency CNY (with a rate to the
 * company's USD) and the products SKU-100 … SKU-109 with stock, each created once. Customers need
 * nothing: the connector creates a party for each new CRM account.
 */
export async function prepareTrytonForDemo(target: TrytonEnvFile, options: { skus?: readonly string[]; stock?: number; cnyPerUsd?: string } = {}): Promise<void> {
  const m = adminModels(target)
  const skus = options.skus ?? Array.from({ length: 10 }, (_, i) => `SKU-${100 + i}`)
  if (!(await m.search('currency.currency', [['code', '=', 'CNY']], { limit: 1 })).length) {
    const today = await m.client.call<string>('model.ir.date.today', [])
    await m.create('currency.currency', [{ name: 'Chinese Yuan', code: 'CNY', symbol: '¥', rates: [['create', [{ date: date(`${today.slice(0, 4)}-01-01`), rate: decimal(options.cnyPerUsd ?? '7.1') }]]] }])
  }
  const existing = new Set((await m.searchRead<Row & { code: string }>('product.product', [['code', 'in', [...skus]]], ['code'])).map((p) => p.code))
  const missing = skus.filter((sku) => !existing.has(sku))
  if (!missing.length) return
  // Taxed and accounted like the products setup.sh made.
  const [model] = await m.searchRead<Row & { account_category: number | null; default_uom: number }>('product.product', [['salable', '=', true]], ['account_category', 'default_uom'], { limit: 1 })
  if (!model) throw new Error('Tryton has no salable product to copy the accounting from; run ../shared/tryton/setup.sh first')
  const templates = await m.create(
    'product.template',
    missing.map((sku, i) => ({ name: `Demo item ${sku}`, code: sku, type: 'goods', salable: true, default_uom: model.default_uom, sale_uom: model.default_uom, list_price: decimal(`${99 + i * 40}.00`), account_category: model.account_category, products: [['create', [{}]]] })),
  )
  const products = await m.search('product.product', [['template', 'in', templates]])
  // Into the warehouse's storage zone, where shipments are assigned from.
  const [warehouse] = await m.read<Row & { storage_location: number }>('stock.location', [target.demo.warehouse], ['storage_location'])
  const [inventory] = await m.create('stock.inventory', [{ location: warehouse!.storage_location, company: target.demo.company, lines: [['create', products.map((product) => ({ product, quantity: options.stock ?? 1000 }))]] }])
  await m.button('stock.inventory', 'confirm', [inventory!])
}

/**
 * Does in Tryton what the warehouse and accounting would for the demo's sales (those whose reference
 * is an orderbridge order id): every `intervalMs`, one step per sale: ship its waiting shipment,
 * post its draft invoice, pay its posted invoice. The poller brings each step back to orderbridge.
 */
export function startTrytonDemoClerk(target: TrytonEnvFile, options: { intervalMs?: number; log?: Logger; /** Only the sales of these customers (party codes). */ customers?: readonly string[] } = {}): { close(): Promise<void> } {
  const log = options.log ?? silent
  const m = adminModels(target, log)
  let stopped = false
  let running: Promise<void> = Promise.resolve()
  const ours = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

  async function tick(): Promise<void> {
    const domain = [['state', '=', 'processing'], ...(options.customers ? [['party.code', 'in', [...options.customers]]] : [])]
    const sales = await m.searchRead<Row & { reference: string | null; shipments: number[]; invoices: number[] }>('sale.sale', domain, ['reference', 'shipments', 'invoices'], { limit: 50, order: [['id', 'DESC']] })
    for (const sale of sales.filter((s) => s.reference && ours.test(s.reference))) {
      try {
        const shipments = await m.read<Row & { state: string }>('stock.shipment.out', sale.shipments, ['state'])
        const waiting = shipments.find((s) => s.state === 'waiting' || s.state === 'assigned' || s.state === 'picked' || s.state === 'packed')
        if (waiting) {
          if (waiting.state === 'waiting' && (await m.button('stock.shipment.out', 'assign_try', [waiting.id])) !== true) continue
          for (const step of ['pick', 'pack', 'done'] as const) await m.button('stock.shipment.out', step, [waiting.id])
          continue
        }
        const invoices = await m.read<Row & { state: string; amount_to_pay: string }>('account.invoice', sale.invoices, ['state', 'amount_to_pay'])
        const draft = invoices.find((i) => i.state === 'draft' || i.state === 'validated')
        if (draft) {
          await m.button('account.invoice', 'post', [draft.id])
          continue
        }
        const posted = invoices.find((i) => i.state === 'posted')
        if (posted) await pay(posted.id)
      } catch (err) {
        log.warn({ err, saleId: sale.id }, 'the Tryton demo clerk could not move a sale on')
      }
    }
  }

  async function pay(invoiceId: number): Promise<void> {
    const [method] = await m.search('account.invoice.payment.method', [], { limit: 1 })
    await m.wizard('account.invoice.pay', { model: 'account.invoice', id: invoiceId }, (_state, defaults) => ({
      form: {
        ...Object.fromEntries(Object.entries(defaults).filter(([key]) => !key.endsWith('.')).map(([key, value]) => [key, value as never])),
        amount: decimal(String(defaults.amount)),
        date: date(String(defaults.date)),
        description: 'demo payment',
        payment_method: method ?? null,
      },
      button: 'choice',
    }))
  }

  const loop = async () => {
    while (!stopped) {
      running = tick().catch((err: unknown) => log.warn({ err }, 'the Tryton demo clerk failed a round'))
      await running
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 3_000).unref())
    }
  }
  void loop()
  return {
    async close() {
      stopped = true
      await running
    },
  }
}
