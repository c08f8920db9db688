/**
 * Sales orders in Tryton (`sale.sale`): create with lines, quote, confirm; find by our reference;
 * cancel. Our order id is the sale's `reference`, which is how a retry finds the sale before it
 * creates another (idempotency 'lookup-by-reference': Tryton has no idempotency keys). Customers
 * are parties found by code (= the CRM account id), created when missing; products are found by
 * code (= SKU). A confirmed sale cannot change its lines in Tryton, so an update after confirmation
 * is refused as `data` unless it changes nothing.
 */
import { SyncFailure, type ConnectorContext, type OperationContext, type RemoteRecord, type TargetField } from '../../src/connector-kit/index.ts'
import { z } from 'zod'
import { TrytonRpcError, type TrytonContext } from './client.ts'
import { models, type Models, type Row } from './models.ts'
import { trytonConnectorId, type TrytonSecrets, type TrytonSettings } from './settings.ts'
import { compareDecimals, date, decimal, floatToDecimal, isDecimal, quantityNumber, trimDecimal, type Encoded } from './values.ts'

const connectorId = trytonConnectorId
const decimalText = z.string().refine(isDecimal, 'must be a decimal string such as "10.00"')

/** What the sales-order mapping produces (mappings/canonical.to-tryton.sale.yaml): codes, not Tryton ids. */
export const trytonSaleSchema = z.object({
  reference: z.string().min(1).describe('Our order id; stored in the sale\'s reference so a retry finds the sale instead of creating another.'),
  customer: z.object({
    code: z.string().min(1).describe('The party code: the CRM account id. A party with this code is created when none exists (customers.create).'),
    name: z.string().min(1).optional().describe('The party name, for a party created here.'),
  }),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD'),
  saleDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD').optional(),
  description: z.string().optional().describe('Shown on the sale, e.g. the CRM\'s order number.'),
  comment: z.string().optional(),
  lines: z
    .array(
      z.object({
        product: z.string().min(1).describe('The product code (SKU).'),
        quantity: decimalText.refine((q) => compareDecimals(q, '0') > 0, 'must be positive'),
        unitPrice: decimalText,
        description: z.string().optional(),
      }),
    )
    .min(1),
})
export type TrytonSale = z.infer<typeof trytonSaleSchema>

type Context = ConnectorContext<TrytonSettings, TrytonSecrets>

interface SaleRow extends Row {
  state: 'draft' | 'quotation' | 'confirmed' | 'processing' | 'done' | 'cancelled'
  reference: string | null
  number: string | null
  shipments: number[]
  invoices: number[]
  lines: number[]
  'party.': { id: number; code: string | null } | null
  'currency.': { id: number; code: string } | null
}

const saleFields = ['state', 'reference', 'number', 'shipments', 'invoices', 'lines', 'party.code', 'currency.code'] as const

/** The sales Tryton holds under our reference, newest first, whatever their state. */
export async function salesByReference(m: Models, reference: string): Promise<SaleRow[]> {
  return m.searchRead<SaleRow>('sale.sale', [['reference', '=', reference]], saleFields, { order: [['id', 'DESC']] })
}

async function readSale(m: Models, id: number): Promise<SaleRow | undefined> {
  // A search first: reading an id that does not exist (or is another company's) is an access error.
  const [found] = await m.searchRead<SaleRow>('sale.sale', [['id', '=', id]], saleFields, { limit: 1 })
  return found
}

function saleIdOf(record: RemoteRecord): number {
  const id = Number(record.externalId)
  if (!Number.isSafeInteger(id) || id <= 0) throw new SyncFailure('bug', `"${record.externalId}" is not a Tryton sale id`, { connectorId })
  return id
}

/** The sale to use for our reference: the newest that is not cancelled. */
function openSale(sales: readonly SaleRow[], ctx: Context, reference: string): SaleRow | undefined {
  const open = sales.filter((sale) => sale.state !== 'cancelled')
  if (open.length > 1) ctx.log.warn({ connectionId: ctx.connectionId, connectorId, reference, matches: open.length }, 'Tryton holds several open sales under one reference; using the newest')
  return open[0]
}

export async function findSaleByReference(ctx: Context, reference: string): Promise<RemoteRecord | undefined> {
  const sales = await salesByReference(models(ctx), reference)
  const sale = openSale(sales, ctx, reference) ?? sales[0]
  return sale ? { externalId: String(sale.id) } : undefined
}

// ---------------------------------------------------------------------------------------------
// Parties and products

