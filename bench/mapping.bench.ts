/**
 * Mapping benchmark (`npm run bench:mapping [-- --documents 100000]`).
 *
 * One mapping of a 30-field order with 10 lines (20 order fields, 10 per line), applied to the
 * same documents three ways in one run: the compiled mapping, the same mapping hand-written as a
 * plain TypeScript function (the ceiling: what a developer would write, with the same checks and
 * coercions), and the same mapping as a precompiled JSONata expression (the common alternative).
 * Every way's output is checked against the others before timing. Prints readable lines, then one
 * JSON object with the figures as the last line.
 */
import { parseArgs } from 'node:util'
import { isDeepStrictEqual } from 'node:util'
import jsonata from 'jsonata'
import { compileMapping } from '../src/mapping/compile-mapping.ts'
import { mappingSpecSchema, type MappingResult } from '../src/mapping/mapping.schemas.ts'

const { values: args } = parseArgs({ options: { documents: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '3' } } })
const documentCount = Number(args.documents)
const rounds = Number(args.rounds)
const target = 0.5

const spec = mappingSpecSchema.parse({
  id: 'bench.order',
  fields: [
    { to: 'externalId', from: 'order_id', type: 'string', required: true },
    { to: 'customer.externalId', from: 'account.id', type: 'string', required: true },
    { to: 'customer.name', from: 'account.name', transform: ['trim'] },
    { to: 'customer.taxId', from: 'account.tax_id', type: 'string' },
    { to: 'currency', from: 'currency_code', map: { '1': 'CNY', '2': 'USD', '3': 'EUR' } },
    { to: 'status', from: 'status', map: { '10': 'draft', '20': 'confirmed', '30': 'cancelled' }, fallback: 'keep' },
    { to: 'owner', from: 'owner', type: 'string' },
    { to: 'orderedAt', from: 'created_at', type: 'datetime' },
    { to: 'deliveryDate', from: 'delivery_date', type: 'date' },
    { to: 'shipTo.name', from: 'ship_to.name', type: 'string' },
    { to: 'shipTo.phone', from: 'ship_to.phone', type: 'string' },
    { to: 'shipTo.address.line1', from: 'ship_to.address', type: 'string' },
    { to: 'shipTo.address.city', from: 'ship_to.city', type: 'string' },
    { to: 'shipTo.address.province', from: 'ship_to.province', type: 'string' },
    { to: 'shipTo.address.postcode', from: 'ship_to.postcode', type: 'string' },
    { to: 'shipTo.address.country', from: 'ship_to.country', default: 'CN' },
    { to: 'discount', from: 'discount', type: 'decimal', default: '0' },
    { to: 'freight', from: 'freight', type: 'decimal' },
    { to: 'priority', from: 'priority', type: 'integer', default: 3 },
    { to: 'channel', constant: 'crm' },
    {
      to: 'lines',
      from: 'items',
      required: true,
      each: [
        { to: 'lineNo', from: 'line_no', type: 'integer', required: true },
        { to: 'sku', from: 'product_code', type: 'string', required: true },
        { to: 'name', from: 'product_name', transform: ['trim'] },
        { to: 'quantity', from: 'qty', type: 'decimal', required: true },
        { to: 'unit', from: 'unit', transform: ['upper'] },
        { to: 'unitPrice', from: 'price', type: 'decimal', required: true },
        { to: 'discount', from: 'discount', type: 'decimal', default: '0' },
        { to: 'taxRate', from: 'tax_rate', type: 'decimal' },
        { to: 'warehouse', from: 'warehouse', default: 'MAIN' },
        { to: 'remark', from: 'remark', type: 'string' },
      ],
    },
  ],
})

