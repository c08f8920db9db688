/**
 * For the live tests against a real Tryton (../shared/tryton/setup.sh): where it runs (the
 * `TRYTON_ENV_JSON` file), a Tryton "person" who finishes shipments, posts and pays invoices over
 * JSON-RPC as the warehouse and accounting would, and a fault proxy in front of the server for the
 * conformance suite's injected failures (HTTP statuses, a create whose answer is lost).
 * Test code only: nothing in the connector imports it.
 */
import { readFileSync } from 'node:fs'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { z } from 'zod'
import type { TrytonSecrets, TrytonSettings } from './settings.ts'
import { decode } from './values.ts'

const envSchema = z.object({
  url: z.string(),
  database: z.string(),
  backend: z.string().optional(),
  user: z.string(),
  password: z.string(),
  admin_user: z.string().default('admin'),
  admin_password: z.string(),
  demo: z
    .object({
      company: z.number(),
      currency: z.number().optional(),
      warehouse: z.number(),
      customers: z.unknown().optional(),
      products: z.unknown().optional(),
    })
    .loose(),
})
export type TrytonTestEnv = z.infer<typeof envSchema>

export const skipMessage = 'TRYTON_ENV_JSON is not set: live Tryton tests skipped (run ../shared/tryton/setup.sh and export TRYTON_ENV_JSON=<state dir>/env.json; .ci/run does)'

/** The running Tryton setup.sh started, or undefined when `TRYTON_ENV_JSON` is unset. */
export function trytonTestEnv(): TrytonTestEnv | undefined {
  const file = process.env.TRYTON_ENV_JSON
  if (!file) return undefined
  return envSchema.parse(JSON.parse(readFileSync(file, 'utf8')))
}

/** Demo data of setup_demo.py (ids are stable): customers, products and their list prices. */
export const demoData = {
  // The codes are the CRM account ids the tests use; every test file sets the same ones.
  acme: { id: 3, code: 'TRYTON-ACME', name: 'Acme Corp', creditLimit: '1000' },
  bigSpender: { id: 4, code: 'TRYTON-BIG', name: 'Big Spender Ltd' },
  widget: { code: 'WIDGET-001', price: '10.00', stock: 100 },
  gadget: { code: 'GADGET-001', price: '250.00', stock: 20 },
  noStock: { code: 'NOSTOCK-001', price: '5.00', stock: 0 },
} as const

export function connectionOf(env: TrytonTestEnv, settings: Partial<TrytonSettings> = {}): { settings: Record<string, unknown>; secrets: TrytonSecrets } {
  return {
    settings: { url: env.url, database: env.database, username: env.user, timeoutMs: 20_000, warehouseId: env.demo.warehouse, ...settings },
    secrets: { password: env.password },
  }
}

// ---------------------------------------------------------------------------------------------

/** A Tryton error answered inside a 200. */
export class RpcError extends Error {
  readonly type: string
  readonly args: unknown
  constructor(type: string, args: unknown) {
    super(`${type}: ${JSON.stringify(args).slice(0, 300)}`)
    this.type = type
    this.args = args
  }
}

export const D = (value: string) => ({ __class__: 'Decimal', decimal: value })
/** A view's defaults as form values: without the `field.` entries that carry the names of related records. */
const plain = (values: Record<string, unknown>) => Object.fromEntries(Object.entries(values).filter(([key]) => !key.endsWith('.')))
const dateOf = (iso: unknown) => {
  const [year, month, day] = String(iso).split('-').map(Number)
  return { __class__: 'date', year, month, day }
}

/**
 * A person working in Tryton over JSON-RPC (admin by default): what the tests do on Tryton's side.
 */
