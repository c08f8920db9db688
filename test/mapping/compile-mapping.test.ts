import { describe, expect, it } from 'vitest'
import { compileMapping, describeMappingError, MappingCompileError } from '../../src/mapping/compile-mapping.ts'
import { loadMappingSpecs } from '../../src/mapping/mapping-catalog.ts'
import { mappingSpecSchema, type MappingEnv, type MappingSpecInput } from '../../src/mapping/mapping.schemas.ts'

const compile = (spec: Omit<MappingSpecInput, 'id'>) => compileMapping(mappingSpecSchema.parse({ id: 'test.mapping', ...spec }))
const run = async (spec: Omit<MappingSpecInput, 'id'>, input: unknown, env?: MappingEnv) => compile(spec).apply(input, env)
const errorsOf = async (spec: Omit<MappingSpecInput, 'id'>, input: unknown, env?: MappingEnv) => {
  const result = await run(spec, input, env)
  return result.ok ? [] : result.errors.map(describeMappingError)
}

describe('a compiled mapping', () => {
  it('maps paths, nested objects, array indexes, constants and defaults', async () => {
    const result = await run(
      {
        fields: [
          { to: 'externalId', from: 'order_id', type: 'string', required: true },
          { to: 'customer.externalId', from: 'account.id' },
          { to: 'firstSku', from: 'items[0].product_code' },
          { to: 'channel', constant: 'crm' },
          { to: 'priority', from: 'priority', type: 'integer', default: 3 },
          { to: 'tags[1]', constant: 'second' },
        ],
      },
      { order_id: 1001, account: { id: 'ACC-7' }, items: [{ product_code: 'SKU-1' }] },
    )
    expect(result).toEqual({ ok: true, value: { externalId: '1001', customer: { externalId: 'ACC-7' }, firstSku: 'SKU-1', channel: 'crm', priority: 3, tags: [undefined, 'second'] } })
  })

  it('coerces types and keeps money exact', async () => {
    const spec = {
      fields: [
        { to: 'qty', from: 'qty', type: 'integer' as const },
        { to: 'price', from: 'price', type: 'decimal' as const },
        { to: 'rush', from: 'rush', type: 'boolean' as const },
        { to: 'code', from: 'code', type: 'string' as const },
      ],
    }
    expect(await run(spec, { qty: '7', price: ' 19.90 ', rush: 'false', code: 42 })).toEqual({ ok: true, value: { qty: 7, price: '19.90', rush: false, code: '42' } })
    expect(await errorsOf(spec, { qty: 1.5, price: 19.9, rush: 'yes', code: {} })).toEqual([
      'qty: 1.5 is not an integer (from qty)',
      'price: 19.9 is a binary float; send decimals as strings (from price)',
      'rush: "yes" is not a boolean (from rush)',
      'code: {} is not a string (from code)',
    ])
  })

  it('reads dates and date-times in ISO, Unix time or a pattern, in a time zone', async () => {
    const spec = {
      fields: [
        { to: 'iso', from: 'iso', type: 'datetime' as const },
        { to: 'ms', from: 'ms', type: 'datetime' as const, format: 'epoch-ms' },
        { to: 'local', from: 'local', type: 'datetime' as const, format: 'yyyy-MM-dd HH:mm:ss', timezone: 'Asia/Shanghai' },
        { to: 'naive', from: 'naive', type: 'datetime' as const, timezone: 'America/New_York' },
        { to: 'day', from: 'ms', type: 'date' as const, format: 'epoch-ms', timezone: 'Asia/Shanghai' },
        { to: 'plainDay', from: 'plainDay', type: 'date' as const },
      ],
    }
    expect(
      await run(spec, { iso: '2026-11-26T16:00:00+08:00', ms: 1764172800000, local: '2026-11-27 00:30:00', naive: '2026-07-01T12:00:00', plainDay: '2026-02-28' }),
    ).toEqual({
      ok: true,
      value: {
        iso: '2026-11-26T08:00:00.000Z',
        ms: '2025-11-26T16:00:00.000Z',
        local: '2026-11-26T16:30:00.000Z',
        naive: '2026-07-01T16:00:00.000Z',
        day: '2025-11-27',
        plainDay: '2026-02-28',
      },
    })
    expect(await errorsOf(spec, { iso: '2026-11-26T16:00:00', local: '2026-13-01 00:00:00', plainDay: '2026-02-30' })).toEqual([
      'iso: "2026-11-26T16:00:00" is not an ISO 8601 date-time with a time zone (from iso)',
      'local: "2026-13-01 00:00:00" does not match the date format yyyy-MM-dd HH:mm:ss (from local)',
      'plainDay: "2026-02-30" is not a valid date (from plainDay)',
    ])
  })

  it('maps values with a declared fallback: error, keep or default', async () => {
    const values = { '1': 'CNY', '2': 'USD' }
    const spec = {
      fields: [
        { to: 'strict', from: 'code', map: values },
        { to: 'kept', from: 'code', map: values, fallback: 'keep' as const },
        { to: 'defaulted', from: 'code', map: values, fallback: 'default' as const, default: 'EUR' },
      ],
    }
    expect(await run(spec, { code: 1 })).toEqual({ ok: true, value: { strict: 'CNY', kept: 'CNY', defaulted: 'CNY' } })
    const result = await run(spec, { code: '9' })
    expect(result).toEqual({ ok: false, errors: [{ target: 'strict', source: 'code', value: '9', message: 'has no entry in the value map' }] })
    expect(await run({ fields: spec.fields.slice(1) }, { code: '9' })).toEqual({ ok: true, value: { kept: '9', defaulted: 'EUR' } })
  })

  it('applies the named transforms in order', async () => {
    const result = await run(
      {
        fields: [
          { to: 'name', from: 'name', transform: ['trim', 'upper'] },
          { to: 'email', from: 'email', transform: ['lower'] },
          { to: 'fullName', from: ['first', 'middle', 'last'], transform: [{ concat: ' ' }] },
          { to: 'tags', from: 'tags', transform: [{ split: ',' }] },
          { to: 'rounded', from: 'amount', type: 'decimal', transform: [{ round: 1 }] },
          { to: 'cents', from: 'amount', type: 'decimal', transform: [{ round: 2 }, { minorUnits: 2 }] },
          { to: 'fromCents', from: 'cents', transform: [{ fromMinorUnits: 2 }] },
          { to: 'grams', from: 'kg', type: 'decimal', transform: [{ multiply: '1000' }] },
          { to: 'kingdeeDate', from: 'at', type: 'datetime', transform: [{ formatDate: { pattern: 'yyyy-MM-dd HH:mm:ss', timezone: 'Asia/Shanghai' } }] },
          { to: 'prefix', from: 'sku', transform: [{ substring: [0, 3] }] },
          { to: 'plain', from: 'sku', transform: [{ replace: ['-', ''] }] },
        ],
      },
      { name: '  acme  ', email: 'Sales@Example.COM', first: 'Li', last: 'Wei', tags: 'vip, north ,', amount: '12.345', cents: 1999, kg: '1.25', at: '2026-11-26T16:30:00Z', sku: 'SKU-100-B' },
    )
    expect(result).toEqual({
      ok: true,
      value: {
        name: 'ACME',
        email: 'sales@example.com',
        fullName: 'Li Wei',
        tags: ['vip', 'north'],
        rounded: '12.3',
        cents: 1235,
        fromCents: '19.99',
        grams: '1250',
        kingdeeDate: '2026-11-27 00:30:00',
        prefix: 'SKU',
        plain: 'SKU100B',
      },
    })
    expect(await errorsOf({ fields: [{ to: 'cents', from: 'amount', type: 'decimal', transform: [{ minorUnits: 2 }] }] }, { amount: '1.005' })).toEqual([
      'cents: "1.005" has more than 2 decimal places (from amount)',
    ])
  })

  it('resolves lookups from the snapshot it is given', async () => {
    const spec = {
      fields: [
        { to: 'customerCode', from: 'account', lookup: 'crm-accounts', required: true },
        { to: 'warehouse', from: 'region', lookup: 'regions', fallback: 'default' as const, default: 'MAIN' },
      ],
    }
    const lookups = { 'crm-accounts': { 'ACC-7': 'C-0007' }, regions: { north: 'BJ01' } }
    expect(compile(spec).lookupTables).toEqual(['crm-accounts', 'regions'])
    expect(await run(spec, { account: 'ACC-7', region: 'north' }, { lookups })).toEqual({ ok: true, value: { customerCode: 'C-0007', warehouse: 'BJ01' } })
    expect(await run(spec, { account: 'ACC-7', region: 'south' }, { lookups })).toEqual({ ok: true, value: { customerCode: 'C-0007', warehouse: 'MAIN' } })
    expect(await errorsOf(spec, { account: 'ACC-9' }, { lookups })).toEqual(['customerCode: "ACC-9" is not in the lookup table crm-accounts (from account)'])
  })

  it('applies a field only when its condition holds', async () => {
    const spec = {
      fields: [
        { to: 'express', constant: true, when: { path: 'shipping', equals: 'express' } },
        { to: 'domestic', constant: true, when: { path: 'country', in: ['CN', 'HK'] } },
        { to: 'hasNote', constant: true, when: { path: 'note', exists: true } },
        { to: 'notDraft', constant: true, when: { path: 'status', notEquals: 'draft' } },
      ],
    }
    expect(await run(spec, { shipping: 'express', country: 'CN', status: 'draft' })).toEqual({ ok: true, value: { express: true, domestic: true } })
    expect(await run(spec, { shipping: 'ground', country: 'US', note: 'x' })).toEqual({ ok: true, value: { hasNote: true, notDraft: true } })
  })

  it('maps lists element by element, nested, with element paths in errors', async () => {
    const spec = {
      fields: [
        {
          to: 'lines',
          from: 'items',
          required: true,
          each: [
            { to: 'sku', from: 'product_code', required: true },
            { to: 'quantity', from: 'qty', type: 'decimal' as const, required: true },
            { to: 'serials', from: 'serials', each: [{ to: 'number', from: 'sn', required: true }] },
          ],
        },
      ],
    }
    expect(await run(spec, { items: [{ product_code: 'A', qty: 2, serials: [{ sn: 'S1' }, { sn: 'S2' }] }] })).toEqual({
      ok: true,
      value: { lines: [{ sku: 'A', quantity: '2', serials: [{ number: 'S1' }, { number: 'S2' }] }] },
    })
    expect(await errorsOf(spec, { items: [{ product_code: 'A', qty: 1 }, { qty: 'abc', serials: [{}, { sn: 'x' }, {}] }] })).toEqual([
      'lines[1].sku: is required (from items[1].product_code)',
      'lines[1].quantity: "abc" is not a decimal (from items[1].qty)',
      'lines[1].serials[0].number: is required (from items[1].serials[0].sn)',
      'lines[1].serials[2].number: is required (from items[1].serials[2].sn)',
    ])
    expect(await errorsOf(spec, { items: [] })).toEqual(['lines: must not be empty (from items)'])
    expect(await errorsOf(spec, { items: 'none' })).toEqual(['lines: "none" is not a list (from items)'])
    expect(await errorsOf(spec, {})).toEqual(['lines: is required (from items)'])
  })

  it('accepts children as the older spelling of list fields', async () => {
    const result = await run({ children: [{ from: 'items', to: 'lines', fields: [{ to: 'sku', from: 'code' }] }] }, { items: [{ code: 'A' }] })
    expect(result).toEqual({ ok: true, value: { lines: [{ sku: 'A' }] } })
  })

  it('evaluates JSONata expressions for what the rest cannot say', async () => {
    const spec = {
      fields: [
        { to: 'lineCount', expression: '$count(items)', type: 'integer' as const },
        { to: 'skus', expression: '$join(items.product_code, "|")' },
        { to: 'big', constant: true, when: { expression: '$count(items) > 1' } },
        { to: 'lines', from: 'items', each: [{ to: 'label', expression: 'product_code & " x" & $string(qty)' }] },
      ],
    }
    const mapping = compile(spec)
    expect(mapping.usesExpressions).toBe(true)
    expect(await mapping.apply({ items: [{ product_code: 'A', qty: 2 }, { product_code: 'B', qty: 1 }] })).toEqual({
      ok: true,
      value: { lineCount: 2, skus: 'A|B', big: true, lines: [{ label: 'A x2' }, { label: 'B x1' }] },
    })
    expect(await errorsOf({ fields: [{ to: 'x', expression: '$number("abc")', required: true }] }, {})).toEqual([
      expect.stringMatching(/^x: expression failed: .*abc/),
    ])
  })

  it('answers at once, without a Promise, when the mapping has no expressions', () => {
    const result = compile({ fields: [{ to: 'a', from: 'b' }] }).apply({ b: 1 })
    expect(result).toEqual({ ok: true, value: { a: 1 } })
  })

  it('refuses a spec that is ambiguous or cannot compile, naming the field', () => {
    const parsed = mappingSpecSchema.safeParse({
      id: 'bad',
      fields: [
        { to: 'a', from: 'b', constant: 1 },
        { to: 'not a path', from: 'x' },
        { to: 'c', from: 'c', fallback: 'keep' },
        { to: 'd', from: 'd', format: 'epoch-ms' },
        { to: 'e', from: 'e', transform: [{ round: -1 }] },
      ],
    })
    expect(parsed.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'fields.0: give exactly one of from, constant or expression',
      'fields.1.to: a dot path such as account.id or items[0].qty',
      'fields.2.fallback: fallback applies to a map or a lookup',
      'fields.3.format: format and timezone need type date or datetime',
      'fields.4.transform.0.round: Too small: expected number to be >=0',
    ])
    expect(() => compile({ fields: [{ to: 'a', expression: '$sum(' }] })).toThrow(MappingCompileError)
    expect(() => compile({ fields: [{ to: 'a', from: 'x' }, { to: 'a.b', from: 'y' }] })).toThrow('fields[1].to: clashes with a (fields[0])')
  })

  it('loads and compiles every shipped mapping', () => {
    for (const spec of loadMappingSpecs()) expect(compileMapping(spec).id).toBe(spec.id)
  })

  it('is not fooled by keys that look like code', async () => {
    const result = await run({ fields: [{ to: 'a', from: '__proto__' }, { to: 'b', constant: '"); process.exit(1); ("' }] }, JSON.parse('{"__proto__": {"x": 1}}'))
    expect(result).toEqual({ ok: true, value: { a: { x: 1 }, b: '"); process.exit(1); ("' } })
  })
})
