import { z } from 'zod'

/** Dot paths with array indexes: `account.id`, `items[0].qty`. */
const pathSchema = z.string().regex(/^[A-Za-z_$][\w$-]*(\[\d+\])*(\.[A-Za-z_$][\w$-]*(\[\d+\])*)*$/, 'a dot path such as account.id or items[0].qty')

export const valueTypes = ['string', 'integer', 'decimal', 'boolean', 'datetime'] as const
export type ValueType = (typeof valueTypes)[number]

export const fieldSpecSchema = z
  .object({
    to: pathSchema,
    from: pathSchema.optional(),
    constant: z.unknown().optional(),
    default: z.unknown().optional(),
    required: z.boolean().default(false),
    type: z.enum(valueTypes).optional(),
  })
  .refine((f) => (f.from === undefined) !== (f.constant === undefined), { message: 'give exactly one of from or constant' })
export type FieldSpec = z.infer<typeof fieldSpecSchema>

export const childSpecSchema = z.object({
  from: pathSchema,
  to: pathSchema,
  /** The source array must have at least one element. */
  required: z.boolean().default(false),
  fields: z.array(fieldSpecSchema).min(1),
})
export type ChildSpec = z.infer<typeof childSpecSchema>

export const mappingSpecSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, 'lower-case letters, digits, . and -'),
  description: z.string().optional(),
  fields: z.array(fieldSpecSchema).default([]),
  children: z.array(childSpecSchema).default([]),
})
export type MappingSpec = z.infer<typeof mappingSpecSchema>

/** One failure, naming the target field, the source path and the value. */
export interface MappingError {
  target: string
  source?: string
  value?: unknown
  message: string
}

export type MappingResult = { ok: true; value: Record<string, unknown> } | { ok: false; errors: MappingError[] }
