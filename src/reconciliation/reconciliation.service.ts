/**
 * Asking for a run and showing one: a request (API, CLI, schedule) becomes a run row, then a job on
 * the `reconciliation` queue; the worker does the work (reconciliation.worker.ts). The row comes
 * first, so a lost enqueue is found by the worker's sweep. Nothing here talks to a connector.
 */
import type { Queue } from 'bullmq'
import type { ConnectionRegistry } from '../connections/connection-registry.ts'
import type { Queryable } from '../db/database.ts'
import type { FieldIssue } from '../shared/field-issues.ts'
import { createRun, type RunRow } from './reconciliation.repository.ts'
import { windowStart, type ReconciliationJob, type ReconciliationSettings, type RunRequest } from './reconciliation.schemas.ts'
import { reconcilableConnections } from './targets.ts'

export const reconciliationQueueName = 'reconciliation'
export const runJobId = (runId: number) => `reconcile-run-${runId}`

/** A request the run cannot be made from: the issues name the fields. */
export class RunRefused extends Error {
  readonly details: FieldIssue[]
  constructor(message: string, details: FieldIssue[]) {
    super(message)
    this.name = 'RunRefused'
    this.details = details
  }
}

export interface RequestRunDeps {
  db: Queryable
  connections: ConnectionRegistry
  settings: ReconciliationSettings
  /** When absent the run is only recorded; the worker's sweep enqueues it. */
  queue?: Queue<ReconciliationJob>
}

/** Records a run for `request` and enqueues it; answers the run as recorded. */
export async function requestRun(deps: RequestRunDeps, request: RunRequest, origin: { trigger: RunRow['trigger']; requestedBy?: string }): Promise<RunRow> {
  const reconcilable = reconcilableConnections(deps.connections).map((c) => c.id)
  const issues: FieldIssue[] = (request.connections ?? []).flatMap((id, i) =>
    reconcilable.includes(id) ? [] : [{ path: `connections[${i}]`, message: `connection "${id}" cannot be reconciled (these can: ${reconcilable.join(', ') || 'none'})` }],
  )
  if (issues.length) throw new RunRefused('the request names connections that cannot be reconciled', issues)
  if (!reconcilable.length) throw new RunRefused('no connection can be reconciled', [{ path: 'connections', message: 'no configured connection implements the reads reconciliation needs' }])
  const now = new Date()
  const run = await createRun(deps.db, {
    trigger: origin.trigger,
    ...(origin.requestedBy ? { requestedBy: origin.requestedBy } : {}),
    connections: request.connections ? [...new Set(request.connections)] : reconcilable,
    since: request.orderIds ? null : windowStart(request.since ?? deps.settings.window, now),
    until: now,
    ...(request.orderIds ? { orderIds: [...new Set(request.orderIds)] } : {}),
    policy: deps.settings.policy,
    tolerance: deps.settings.tolerance,
  })
  if (deps.queue) await deps.queue.add('run', { runId: run.id, correlationId: runJobId(run.id) }, { jobId: runJobId(run.id) }).catch(() => {})
  return run
}

/** A run as the API shows it. */
export function runView(run: RunRow) {
  const total = run.ordersTotal
  const done = run.ordersChecked + run.ordersSkipped
  return {
    id: run.id,
    status: run.status,
    trigger: run.trigger,
    requestedBy: run.requestedBy,
    connections: run.connections,
    window: run.orderIds ? null : { since: run.since?.toISOString() ?? null, until: run.until?.toISOString() ?? null },
    orderIds: run.orderIds,
    policy: run.policy,
    tolerance: run.tolerance,
    progress: {
      ordersTotal: total,
      ordersChecked: run.ordersChecked,
      ordersSkipped: run.ordersSkipped,
      targetRecordsChecked: run.targetRecordsChecked,
      percent: run.status === 'succeeded' ? 100 : total ? Math.min(100, Math.floor((done / total) * 100)) : 0,
    },
    discrepancies: run.discrepancies,
    counts: run.counts,
    error: run.error,
    createdAt: run.createdAt.toISOString(),
    startedAt: run.startedAt?.toISOString() ?? null,
    finishedAt: run.finishedAt?.toISOString() ?? null,
  }
}
export type RunView = ReturnType<typeof runView>