interface PartyRow extends Row {
  code: string | null
  name: string | null
  addresses: number[]
  customer_payment_term: number | null
}

const partyFields = ['code', 'name', 'addresses', 'customer_payment_term'] as const

/** The party whose code is the CRM account id, created (with one address) when missing and allowed. */
export async function ensureParty(ctx: Context, m: Models, customer: TrytonSale['customer']): Promise<PartyRow & { address: number }> {
  const find = async () => (await m.searchRead<PartyRow>('party.party', [['code', '=', customer.code]], partyFields, { limit: 1 }))[0]
  let party = await find()
  if (!party) {
    if (!ctx.settings.customers.create) throw new SyncFailure('data', `Tryton has no customer (party) with code ${customer.code}`, { connectorId })
    try {
      await m.create('party.party', [{ code: customer.code, name: customer.name ?? customer.code, addresses: [['create', [{}]]] }])
    } catch (err) {
      // Another call created it first (the code is unique): take that one.
      if (!(err instanceof TrytonRpcError) || !(await find())) throw err
    }
    party = await find()
    if (!party) throw new SyncFailure('unknown_outcome', `the party ${customer.code} was created but cannot be found`, { connectorId })
    ctx.log.info({ connectionId: ctx.connectionId, connectorId, partyId: party.id }, 'created a Tryton party for a new customer')
  }
  // Quoting needs an invoice and a shipment address.
  const address = party.addresses[0] ?? (await m.create('party.address', [{ party: party.id }]))[0]
  if (address === undefined) throw new SyncFailure('unknown_outcome', `the address of party ${customer.code} was created but not answered`, { connectorId })
  return { ...party, address }
}

interface ProductRow extends Row {
  code: string
  sale_uom: number | null
  default_uom: number | null
  salable: boolean
  'account_category.': { id: number; customer_taxes_used: number[] } | null
}

/** Products by code (SKU); an unknown code is a `data` failure naming every missing one. */
export async function productsByCode(m: Models, codes: readonly string[]): Promise<Map<string, ProductRow>> {
  const wanted = [...new Set(codes)]
  const rows = await m.searchRead<ProductRow>('product.product', [['code', 'in', wanted]], ['code', 'sale_uom', 'default_uom', 'salable', 'account_category.customer_taxes_used'])
  const byCode = new Map(rows.map((row) => [row.code, row]))
  const missing = wanted.filter((code) => !byCode.has(code))
  if (missing.length) throw new SyncFailure('data', `Tryton has no product with code ${missing.join(', ')}`, { connectorId })
  return byCode
}

async function currencyId(m: Models, code: string): Promise<number> {
  const [id] = await m.search('currency.currency', [['code', '=', code]], { limit: 1 })
  if (id === undefined) throw new SyncFailure('data', `Tryton has no currency ${code}`, { connectorId })
  return id
}

// ---------------------------------------------------------------------------------------------
// Upsert

/** The create (or draft rewrite) values of a sale, with every id resolved. */
async function saleValues(ctx: Context, m: Models, input: TrytonSale, reference: string): Promise<Record<string, Encoded>> {
  const [party, products, currency, warehouse] = await Promise.all([
    ensureParty(ctx, m, input.customer),
    productsByCode(
      m,
      input.lines.map((line) => line.product),
    ),
    currencyId(m, input.currency),
    m.warehouse(),
  ])
  const paymentTerm = party.customer_payment_term ?? ctx.settings.paymentTermId ?? null
  return {
    party: party.id,
    invoice_address: party.address,
    shipment_address: party.address,
    currency,
    warehouse: warehouse.id,
    reference,
    ...(paymentTerm !== null ? { payment_term: paymentTerm } : {}),
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...(input.comment !== undefined ? { comment: input.comment } : {}),
    ...(input.saleDate !== undefined ? { sale_date: date(input.saleDate) } : {}),
    lines: [
      [
        'create',
        input.lines.map((line) => {
          const product = products.get(line.product)!
          const unit = product.sale_uom ?? product.default_uom
          return {
            type: 'line',
            product: product.id,
            quantity: quantityNumber(line.quantity),
            unit,
            // A string, never a JS number: Tryton would build Decimal(float).
            unit_price: decimal(line.unitPrice),
            taxes: [['add', product['account_category.']?.customer_taxes_used ?? []]],
            ...(line.description !== undefined ? { description: line.description } : {}),
          }
        }),
      ],
    ],
  }
}

