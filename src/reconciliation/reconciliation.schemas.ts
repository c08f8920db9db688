/**
 * Reconciliation's vocabulary: the drift kinds, the policy per kind, the configuration section
 * (`reconciliation:` in the connections file) and the on-demand run request. Schemas only: no I/O,
 * and nothing here imports from the rest of orderbridge (config.ts imports it).
 */
import { z } from 'zod'

export const driftKinds = [
  'missing_in_target',
  'orphan_in_target',
  'amount_mismatch',
  'line_mismatch',
  'state_mismatch',
  'duplicate_in_target',
  'stock_mismatch',
  'invoice_mismatch',
] as const
export type DriftKind = (typeof driftKinds)[number]

/** What a run does about a discrepancy it found: mend it through the pipeline, or only record it. */
export const policyChoiceSchema = z.enum(['repair', 'report'])
export type PolicyChoice = z.infer<typeof policyChoiceSchema>

/**
 * The default policy repairs only what the pipeline can redo safely and idempotently: a sales order
 * missing in the ERP is synced again, and a state the target missed (a cancellation, the CRM's
 * status) is sent again. Money, lines, stock, duplicates and orphans wait for a person.
 */
export const policySchema = z.object({
  missing_in_target: policyChoiceSchema.default('repair'),
  orphan_in_target: policyChoiceSchema.default('report'),
  amount_mismatch: policyChoiceSchema.default('report'),
  line_mismatch: policyChoiceSchema.default('report'),
  state_mismatch: policyChoiceSchema.default('repair'),
  duplicate_in_target: policyChoiceSchema.default('report'),
  stock_mismatch: policyChoiceSchema.default('report'),
  invoice_mismatch: policyChoiceSchema.default('report'),
})
export type ReconciliationPolicy = z.infer<typeof policySchema>

const durationPattern = /^([1-9]\d{0,5})([mhdw])$/
const unitMs = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const

/** `30m`, `12h`, `7d`, `2w` → milliseconds; undefined for anything else. */
export function durationMs(text: string): number | undefined {
  const match = durationPattern.exec(text)
  return match ? Number(match[1]) * unitMs[match[2] as keyof typeof unitMs] : undefined
}

export const durationSchema = z.string().regex(durationPattern, 'a duration such as 30m, 12h, 7d or 2w')

const cronPattern = /^\S+(\s+\S+){4,5}$/
const decimalPattern = /^\d+(\.\d+)?$/

export const reconciliationSettingsSchema = z.object({
  schedule: z
    .string()
    .refine((text) => cronPattern.test(text.trim()) || durationMs(text) !== undefined, 'a cron pattern such as "0 3 * * *", or an interval such as 6h')
    .optional()
    .describe('When each connection is reconciled on its own: a cron pattern (UTC) or an interval; unset: only on demand'),
  window: durationSchema.default('7d').describe('Scheduled runs, and on-demand runs that name neither `since` nor `orderIds`, compare the orders updated in this window'),
  tolerance: z
    .string()
    .regex(decimalPattern, 'a non-negative decimal string such as "0.01"')
    .default('0')
    .describe('Amounts are compared to the cent; they may differ by this much (in the order currency) before it is an amount_mismatch'),
  batchSize: z.number().int().min(10).max(5000).default(500).describe('Orders per page: one query and one batched call per target for each page'),
  policy: policySchema.prefault({}).describe('repair or report, per drift kind'),
})
export type ReconciliationSettings = z.infer<typeof reconciliationSettingsSchema>

export const defaultReconciliationSettings = (): ReconciliationSettings => reconciliationSettingsSchema.parse({})

/** `POST /api/v1/reconciliations`: a window (`since`: a duration back from now, an ISO time, or `all`) or a list of orders. */
export const runRequestSchema = z
  .object({
    since: z
      .union([durationSchema, z.iso.datetime({ offset: true }), z.literal('all')])
      .optional()
      .describe('Orders updated since then: 7d, an ISO 8601 time, or all; default: the configured window'),
    orderIds: z.array(z.uuid()).min(1).max(10_000).optional().describe('Instead of a window: these orders'),
    connections: z.array(z.string().min(1)).min(1).max(50).optional().describe('Only these connections; default: every connection that can be reconciled'),
  })
  .refine((body) => body.since === undefined || body.orderIds === undefined, { message: 'give since or orderIds, not both', path: ['orderIds'] })
export type RunRequest = z.infer<typeof runRequestSchema>

/** Where a window starts: `7d` before `now`, an ISO time, or null for `all`. */
export function windowStart(since: string, now: Date): Date | null {
  if (since === 'all') return null
  const ms = durationMs(since)
  return ms !== undefined ? new Date(now.getTime() - ms) : new Date(since)
}

/** The job a reconciliation worker runs: a run already recorded, or a connection's scheduled run. */
export const reconciliationJobSchema = z.object({
  runId: z.number().int().positive().optional(),
  connectionId: z.string().min(1).optional(),
  correlationId: z.string(),
})
export type ReconciliationJob = z.infer<typeof reconciliationJobSchema>