function makeDocument(n: number) {
  return {
    order_id: `SO-${n}`,
    account: { id: `ACC-${n % 97}`, name: `  Customer ${n % 97}  `, tax_id: `91330100MA${n}` },
    currency_code: String(1 + (n % 3)),
    status: n % 5 === 0 ? '99' : '20',
    owner: `rep-${n % 7}`,
    created_at: '2026-11-26T16:00:00+08:00',
    delivery_date: '2026-12-03',
    ship_to: { name: 'Warehouse receiving', phone: '+86 571 8888 0000', address: `${n} Wensan Road`, city: 'Hangzhou', province: 'Zhejiang', postcode: '310000' },
    discount: '5.00',
    freight: '12.50',
    priority: n % 4,
    items: Array.from({ length: 10 }, (_, i) => ({
      line_no: i + 1,
      product_code: `SKU-${100 + ((n + i) % 50)}`,
      product_name: ` Product ${i} `,
      qty: 1 + ((n + i) % 9),
      unit: 'pcs',
      price: `${10 + ((n * 7 + i) % 500)}.${String((n + i) % 100).padStart(2, '0')}`,
      tax_rate: '0.13',
      ...(i % 3 === 0 ? { warehouse: 'HZ01' } : {}),
      remark: i % 2 ? 'gift wrap' : undefined,
    })),
  }
}

// ---- the same mapping, hand-written ----
const decimalPattern = /^-?\d+(\.\d+)?$/
const isoDateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/
const isoDate = /^\d{4}-\d{2}-\d{2}$/
const currencies: Record<string, string> = { '1': 'CNY', '2': 'USD', '3': 'EUR' }
const statuses: Record<string, string> = { '10': 'draft', '20': 'confirmed', '30': 'cancelled' }
const empty = (v: unknown) => v === undefined || v === null || v === ''
const str = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined)
const dec = (v: unknown) => (typeof v === 'string' && decimalPattern.test(v.trim()) ? v.trim() : typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : undefined)
const int = (v: unknown) => {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : undefined
}