interface LineRow extends Row {
  type: string
  quantity: number | null
  unit_price: string | null
  'product.': { id: number; code: string } | null
}

/** Whether the sale already says what the document says: customer, currency and lines. */
async function sameAsDocument(m: Models, sale: SaleRow, input: TrytonSale): Promise<boolean> {
  if (sale['party.']?.code !== input.customer.code || sale['currency.']?.code !== input.currency) return false
  const lines = (await m.read<LineRow>('sale.line', sale.lines, ['type', 'quantity', 'unit_price', 'product.code'])).filter((line) => line.type === 'line')
  const key = (code: string, quantity: string, price: string) => `${code}\u0000${trimDecimal(quantity)}\u0000${trimDecimal(price)}`
  const held = lines.map((line) => key(line['product.']?.code ?? '', floatToDecimal(line.quantity ?? 0), line.unit_price ?? '0')).sort()
  const wanted = input.lines.map((line) => key(line.product, line.quantity, line.unitPrice)).sort()
  return held.length === wanted.length && held.every((value, i) => value === wanted[i])
}

/**
 * Moves the sale on to processing: quote (numbers it), confirm (credit-limit check; creates the
 * shipment moves, which is what holds the stock, and the draft invoice), process when a queue worker
 * would have done it later. Each button is idempotent in the sense that it is only pressed from the
 * state before it, so a retry continues where an earlier attempt stopped.
 */
async function driveToProcessing(m: Models, sale: { id: number; state: SaleRow['state'] }): Promise<void> {
  let state = sale.state
  if (state === 'draft') {
    await m.button('sale.sale', 'quote', [sale.id])
    state = 'quotation'
  }
  if (state === 'quotation') {
    await m.button('sale.sale', 'confirm', [sale.id])
    state = (await readSale(m, sale.id))?.state ?? state
  }
  // With a Tryton queue worker (or sale_process_after) confirm leaves processing for later.
  if (state === 'confirmed') await m.button('sale.sale', 'process', [sale.id])
}

export async function upsertSale(ctx: OperationContext<TrytonSettings, TrytonSecrets>, input: TrytonSale, existing: RemoteRecord | undefined): Promise<RemoteRecord> {
  const m = models(ctx)
  const reference = ctx.reference
  if (input.reference !== reference) {
    // The mapping should carry our id; the connector stores ours regardless, or a retry could not find the sale.
    ctx.log.warn({ connectionId: ctx.connectionId, connectorId, reference }, 'the sale document carries another reference; storing ours')
  }
  let sale = existing ? await readSale(m, saleIdOf(existing)) : undefined
  if (existing && !sale) ctx.log.warn({ connectionId: ctx.connectionId, connectorId, reference, saleId: existing.externalId }, 'the linked Tryton sale no longer exists; looking up the reference')
  if (sale?.state === 'cancelled') throw new SyncFailure('data', `Tryton sale ${sale.number ?? sale.id} is cancelled; reset it to draft in Tryton or cancel the order`, { connectorId })
  // Tryton has no idempotency keys: an earlier attempt that lost its answer left the sale under our reference.
  sale ??= openSale(await salesByReference(m, reference), ctx, reference)

  if (!sale) {
    const [id] = await m.create('sale.sale', [await saleValues(ctx, m, input, reference)])
    if (id === undefined) throw new SyncFailure('unknown_outcome', 'Tryton created no sale', { connectorId })
    await driveToProcessing(m, { id, state: 'draft' })
    return { externalId: String(id) }
  }

  if (!(await sameAsDocument(m, sale, input))) {
    if (sale.state === 'quotation') {
      await m.button('sale.sale', 'draft', [sale.id])
      sale = { ...sale, state: 'draft' }
    }
    if (sale.state !== 'draft') {
      throw new SyncFailure(
        'data',
        `Tryton sale ${sale.number ?? sale.id} is ${sale.state}: a confirmed sale's customer and lines cannot be changed; change it in Tryton (or cancel the order and send a new one)`,
        { connectorId },
      )
    }
    const values = await saleValues(ctx, m, input, reference)
    values.lines = [['delete', sale.lines], ...(values.lines as Encoded[])]
    await m.write('sale.sale', [sale.id], values)
  }
  await driveToProcessing(m, sale)
  return { externalId: String(sale.id) }
}

// ---------------------------------------------------------------------------------------------
// Cancel

interface StateRow extends Row {
  state: string
  number: string | null
}

