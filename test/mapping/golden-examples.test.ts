/**
 * Every shipped mapping against its golden examples in mappings/examples/<id>/. Inbound mappings
 * must produce an order the pipeline accepts; outbound examples must start from an order the
 * pipeline could have produced (our id, and totals as withTotals computes them).
 */
import { readdirSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import { describeDifference } from '../../src/cli/mappings-command.ts'
import { compileMapping } from '../../src/mapping/compile-mapping.ts'
import { defaultExamplesDir, loadExamples, runExamples } from '../../src/mapping/golden-examples.ts'
import { loadMappingFiles } from '../../src/mapping/mapping-catalog.ts'
import { mappedOrderSchema, withTotals } from '../../src/orders/order.schemas.ts'

const files = loadMappingFiles()
const isInbound = (id: string) => id.includes('.to-canonical.')
const isOutbound = (id: string) => id.startsWith('canonical.')
const isErrors = (expected: unknown) => typeof expected === 'object' && expected !== null && '$errors' in expected

describe.each(files.map(({ file, spec }) => ({ file, spec, id: spec.id })))('mapping $id', ({ spec }) => {
  const examples = loadExamples(spec.id)
  const mapping = compileMapping(spec)

  it('has golden examples, at least one of them a success', () => {
    expect(examples.map((e) => e.name)).not.toEqual([])
    expect(examples.some((e) => !isErrors(e.expected))).toBe(true)
  })

  it('passes every golden example', async () => {
    const failures = (await runExamples(mapping, examples))
      .filter((o) => !o.passed)
      .map((o) => `${spec.id}/${o.name}:\n${o.differences.map((d) => `  ${describeDifference(d)}`).join('\n')}`)
    expect(failures).toEqual([])
  })

  // Only inbound mappings produce canonical orders, and only outbound ones start from them.
  if (isInbound(spec.id)) it('produces canonical orders the pipeline accepts', async () => {
    for (const example of examples.filter((e) => !isErrors(e.expected))) {
      const result = await mapping.apply(example.input, { lookups: example.lookups })
      if (!result.ok) throw new Error(`${example.name} did not map`)
      const parsed = mappedOrderSchema.safeParse(result.value)
      expect(parsed.error?.issues ?? [], example.name).toEqual([])
    }
  })

  if (isOutbound(spec.id)) it('starts from canonical orders with our id and exact totals', () => {
    for (const example of examples) {
      const { id, ...order } = example.input as { id: unknown }
      expect(id, example.name).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
      expect(order, example.name).toEqual(withTotals(mappedOrderSchema.parse(order)))
    }
  })
})

it('has no examples folder without a mapping', () => {
  const ids = new Set(files.map((f) => f.spec.id))
  const folders = readdirSync(defaultExamplesDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)
  expect(folders.filter((f) => !ids.has(f))).toEqual([])
})

it('keeps the demo CRM sample equal to the order the demo CRM sends', () => {
  const [sample] = loadExamples('demo-crm.to-canonical.order').filter((e) => e.name === 'sample')
  expect(sample?.input).toEqual(sampleOrder(1, 'SO-1001'))
})