export async function trytonPerson(env: TrytonTestEnv, login = { user: env.admin_user, password: env.admin_password }) {
  const dbUrl = `${env.url.replace(/\/$/, '')}/${env.database}/`
  let id = 1
  let auth: string | undefined
  async function rpc<T = any>(method: string, params: unknown[]): Promise<T> {
    const response = await fetch(dbUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
      body: JSON.stringify({ id: id++, method, params }),
    })
    if (response.status !== 200) throw new Error(`HTTP ${response.status} on ${method}`)
    const body = (await response.json()) as { result?: unknown; error?: [string, unknown] }
    if (body.error) throw new RpcError(body.error[0], body.error[1])
    return decode(body.result) as T
  }
  const [uid, key] = await rpc<[number, string]>('common.db.login', [login.user, { password: login.password }, 'en'])
  auth = `Session ${Buffer.from(`${login.user}:${uid}:${key}`).toString('base64')}`
  const ctx = { company: env.demo.company, language: 'en' }
  const stockCtx = { ...ctx, locations: [env.demo.warehouse] }

  const person = {
    rpc,
    ctx,
    /** `model.<model>.<method>` with the company context last. */
    call: <T = any>(model: string, method: string, ...params: unknown[]) => rpc<T>(`model.${model}.${method}`, [...params, ctx]),
    async saleByReference(reference: string) {
      return rpc<any[]>('model.sale.sale.search_read', [
        [['reference', '=', reference]],
        0,
        null,
        [['id', 'ASC']],
        ['number', 'state', 'reference', 'party', 'shipments', 'invoices', 'untaxed_amount', 'tax_amount', 'total_amount', 'lines', 'shipment_state', 'invoice_state'],
        ctx,
      ])
    },
    async saleLines(lineIds: number[]) {
      return rpc<any[]>('model.sale.line.read', [lineIds, ['product.code', 'quantity', 'unit_price', 'amount'], ctx])
    },
    async stock(code: string): Promise<{ quantity: number; forecast: number }> {
      const [row] = await rpc<any[]>('model.product.product.search_read', [[['code', '=', code]], 0, 1, null, ['quantity', 'forecast_quantity'], stockCtx])
      return { quantity: row.quantity, forecast: row.forecast_quantity }
    },
    /** The warehouse ships it: assign, pick, pack, done. */
    async shipSale(reference: string) {
      const [sale] = await person.saleByReference(reference)
      for (const shipment of sale.shipments as number[]) {
        const assigned = await rpc('model.stock.shipment.out.assign_try', [[shipment], ctx])
        if (assigned !== true) throw new Error(`shipment ${shipment} could not be assigned (not enough stock)`)
        await rpc('model.stock.shipment.out.pick', [[shipment], ctx])
        await rpc('model.stock.shipment.out.pack', [[shipment], ctx])
        await rpc('model.stock.shipment.out.done', [[shipment], ctx])
      }
      return sale.shipments as number[]
    },
    /** Accounting posts the sale's invoice; answers its id, number and total. */
    async postInvoice(reference: string) {
      const [sale] = await person.saleByReference(reference)
      const [invoiceId] = sale.invoices as number[]
      await rpc('model.account.invoice.post', [[invoiceId], ctx])
      const [invoice] = await rpc<any[]>('model.account.invoice.read', [[invoiceId], ['number', 'state', 'total_amount', 'amount_to_pay'], ctx])
      return invoice as { id: number; number: string; state: string; total_amount: string; amount_to_pay: string }
    },
    /** A payment of `amount` on the invoice (partial when below what is due), with the pay wizard. */
    async pay(invoiceId: number, amount: string) {
      const wctx = { ...ctx, active_model: 'account.invoice', active_id: invoiceId, active_ids: [invoiceId] }
      const [sid, start] = await rpc<[number, string]>('wizard.account.invoice.pay.create', [ctx])
      const view = await rpc<any>('wizard.account.invoice.pay.execute', [sid, {}, start, wctx])
      const defaults = view.view.defaults
      const [method] = await rpc<number[]>('model.account.invoice.payment.method.search', [[], 0, 1, null, ctx])
      const form = { ...plain(defaults), amount: D(amount), date: dateOf(defaults.date), description: `payment ${amount}`, payment_method: method }
      let answer = await rpc<any>('wizard.account.invoice.pay.execute', [sid, { start: form }, 'choice', wctx])
      // A partial payment asks what to do with the rest: keep it open ('partial').
      if (answer?.view?.state === 'ask') {
        const ask = answer.view.defaults
        const askForm = { ...plain(ask), amount: D(String(ask.amount)), date: dateOf(ask.date), type: 'partial' }
        answer = await rpc('wizard.account.invoice.pay.execute', [sid, { start: form, ask: askForm }, 'pay', wctx])
      }
      await rpc('wizard.account.invoice.pay.delete', [sid, ctx])
      const [invoice] = await rpc<any[]>('model.account.invoice.read', [[invoiceId], ['state', 'amount_to_pay'], ctx])
      return invoice as { state: string; amount_to_pay: string }
    },
    /**
     * A new salable product (taxed like the demo's) with `stock` units on hand in the warehouse, so
     * a test's stock figures are its own while other tests sell the demo products.
     */
    async createProduct(code: string, price: string, stock: number) {
      const [widget] = await rpc<any[]>('model.product.product.search_read', [[['code', '=', demoData.widget.code]], 0, 1, null, ['account_category', 'default_uom'], ctx])
      const [template] = await rpc<number[]>('model.product.template.create', [
        [{ name: `Test ${code}`, code, type: 'goods', salable: true, default_uom: widget.default_uom, sale_uom: widget.default_uom, list_price: D(price), account_category: widget.account_category, products: [['create', [{}]]] }],
        ctx,
      ])
      const [product] = await rpc<number[]>('model.product.product.search', [[['template', '=', template]], 0, 1, null, ctx])
      if (stock > 0) {
        const [storage] = await rpc<number[]>('model.stock.location.search', [[['code', '=', 'STO']], 0, 1, null, ctx])
        const [inventory] = await rpc<number[]>('model.stock.inventory.create', [[{ location: storage, company: env.demo.company, lines: [['create', [{ product, quantity: stock }]]] }], ctx])
        await rpc('model.stock.inventory.confirm', [[inventory], ctx])
      }
      return { id: product!, code, price }
    },
    /** Gives the demo customers their codes (the CRM account ids the tests use for them). */
    async codeDemoCustomers() {
      await rpc('model.party.party.write', [[demoData.acme.id], { code: demoData.acme.code }, [demoData.bigSpender.id], { code: demoData.bigSpender.code }, ctx])
    },
    async logout() {
      await rpc('common.db.logout', [])
    },
  }
  return person
}
export type TrytonPerson = Awaited<ReturnType<typeof trytonPerson>>

