/**
 * Reports for dashboards and finance: orders received in a range, grouped, with exact amounts per
 * currency and how long they took; and sync health per connection and operation. JSON, or CSV
 * (RFC 4180, a header row) with `Accept: text/csv` or `?format=csv`. Who may call is in
 * src/auth/route-policy.ts. Reads only, through reports.repository.ts.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Database } from '../db/database.ts'
import { instant, rangeEnd } from '../status/query-params.ts'
import { parseQuery } from '../status/status.routes.ts'
import { toCsv, type CsvColumn } from './csv.ts'
import { orderGroupings, ordersReport, syncReport, type OrderGroup, type Range, type SyncRow } from './reports.repository.ts'

export interface ReportRoutesOptions {
  db: Database
}

const defaultDays = 30
const maxDays = 366
const day = 86_400_000

const rangeQuery = {
  from: instant.optional().describe(`start, inclusive: a date (UTC midnight) or a date-time; default ${defaultDays} days before to`),
  to: rangeEnd.optional().describe('end, exclusive; a date means the end of that day; default now'),
  format: z.enum(['json', 'csv']).optional().describe('or Accept: text/csv'),
}

/** The range asked for, with its defaults, checked at the field that is wrong. */
function resolveRange<Q extends { from?: Date | undefined; to?: Date | undefined }>(q: Q, ctx: z.RefinementCtx): Q & { range: Range } {
  const to = q.to ?? new Date()
  const from = q.from ?? new Date(to.getTime() - defaultDays * day)
  if (from >= to) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be after from' })
  else if (to.getTime() - from.getTime() > maxDays * day) ctx.addIssue({ code: 'custom', path: ['from'], message: `a report covers ${maxDays} days at most` })
  return { ...q, range: { from, to } }
}

const ordersQuery = z
  .strictObject({
    ...rangeQuery,
    groupBy: z.enum(orderGroupings).default('day'),
    currency: z.string().regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code such as CNY').optional(),
  })
  .transform(resolveRange)

const syncQuery = z.strictObject(rangeQuery).transform(resolveRange)

const wantsCsv = (req: FastifyRequest, format: 'json' | 'csv' | undefined) => (format ? format === 'csv' : /\btext\/csv\b/i.test(req.headers.accept ?? ''))

function sendCsv(reply: FastifyReply, name: string, range: Range, body: string) {
  const stamp = (d: Date) => d.toISOString().replace(/[:.]/g, '-')
  return reply
    .type('text/csv; charset=utf-8; header=present')
    .header('content-disposition', `attachment; filename="${name}-${stamp(range.from)}-${stamp(range.to)}.csv"`)
    .send(body)
}

const orderColumns: CsvColumn<OrderGroup>[] = [
  { header: 'group', value: (g) => g.group },
  { header: 'currency', value: (g) => g.currency },
  { header: 'orders', value: (g) => g.orders },
  { header: 'total', value: (g) => g.total },
  { header: 'paid', value: (g) => g.paid },
  ...(['toSynced', 'toShipped', 'toPaid'] as const).flatMap((track): CsvColumn<OrderGroup>[] => [
    { header: `${track}Count`, value: (g) => g[track].count },
    { header: `${track}P50Seconds`, value: (g) => g[track].p50 },
    { header: `${track}P95Seconds`, value: (g) => g[track].p95 },
  ]),
]

const syncColumns: CsvColumn<SyncRow>[] = (
  ['connection', 'operation', 'attempts', 'succeeded', 'failed', 'successRate', 'retries', 'deadLetters', 'needsAttention', 'meanLatencyMs', 'p95LatencyMs', 'breakerOpenings'] as const
).map((key) => ({ header: key, value: (row: SyncRow) => row[key] }))

export const reportRoutes: FastifyPluginAsync<ReportRoutesOptions> = async (app, { db }) => {
  app.get('/reports/orders', async (req, reply) => {
    const q = parseQuery(ordersQuery, req, reply)
    if (!q) return reply
    const report = await ordersReport(db, q.groupBy, q.range, q.currency)
    if (wantsCsv(req, q.format)) return sendCsv(reply, `orders-by-${q.groupBy}`, q.range, toCsv(report.groups, orderColumns))
    return report
  })

  app.get('/reports/sync', async (req, reply) => {
    const q = parseQuery(syncQuery, req, reply)
    if (!q) return reply
    const report = await syncReport(db, q.range)
    if (wantsCsv(req, q.format)) return sendCsv(reply, 'sync', q.range, toCsv(report.rows, syncColumns))
    return report
  })
}