function handWritten(d: any): MappingResult {
  const errors: { target: string; source?: string; value?: unknown; message: string }[] = []
  const o: any = {}
  const need = (target: string, source: string, v: unknown, coerced: unknown, message: string) => {
    if (coerced === undefined) errors.push({ target, source, value: v, message })
    return coerced
  }
  if (empty(d?.order_id)) errors.push({ target: 'externalId', source: 'order_id', message: 'is required' })
  else o.externalId = need('externalId', 'order_id', d.order_id, str(d.order_id), 'is not a string')
  const account = d?.account
  o.customer = {}
  if (empty(account?.id)) errors.push({ target: 'customer.externalId', source: 'account.id', message: 'is required' })
  else o.customer.externalId = need('customer.externalId', 'account.id', account.id, str(account.id), 'is not a string')
  if (!empty(account?.name)) o.customer.name = typeof account.name === 'string' ? account.name.trim() : need('customer.name', 'account.name', account.name, undefined, 'is not a string')
  if (!empty(account?.tax_id)) o.customer.taxId = need('customer.taxId', 'account.tax_id', account.tax_id, str(account.tax_id), 'is not a string')
  if (!empty(d?.currency_code)) {
    const c = currencies[String(d.currency_code)]
    if (c === undefined) errors.push({ target: 'currency', source: 'currency_code', value: d.currency_code, message: 'has no entry in the value map' })
    else o.currency = c
  }
  if (!empty(d?.status)) o.status = statuses[String(d.status)] ?? d.status
  if (!empty(d?.owner)) o.owner = need('owner', 'owner', d.owner, str(d.owner), 'is not a string')
  if (!empty(d?.created_at)) {
    const v = d.created_at
    o.orderedAt = typeof v === 'string' && isoDateTime.test(v) ? new Date(v).toISOString() : need('orderedAt', 'created_at', v, undefined, 'is not an ISO 8601 date-time')
  }
  if (!empty(d?.delivery_date)) o.deliveryDate = need('deliveryDate', 'delivery_date', d.delivery_date, typeof d.delivery_date === 'string' && isoDate.test(d.delivery_date) ? d.delivery_date : undefined, 'is not an ISO 8601 date')
  const s = d?.ship_to
  o.shipTo = { address: {} }
  if (!empty(s?.name)) o.shipTo.name = str(s.name)
  if (!empty(s?.phone)) o.shipTo.phone = str(s.phone)
  if (!empty(s?.address)) o.shipTo.address.line1 = str(s.address)
  if (!empty(s?.city)) o.shipTo.address.city = str(s.city)
  if (!empty(s?.province)) o.shipTo.address.province = str(s.province)
  if (!empty(s?.postcode)) o.shipTo.address.postcode = str(s.postcode)
  o.shipTo.address.country = empty(s?.country) ? 'CN' : s.country
  o.discount = empty(d?.discount) ? '0' : need('discount', 'discount', d.discount, dec(d.discount), 'is not a decimal')
  if (!empty(d?.freight)) o.freight = need('freight', 'freight', d.freight, dec(d.freight), 'is not a decimal')
  o.priority = empty(d?.priority) ? 3 : need('priority', 'priority', d.priority, int(d.priority), 'is not an integer')
  o.channel = 'crm'
  const items = d?.items
  if (!Array.isArray(items)) errors.push({ target: 'lines', source: 'items', message: 'is required' })
  else {
    if (!items.length) errors.push({ target: 'lines', source: 'items', message: 'must not be empty' })
    o.lines = items.map((it: any, i: number) => {
      const l: any = {}
      const t = (f: string) => `lines[${i}].${f}`
      const src = (f: string) => `items[${i}].${f}`
      if (empty(it?.line_no)) errors.push({ target: t('lineNo'), source: src('line_no'), message: 'is required' })
      else l.lineNo = need(t('lineNo'), src('line_no'), it.line_no, int(it.line_no), 'is not an integer')
      if (empty(it?.product_code)) errors.push({ target: t('sku'), source: src('product_code'), message: 'is required' })
      else l.sku = need(t('sku'), src('product_code'), it.product_code, str(it.product_code), 'is not a string')
      if (!empty(it?.product_name)) l.name = typeof it.product_name === 'string' ? it.product_name.trim() : need(t('name'), src('product_name'), it.product_name, undefined, 'is not a string')
      if (empty(it?.qty)) errors.push({ target: t('quantity'), source: src('qty'), message: 'is required' })
      else l.quantity = need(t('quantity'), src('qty'), it.qty, dec(it.qty), 'is not a decimal')
      if (!empty(it?.unit)) l.unit = typeof it.unit === 'string' ? it.unit.toUpperCase() : need(t('unit'), src('unit'), it.unit, undefined, 'is not a string')
      if (empty(it?.price)) errors.push({ target: t('unitPrice'), source: src('price'), message: 'is required' })
      else l.unitPrice = need(t('unitPrice'), src('price'), it.price, dec(it.price), 'is not a decimal')
      l.discount = empty(it?.discount) ? '0' : need(t('discount'), src('discount'), it.discount, dec(it.discount), 'is not a decimal')
      if (!empty(it?.tax_rate)) l.taxRate = need(t('taxRate'), src('tax_rate'), it.tax_rate, dec(it.tax_rate), 'is not a decimal')
      l.warehouse = empty(it?.warehouse) ? 'MAIN' : it.warehouse
      if (!empty(it?.remark)) l.remark = need(t('remark'), src('remark'), it.remark, str(it.remark), 'is not a string')
      return l
    })
  }
  return errors.length ? { ok: false, errors } : { ok: true, value: o }
}

// ---- the same mapping, as JSONata ----
const jsonataMapping = jsonata(`(
  $currencies := {"1": "CNY", "2": "USD", "3": "EUR"};
  $statuses := {"10": "draft", "20": "confirmed", "30": "cancelled"};
  {
    "externalId": $string(order_id),
    "customer": { "externalId": $string(account.id), "name": $trim(account.name), "taxId": account.tax_id },
    "currency": $lookup($currencies, $string(currency_code)),
    "status": $exists($lookup($statuses, status)) ? $lookup($statuses, status) : status,
    "owner": owner,
    "orderedAt": $fromMillis($toMillis(created_at)),
    "deliveryDate": delivery_date,
    "shipTo": { "name": ship_to.name, "phone": ship_to.phone,
      "address": { "line1": ship_to.address, "city": ship_to.city, "province": ship_to.province, "postcode": ship_to.postcode,
                   "country": $exists(ship_to.country) ? ship_to.country : "CN" } },
    "discount": $exists(discount) ? discount : "0",
    "freight": freight,
    "priority": $exists(priority) ? priority : 3,
    "channel": "crm",
    "lines": [items.{
      "lineNo": line_no, "sku": $string(product_code), "name": $trim(product_name), "quantity": $string(qty),
      "unit": $uppercase(unit), "unitPrice": price, "discount": $exists(discount) ? discount : "0", "taxRate": tax_rate,
      "warehouse": $exists(warehouse) ? warehouse : "MAIN", "remark": remark
    }]
  }
)`)

