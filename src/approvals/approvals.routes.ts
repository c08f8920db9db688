/**
 * Approvers' surface: what waits for their level, and their decision on an order. An approver key
 * sees and decides only its own level; an admin may name a level or decide the current one. Each
 * waiting order is answered as projectOrderFor shapes it for the reader, like the order routes.
 */
import type { FastifyPluginAsync } from 'fastify'
import { z } from 'zod'
import { projectOrderFor } from '../auth/projection.ts'
import type { Database } from '../db/database.ts'
import type { Lifecycle } from '../orders/lifecycle.ts'
import { issuesOf } from '../shared/field-issues.ts'
import { errorBody } from '../shared/http-errors.ts'
import { ApprovalRefused, decideApproval, listPendingApprovals } from './approval-decisions.ts'
import { approvalLevelSchema } from './approval-rules.schemas.ts'

export interface ApprovalRoutesOptions {
  db: Database
  lifecycle: Lifecycle
}

const listQuerySchema = z.strictObject({
  pending: z.enum(['true']).default('true').describe('only pending approvals are listed; decided ones are in each order’s timeline'),
  level: approvalLevelSchema.optional().describe('admins only: one level; approver keys always see their own'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
})

const decisionSchema = z.strictObject({
  decision: z.enum(['approve', 'reject']),
  comment: z.string().max(2000).optional(),
})

const refusalStatus = { not_found: 404, not_pending: 409, not_your_level: 403 } as const

export const approvalRoutes: FastifyPluginAsync<ApprovalRoutesOptions> = async (app, { db, lifecycle }) => {
  app.get('/approvals', async (req, reply) => {
    const query = listQuerySchema.safeParse(req.query)
    if (!query.success) return reply.code(400).send(errorBody('invalid_query', 'the query string is invalid', issuesOf(query.error)))
    const principal = req.principal!
    const level = principal.role === 'approver' ? principal.level : (query.data.level ?? null)
    const pending = await listPendingApprovals(db, level, query.data.limit)
    return { approvals: pending.map((item) => projectOrderFor(principal, { ...item })) }
  })

  app.post<{ Params: { id: string } }>('/orders/:id/approval', async (req, reply) => {
    const body = decisionSchema.safeParse(req.body)
    if (!body.success) return reply.code(422).send(errorBody('validation_failed', 'the decision is invalid', issuesOf(body.error)))
    if (!z.uuid().safeParse(req.params.id).success) return reply.code(404).send(errorBody('not_found', `no order ${req.params.id}`))
    const principal = req.principal!
    try {
      const result = await decideApproval(db, lifecycle, { name: `${principal.role} key ${principal.name}`, level: principal.role === 'approver' ? principal.level : null }, req.params.id, {
        decision: body.data.decision,
        ...(body.data.comment ? { comment: body.data.comment } : {}),
      })
      return { orderId: req.params.id, decision: body.data.decision, level: result.level, state: result.state }
    } catch (err) {
      if (!(err instanceof ApprovalRefused)) throw err
      return reply.code(refusalStatus[err.code]).send(errorBody(err.code, err.message))
    }
  })
}
