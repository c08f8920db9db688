import { z } from 'zod'

export const trytonConnectorId = 'tryton'

const decimalText = z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal string such as "0" or "5000.00"')

export const pollSettingsSchema = z.object({
  intervalMs: z.number().int().min(200).default(15_000).describe('How often shipments and invoices are read for changes, in milliseconds.'),
  settleMs: z
    .number()
    .int()
    .min(0)
    .default(5_000)
    .describe(
      'Changes younger than this wait for the next poll. Tryton stamps write_date with the start of its transaction, so a slow transaction can commit a change stamped earlier than one already read; this window lets it land first. Also covers clock skew between orderbridge and the Tryton server.',
    ),
  since: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('Where the first poll starts (ISO 8601). Default: now, so history is not replayed.'),
  deliveredOnDone: z
    .boolean()
    .default(true)
    .describe('Tryton has no delivery confirmation for customer shipments: report `order.delivered` as soon as the shipment is done. Set false when a carrier or the CRM reports delivery.'),
})

export const settingsSchema = z.object({
  url: z.url({ protocol: /^https?$/ }).describe('Base URL of the Tryton server, e.g. http://127.0.0.1:8000/ (JSON-RPC goes to <url>/<database>/).'),
  database: z.string().min(1).describe('The Tryton database name.'),
  username: z.string().min(1).describe('The Tryton login of the API user (not an administrator: see README, User rights).'),
  language: z.string().min(2).default('en').describe('Language code for login and messages.'),
  timeoutMs: z.number().int().positive().default(30_000).describe('How long one JSON-RPC call may take before it is abandoned, in milliseconds.'),
  companyId: z.number().int().positive().optional().describe('The company (id) every call works in. Default: the API user\'s current company.'),
  warehouseId: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('The warehouse (stock.location id of type warehouse) sales ship from and stock is read in. Default: the only warehouse, if there is exactly one.'),
  paymentTermId: z.number().int().positive().optional().describe('Payment term (id) for customers that have none of their own.'),
  sessionTtlMs: z
    .number()
    .int()
    .positive()
    .default(12 * 3_600_000)
    .describe('How long a login is reused before logging in again (Tryton keeps sessions up to [session] max_age, 30 days by default; an expired one is renewed on the spot).'),
  customers: z
    .object({
      create: z.boolean().default(true).describe('Create a party (code = our customer reference) when none has that code yet.'),
    })
    .prefault({})
    .describe('How customers (parties) are found: by party code = the CRM account id.'),
  credit: z
    .object({
      limitWhenUnset: decimalText
        .default('0')
        .describe('The limit reported for a party without a credit limit (Tryton reads that as "no limit"). "0" makes finance decide every order of such a customer.'),
    })
    .prefault({}),
  poll: pollSettingsSchema.optional().describe('Polling for shipments, invoices and payments (Tryton does not push). Leave out to not poll.'),
})

export const secretsSchema = z.object({
  password: z.string().min(1).describe('Password of the Tryton API user.'),
})

export type TrytonSettings = z.infer<typeof settingsSchema>
export type TrytonSecrets = z.infer<typeof secretsSchema>
export type TrytonPollSettings = z.infer<typeof pollSettingsSchema>