/**
 * Cancels the sale. A draft or quoted sale is simply cancelled. A confirmed one (processing) has a
 * shipment and a draft invoice: both are cancelled, then Tryton's "handle exception" wizards are run
 * to ignore them, as a person would in the client, and the sale ends `done` with nothing to ship or
 * invoice. A shipped sale or a posted invoice cannot be undone this way: `data`, with what to do.
 * Cancelling again succeeds.
 */
export async function cancelSale(ctx: OperationContext<TrytonSettings, TrytonSecrets>, existing: RemoteRecord): Promise<void> {
  const m = models(ctx)
  const sale = await readSale(m, saleIdOf(existing))
  if (!sale || sale.state === 'cancelled') return
  const name = sale.number ?? String(sale.id)
  if (sale.state === 'draft' || sale.state === 'quotation') {
    await m.button('sale.sale', 'cancel', [sale.id])
    return
  }
  if (sale.state === 'confirmed') {
    await m.button('sale.sale', 'draft', [sale.id])
    await m.button('sale.sale', 'cancel', [sale.id])
    return
  }
  const shipments = await m.read<StateRow>('stock.shipment.out', sale.shipments, ['state', 'number'])
  const shipped = shipments.find((s) => s.state === 'done')
  if (shipped) throw new SyncFailure('data', `Tryton sale ${name} has shipped (shipment ${shipped.number ?? shipped.id} is done); return it in Tryton instead of cancelling`, { connectorId })
  const invoices = await m.read<StateRow>('account.invoice', sale.invoices, ['state', 'number'])
  const booked = invoices.find((i) => i.state === 'posted' || i.state === 'paid')
  if (booked) throw new SyncFailure('data', `Tryton sale ${name} is invoiced (invoice ${booked.number ?? booked.id} is ${booked.state}); credit it in Tryton instead of cancelling`, { connectorId })

  const openShipments = shipments.filter((s) => s.state !== 'cancelled').map((s) => s.id)
  if (openShipments.length) await m.button('stock.shipment.out', 'cancel', openShipments)
  const openInvoices = invoices.filter((i) => i.state !== 'cancelled').map((i) => i.id)
  if (openInvoices.length) await m.button('account.invoice', 'cancel', openInvoices)
  await m.button('sale.sale', 'process', [sale.id])

  const [after] = await m.read<Row & { shipment_state: string; invoice_state: string }>('sale.sale', [sale.id], ['shipment_state', 'invoice_state'])
  if (after?.shipment_state === 'exception') {
    await m.wizard('sale.handle.shipment.exception', { model: 'sale.sale', id: sale.id }, (_state, defaults) => ({
      // Recreate none: every cancelled move is ignored.
      form: { recreate_moves: [], domain_moves: (defaults.domain_moves as number[] | undefined) ?? [] },
      button: 'handle',
    }))
  }
  if (after?.invoice_state === 'exception') {
    await m.wizard('sale.handle.invoice.exception', { model: 'sale.sale', id: sale.id }, (_state, defaults) => ({
      form: { recreate_invoices: [], domain_invoices: (defaults.domain_invoices as number[] | undefined) ?? [] },
      button: 'handle',
    }))
  }
}

/** The fields of the sales-order document, for the mapping editor. */
export function describeSaleFields(): TargetField[] {
  return [
    { path: 'reference', type: 'string', required: true, description: 'Our order id: stored in the sale\'s reference; a retry finds the sale by it.' },
    { path: 'customer', type: 'object', required: true },
    { path: 'customer.code', type: 'string', required: true, description: 'Party code = the CRM account id; a party is created when none has it.' },
    { path: 'customer.name', type: 'string', required: false, description: 'Name of a party created here.' },
    { path: 'currency', type: 'string', required: true, description: 'ISO 4217 code of a currency Tryton has.' },
    { path: 'saleDate', type: 'date', required: false },
    { path: 'description', type: 'string', required: false, description: 'e.g. the CRM\'s order number.' },
    { path: 'comment', type: 'string', required: false },
    { path: 'lines', type: 'array', required: true, description: 'At least one line.' },
    { path: 'lines[].product', type: 'string', required: true, description: 'Product code (SKU).' },
    { path: 'lines[].quantity', type: 'decimal', required: true, description: 'In the product\'s sale unit; whole numbers for Unit.' },
    { path: 'lines[].unitPrice', type: 'decimal', required: true, description: 'Unit price before tax; taxes come from the product\'s account category.' },
    { path: 'lines[].description', type: 'string', required: false },
  ]
}

export type { TrytonContext }
