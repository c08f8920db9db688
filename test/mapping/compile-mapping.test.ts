import { describe, expect, it } from 'vitest'
import { compileMapping, describeMappingError } from '../../src/mapping/compile-mapping.ts'
import { loadMappingSpecs } from '../../src/mapping/mapping-catalog.ts'
import { mappingSpecSchema } from '../../src/mapping/mapping.schemas.ts'

const spec = mappingSpecSchema.parse({
  id: 'test.order',
  fields: [
    { to: 'externalId', from: 'order_id', type: 'string', required: true },
    { to: 'customer.externalId', from: 'account.id', required: true },
    { to: 'firstSku', from: 'items[0].product_code' },
    { to: 'channel', constant: 'crm' },
    { to: 'priority', from: 'priority', type: 'integer', default: 3 },
    { to: 'rush', from: 'rush', type: 'boolean' },
    { to: 'orderedAt', from: 'created_at', type: 'datetime' },
  ],
  children: [{ from: 'items', to: 'lines', required: true, fields: [{ to: 'sku', from: 'product_code', required: true }, { to: 'quantity', from: 'qty', type: 'decimal', required: true }] }],
})
const apply = compileMapping(spec)

describe('a compiled mapping', () => {
  it('maps paths, nested objects, array indexes, constants, defaults and coercions', () => {
    const result = apply({
      order_id: 1001,
      account: { id: 'ACC-7' },
      rush: 'true',
      created_at: '2026-11-26T16:00:00+08:00',
      items: [{ product_code: 'SKU-1', qty: 2 }, { product_code: 'SKU-2', qty: '1.5' }],
    })
    expect(result).toEqual({
      ok: true,
      value: {
        externalId: '1001',
        customer: { externalId: 'ACC-7' },
        firstSku: 'SKU-1',
        channel: 'crm',
        priority: 3,
        rush: true,
        orderedAt: '2026-11-26T08:00:00.000Z',
        lines: [{ sku: 'SKU-1', quantity: '2' }, { sku: 'SKU-2', quantity: '1.5' }],
      },
    })
  })

  it('names the target field, the source path and the value of every error', () => {
    const result = apply({ account: {}, created_at: 'yesterday', items: [{ product_code: 'A', qty: 1 }, { qty: 'abc' }, { product_code: 'C', qty: 0.1 }] })
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.errors.map(describeMappingError)).toEqual([
      'externalId: is required (from order_id)',
      'customer.externalId: is required (from account.id)',
      'orderedAt: "yesterday" is not an ISO 8601 date-time with a time zone (from created_at)',
      'lines[1].sku: is required (from items[1].product_code)',
      'lines[1].quantity: "abc" is not a decimal (from items[1].qty)',
      'lines[2].quantity: 0.1 is a binary float; send decimals as strings (from items[2].qty)',
    ])
  })

  it('requires a list where one is declared required', () => {
    const result = apply({ order_id: 'x', account: { id: 'a' }, items: [] })
    expect(result).toEqual({ ok: false, errors: [{ target: 'lines', source: 'items', message: 'must not be empty' }] })
    expect(apply({ order_id: 'x', account: { id: 'a' }, items: 'none' })).toEqual({ ok: false, errors: [{ target: 'lines', source: 'items', value: 'none', message: 'is not a list' }] })
  })

  it('refuses a spec that is ambiguous', () => {
    const parsed = mappingSpecSchema.safeParse({ id: 'bad', fields: [{ to: 'a', from: 'b', constant: 1 }, { to: 'not a path' , from: 'x' }] })
    expect(parsed.success).toBe(false)
    expect(parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'fields.0: give exactly one of from or constant',
      'fields.1.to: a dot path such as account.id or items[0].qty',
    ])
  })

  it('loads and compiles every shipped mapping', () => {
    const specs = loadMappingSpecs()
    expect(specs.map((s) => s.id).sort()).toEqual(['canonical.to-demo-erp.sales-order', 'demo-crm.to-canonical.order'])
    for (const s of specs) expect(typeof compileMapping(s)).toBe('function')
  })
})