const compiled = compileMapping(spec)
const documents = Array.from({ length: Math.min(documentCount, 10_000) }, (_, i) => makeDocument(i))

// The three must agree before any of them is timed.
for (const doc of documents.slice(0, 200)) {
  const a = compiled.apply(doc) as MappingResult
  const b = handWritten(doc)
  if (!isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)))) {
    throw new Error(`compiled and hand-written disagree on ${doc.order_id}:\n${JSON.stringify(a)}\n${JSON.stringify(b)}`)
  }
}
const fromJsonata = JSON.parse(JSON.stringify(await jsonataMapping.evaluate(documents[1])))
const fromCompiled = JSON.parse(JSON.stringify((compiled.apply(documents[1]) as { value: unknown }).value))
if (!isDeepStrictEqual(fromJsonata, fromCompiled)) throw new Error(`JSONata and compiled disagree:\n${JSON.stringify(fromJsonata)}\n${JSON.stringify(fromCompiled)}`)

let sink = 0
function timeSync(fn: (doc: unknown) => unknown, count: number): number {
  const started = process.hrtime.bigint()
  for (let i = 0; i < count; i++) if (fn(documents[i % documents.length]) !== undefined) sink++
  return count / (Number(process.hrtime.bigint() - started) / 1e9)
}
async function timeAsync(fn: (doc: unknown) => Promise<unknown>, count: number): Promise<number> {
  const started = process.hrtime.bigint()
  for (let i = 0; i < count; i++) if ((await fn(documents[i % documents.length])) !== undefined) sink++
  return count / (Number(process.hrtime.bigint() - started) / 1e9)
}

const best = { compiled: 0, handWritten: 0, jsonata: 0 }
// JSONata is ~100x slower; a smaller sample keeps the run short and its rate is just as stable.
const jsonataCount = Math.max(1_000, Math.floor(documentCount / 50))
timeSync((d) => compiled.apply(d), 20_000)
timeSync(handWritten, 20_000)
for (let r = 0; r < rounds; r++) {
  // Alternating order each round, so neither gets the warmer caches.
  const order = r % 2 ? (['handWritten', 'compiled'] as const) : (['compiled', 'handWritten'] as const)
  for (const way of order) {
    const rate = way === 'compiled' ? timeSync((d) => compiled.apply(d), documentCount) : timeSync(handWritten, documentCount)
    best[way] = Math.max(best[way], rate)
  }
  best.jsonata = Math.max(best.jsonata, await timeAsync((d) => jsonataMapping.evaluate(d), jsonataCount))
  console.log(`round ${r + 1}: compiled ${best.compiled.toFixed(0)}/s, hand-written ${best.handWritten.toFixed(0)}/s, JSONata ${best.jsonata.toFixed(0)}/s (best so far)`)
}

const ratio = best.compiled / best.handWritten
const figures = {
  bench: 'mapping',
  fields: 30,
  linesPerDocument: 10,
  documents: documentCount,
  rounds,
  docsPerSec: { compiled: Math.round(best.compiled), handWritten: Math.round(best.handWritten), jsonata: Math.round(best.jsonata) },
  compiledVsHandWritten: Number(ratio.toFixed(3)),
  compiledVsJsonata: Number((best.compiled / best.jsonata).toFixed(1)),
  target: { compiledVsHandWritten: target },
  met: ratio >= target,
  node: process.version,
}
console.log(`compiled mapping at ${(ratio * 100).toFixed(0)}% of the hand-written function (target ${target * 100}%), ${figures.compiledVsJsonata}x JSONata`)
if (sink < 0) console.log(sink)
console.log(JSON.stringify(figures))
