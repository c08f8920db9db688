/**
 * The approval rules admin API under /api/v1: the active rules, their versions, saving a new
 * version, activating an older one (rollback), and a preview of what an order would need. Reads
 * (and the preview, which changes nothing) for admin, ops and viewer; changes for admin: see
 * `approvalRuleRouteAccess`, which src/auth/route-policy.ts lists. Routes parse and answer;
 * approval-rule-versions.ts does the work, and evaluation is the same pure function the pipeline uses.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { z } from 'zod'
import type { Role } from '../auth/api-keys.ts'
import type { Database } from '../db/database.ts'
import { actorOf, parseBody } from '../mapping/mapping.routes.ts'
import { addDecimals, isDecimalString, multiplyDecimals, trimDecimal } from '../shared/decimal.ts'
import { errorBody } from '../shared/http-errors.ts'
import {
  activateApprovalRules,
  ApprovalRulesRefusal,
  findApprovalRulesVersion,
  listApprovalRulesVersions,
  loadActiveApprovalRules,
  parseApprovalPolicy,
  saveApprovalRules,
  type ApprovalRefusalCode,
} from './approval-rule-versions.ts'
import { currencyCodeSchema, type ApprovalOrderFacts, type ApprovalPolicy } from './approval-rules.schemas.ts'
import { decideCredit } from './credit-decision.ts'
import { evaluateApprovalRules } from './evaluate-approval-rules.ts'

export interface ApprovalRuleRoutesOptions {
  db: Database
}

const readers: readonly Role[] = ['admin', 'ops', 'viewer']
const admins: readonly Role[] = ['admin']

/** Who may call each route (`METHOD /path` as registered under /api/v1), for src/auth/route-policy.ts. */
export const approvalRuleRouteAccess: Readonly<Record<string, readonly Role[]>> = {
  'GET /api/v1/approval-rules': readers,
  'PUT /api/v1/approval-rules': admins,
  'GET /api/v1/approval-rules/versions': readers,
  'GET /api/v1/approval-rules/versions/:version': readers,
  'POST /api/v1/approval-rules/versions/:version/activate': admins,
  'POST /api/v1/approval-rules/evaluate': readers,
}

const statusOf: Record<ApprovalRefusalCode, number> = { not_found: 404, validation_failed: 422, not_configured: 404 }

async function answer<T>(reply: FastifyReply, work: () => Promise<T>, status: number | ((result: T) => number) = 200): Promise<FastifyReply> {
  try {
    const result = await work()
    return reply.code(typeof status === 'number' ? status : status(result)).send(result)
  } catch (err) {
    if (!(err instanceof ApprovalRulesRefusal)) throw err
    return reply.code(statusOf[err.code]).send(errorBody(err.code, err.message, err.details))
  }
}

const decimalString = z.string().refine(isDecimalString, 'must be a decimal string such as "199.00"')

/** The policy's own fields plus a comment; the policy is validated by parseApprovalPolicy. */
const saveRequestSchema = z.looseObject({ comment: z.string().max(1000).optional() })

/** An order as the preview takes it: a canonical order, or just what evaluation reads. */
export const previewOrderSchema = z
  .object({
    currency: currencyCodeSchema,
    total: decimalString.optional().describe('Computed from the lines when absent'),
    customer: z.object({ externalId: z.string().min(1) }),
    lines: z
      .array(z.object({ sku: z.string().min(1), quantity: decimalString.optional(), unitPrice: decimalString.optional(), discount: decimalString.optional() }))
      .min(1),
  })
  .superRefine((order, ctx) => {
    if (order.total !== undefined) return
    order.lines.forEach((line, i) => {
      if (line.quantity === undefined) ctx.addIssue({ code: 'custom', path: ['lines', i, 'quantity'], message: 'needed to compute the total (or give total)' })
      if (line.unitPrice === undefined) ctx.addIssue({ code: 'custom', path: ['lines', i, 'unitPrice'], message: 'needed to compute the total (or give total)' })
    })
  })

const creditSchema = z.object({ limit: decimalString, outstanding: decimalString, currency: currencyCodeSchema, overdue: z.boolean() })