// ---------------------------------------------------------------------------------------------

export interface FaultProxy {
  url: string
  /** The next request answers `status` (with headers) and is not forwarded; for 401 also the login that follows. */
  failNext(status: number, headers?: Record<string, string>): void
  /** The next `model.sale.sale.create` is forwarded (Tryton commits it), then the connection drops without an answer. */
  commitThenDropNext(): void
  /**
   * The next request for `method` is forwarded (Tryton commits it) and its answer held back, as if
   * the caller had stopped listening: `reached` resolves once Tryton has answered; `drop()` then
   * closes the caller's connection without an answer.
   */
  holdNext(method: string): { reached: Promise<void>; drop(): void }
  /** Methods forwarded so far. */
  methods(): string[]
  reset(): void
  close(): Promise<void>
}

/**
 * A pass-through HTTP proxy in front of Tryton that can fail requests the way a network or a
 * gateway does, so the conformance suite's fault cases run against the real server.
 */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target)
  let fail: { status: number; headers: Record<string, string>; untilLogin: boolean } | undefined
  let dropCreate = false
  let hold: { method: string; reached: () => void; socket?: Socket } | undefined
  const seen: string[] = []
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      let method = ''
      try {
        method = String((JSON.parse(body.toString('utf8')) as { method?: unknown }).method ?? '')
      } catch {
        // Not JSON: forwarded as it is.
      }
      seen.push(method)
      if (fail) {
        const { status, headers, untilLogin } = fail
        // A refused session is followed by a login: fail that too, so the refusal is final.
        if (!untilLogin || method === 'common.db.login') fail = undefined
        res.writeHead(status, { 'content-type': 'text/html', ...headers })
        res.end(`<h1>${status}</h1>`)
        return
      }
      const drop = dropCreate && method === 'model.sale.sale.create'
      if (drop) dropCreate = false
      const held = hold && !hold.socket && hold.method === method ? hold : undefined
      if (held) held.socket = req.socket
      const forward = request(
        { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host } },
        (answer) => {
          const parts: Buffer[] = []
          answer.on('data', (chunk: Buffer) => parts.push(chunk))
          answer.on('end', () => {
            if (drop) {
              req.socket.destroy()
              return
            }
            if (held) {
              held.reached()
              return
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers)
            res.end(Buffer.concat(parts))
          })
        },
      )
      forward.on('error', () => {
        res.writeHead(502)
        res.end()
      })
      forward.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    failNext(status, headers = {}) {
      fail = { status, headers, untilLogin: status === 401 }
    },
    commitThenDropNext() {
      dropCreate = true
    },
    holdNext(method) {
      let reached!: () => void
      const promise = new Promise<void>((resolve) => (reached = resolve))
      const entry: NonNullable<typeof hold> = { method, reached }
      hold = entry
      return {
        reached: promise,
        drop: () => {
          entry.socket?.destroy()
          if (hold === entry) hold = undefined
        },
      }
    },
    methods: () => [...seen],
    reset() {
      fail = undefined
      dropCreate = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
