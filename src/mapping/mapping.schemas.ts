/**
 * The mapping language: one zod schema for files, the admin API and the CLI. A mapping turns a
 * source document into a target document, field by field; docs/MAPPINGS.md is the guide.
 */
import { z } from 'zod'

/** Dot paths with array indexes: `account.id`, `items[0].qty`. */
export const pathSchema = z
  .string()
  .regex(/^[A-Za-z_$][\w$-]*(\[\d+\])*(\.[A-Za-z_$][\w$-]*(\[\d+\])*)*$/, 'a dot path such as account.id or items[0].qty')

export const valueTypes = ['string', 'integer', 'decimal', 'boolean', 'date', 'datetime'] as const
export type ValueType = (typeof valueTypes)[number]

/** How a date or date-time arrives: ISO 8601 (default), Unix time, or a pattern such as `yyyy-MM-dd HH:mm:ss`. */
export const dateFormatSchema = z.union([
  z.enum(['iso', 'epoch-ms', 'epoch-s']),
  z.string().regex(/^(?=.*yyyy)[yMdHhmsS :/.T-]+$/, 'a pattern built from yyyy MM dd HH mm ss SSS'),
])

const timeZoneSchema = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz })
    return true
  } catch {
    return false
  }
}, 'an IANA time zone such as Asia/Shanghai')

const scaleSchema = z.number().int().min(0).max(12)

/** Named transforms, applied in order after type coercion, value map and lookup. */
export const transformSchema = z.union([
  z.enum(['trim', 'upper', 'lower']),
  z.strictObject({ concat: z.string().describe('separator placed between the non-empty values of a list') }),
  z.strictObject({ split: z.string().min(1).describe('separator; the parts are trimmed') }),
  z.strictObject({ round: scaleSchema.describe('decimal places, half away from zero') }),
  z.strictObject({ minorUnits: scaleSchema.describe('a decimal amount to integer minor units, e.g. 2 for cents') }),
  z.strictObject({ fromMinorUnits: scaleSchema.describe('integer minor units to a decimal amount') }),
  z.strictObject({ multiply: z.string().regex(/^-?\d+(\.\d+)?$/, 'a decimal string').describe('exact unit conversion factor') }),
  z.strictObject({ formatDate: z.strictObject({ pattern: dateFormatSchema, timezone: timeZoneSchema.default('UTC') }) }),
  z.strictObject({ substring: z.tuple([z.number().int().min(0)]).or(z.tuple([z.number().int().min(0), z.number().int().min(0)])) }),
  z.strictObject({ replace: z.tuple([z.string().min(1), z.string()]).describe('[search, replacement]: every literal occurrence') }),
])
export type Transform = z.infer<typeof transformSchema>

/** A condition on the current source document (or list element). */
export const conditionSchema = z.union([
  z.strictObject({ path: pathSchema, equals: z.unknown() }),
  z.strictObject({ path: pathSchema, notEquals: z.unknown() }),
  z.strictObject({ path: pathSchema, in: z.array(z.unknown()).min(1) }),
  z.strictObject({ path: pathSchema, exists: z.boolean() }),
  z.strictObject({ expression: z.string().min(1).describe('a JSONata expression; the field applies when it is truthy') }),
])
export type Condition = z.infer<typeof conditionSchema>

export const fallbacks = ['error', 'keep', 'default'] as const

export interface FieldSpec {
  to: string
  from?: string | string[]
  constant?: unknown
  expression?: string
  default?: unknown
  required: boolean
  type?: ValueType
  format?: z.infer<typeof dateFormatSchema>
  timezone?: string
  map?: Record<string, unknown>
  lookup?: string
  fallback: (typeof fallbacks)[number]
  transform: Transform[]
  when?: Condition
  each?: FieldSpec[]
}

export const fieldSpecSchema: z.ZodType<FieldSpec, unknown> = z.lazy(() =>
  z
    .strictObject({
      to: pathSchema,
      from: z.union([pathSchema, z.array(pathSchema).min(2)]).optional(),
      constant: z.unknown().optional(),
      expression: z.string().min(1).optional().describe('JSONata, evaluated against the current source document'),
      default: z.unknown().optional(),
      required: z.boolean().default(false),
      type: z.enum(valueTypes).optional(),
      format: dateFormatSchema.optional(),
      timezone: timeZoneSchema.optional().describe('for date-times that arrive without an offset'),
      map: z.record(z.string(), z.unknown()).optional(),
      lookup: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, 'a lookup table name').optional(),
      fallback: z.enum(fallbacks).default('error').describe('when the value map or lookup has no entry'),
      transform: z.array(transformSchema).default([]),
      when: conditionSchema.optional(),
      each: z.array(fieldSpecSchema).min(1).optional().describe('maps every element of a source list with these fields'),
    })
    .superRefine((f, ctx) => {
      const sources = [f.from !== undefined, f.constant !== undefined, f.expression !== undefined].filter(Boolean).length
      if (sources !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of from, constant or expression' })
      if (f.each && (f.type || f.map || f.lookup || f.transform.length)) {
        ctx.addIssue({ code: 'custom', path: ['each'], message: 'a list field maps its elements with each; type, map, lookup and transform belong on the element fields' })
      }
      if ((f.format || f.timezone) && f.type !== 'date' && f.type !== 'datetime') {
        ctx.addIssue({ code: 'custom', path: ['format'], message: 'format and timezone need type date or datetime' })
      }
      if (f.fallback === 'default' && f.default === undefined) ctx.addIssue({ code: 'custom', path: ['default'], message: 'fallback: default needs a default value' })
      if (f.fallback !== 'error' && !f.map && !f.lookup) ctx.addIssue({ code: 'custom', path: ['fallback'], message: 'fallback applies to a map or a lookup' })
    }),
)

/** `children` is the older spelling of list fields: `{from, to, fields}` is `{from, to, each}`. */
const childSpecSchema = z.strictObject({
  from: pathSchema,
  to: pathSchema,
  required: z.boolean().default(false),
  when: conditionSchema.optional(),
  fields: z.array(fieldSpecSchema).min(1),
})

export const mappingSpecSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, 'lower-case letters, digits, . and -'),
    description: z.string().optional(),
    /** What the mapping reads and writes, for people and for the editor. */
    source: z.string().optional(),
    target: z.string().optional(),
    fields: z.array(fieldSpecSchema).default([]),
    children: z.array(childSpecSchema).default([]),
  })
  .transform(({ children, ...spec }) => ({
    ...spec,
    fields: [
      ...spec.fields,
      ...children.map((c): FieldSpec => ({ to: c.to, from: c.from, required: c.required, when: c.when, each: c.fields, fallback: 'error', transform: [] })),
    ],
  }))
export type MappingSpec = z.output<typeof mappingSpecSchema>
export type MappingSpecInput = z.input<typeof mappingSpecSchema>

/** One failure, naming the target field, the source path and the value. */
export interface MappingError {
  target: string
  source?: string
  value?: unknown
  message: string
}

export type MappingResult = { ok: true; value: Record<string, unknown> } | { ok: false; errors: MappingError[] }

/** Cross-reference tables, as a snapshot: table → key → value. Applying a mapping does no I/O. */
export type LookupTables = Readonly<Record<string, Readonly<Record<string, unknown>>>>

export interface MappingEnv {
  lookups?: LookupTables
}