const previewRequestSchema = z.object({
  order: previewOrderSchema,
  version: z.number().int().positive().max(2_147_483_647).optional().describe('A stored version; the active one when absent'),
  draft: z.unknown().optional().describe('A draft policy ({ rules, unmatchedCurrency? }) to try instead of a stored version'),
  credit: creditSchema.optional().describe("The customer's credit, to preview the automatic finance decision"),
})

function factsOf(order: z.infer<typeof previewOrderSchema>): ApprovalOrderFacts {
  const total = order.total ?? trimDecimal(addDecimals(order.lines.map((l) => multiplyDecimals(l.quantity!, l.unitPrice!))), 2)
  return { currency: order.currency, total, customer: order.customer, lines: order.lines }
}

const positiveInt = (text: string) => (/^[1-9]\d{0,9}$/.test(text) && Number(text) <= 2_147_483_647 ? Number(text) : undefined)

export const approvalRuleRoutes: FastifyPluginAsync<ApprovalRuleRoutesOptions> = async (app, deps) => {
  app.get('/approval-rules', (_req, reply) =>
    answer(reply, async () => {
      const active = await loadActiveApprovalRules(deps.db)
      if (!active) throw new ApprovalRulesRefusal('not_configured', 'no approval rules are configured: every order is approved by policy')
      const { policy, ...version } = active
      return { ...version, ...policy }
    }),
  )

  app.put('/approval-rules', async (req, reply) => {
    const body = parseBody(saveRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    const { comment, ...policy } = body
    return answer(
      reply,
      async () => {
        const saved = await saveApprovalRules(deps.db, { policy, comment, actor: actorOf(req.principal) })
        if (saved.created) req.log.info({ version: saved.version, previousVersion: saved.previousVersion }, 'approval rules saved')
        return saved
      },
      (saved) => (saved.created ? 201 : 200),
    )
  })

  app.get('/approval-rules/versions', async () => ({ versions: await listApprovalRulesVersions(deps.db) }))

  app.get<{ Params: { version: string } }>('/approval-rules/versions/:version', (req, reply) =>
    answer(reply, async () => {
      const n = positiveInt(req.params.version)
      const found = n === undefined ? undefined : await findApprovalRulesVersion(deps.db, n)
      if (!found) throw new ApprovalRulesRefusal('not_found', `approval rules have no version ${req.params.version}`)
      const { policy, ...version } = found
      return { ...version, ...policy }
    }),
  )

  app.post<{ Params: { version: string } }>('/approval-rules/versions/:version/activate', (req, reply) =>
    answer(reply, async () => {
      const n = positiveInt(req.params.version)
      if (n === undefined) throw new ApprovalRulesRefusal('not_found', `approval rules have no version ${req.params.version}`)
      const activated = await activateApprovalRules(deps.db, { version: n, actor: actorOf(req.principal) })
      if (activated.changed) req.log.info({ version: activated.version, previousVersion: activated.previousVersion }, 'approval rules version activated')
      return activated
    }),
  )

  // A read: it changes nothing, so whoever may read the rules may try them.
  app.post('/approval-rules/evaluate', async (req, reply) => {
    const body = parseBody(previewRequestSchema, req.body, reply, 'request')
    if (!body) return reply
    return answer(reply, async () => {
      let policy: ApprovalPolicy
      let version: number | null = null
      if (body.draft !== undefined) policy = parseApprovalPolicy(body.draft, ['draft'])
      else {
        const stored = body.version !== undefined ? await findApprovalRulesVersion(deps.db, body.version) : await loadActiveApprovalRules(deps.db)
        if (!stored) {
          if (body.version !== undefined) throw new ApprovalRulesRefusal('not_found', `approval rules have no version ${body.version}`)
          throw new ApprovalRulesRefusal('not_configured', 'no approval rules are configured: every order is approved by policy')
        }
        policy = stored.policy
        version = stored.version
      }
      const facts = factsOf(body.order)
      const evaluation = evaluateApprovalRules(policy, facts)
      return {
        version,
        total: facts.total,
        currency: facts.currency,
        ...evaluation,
        ...(body.credit ? { credit: decideCredit(body.credit, facts) } : {}),
      }
    })
  })
}
