/**
 * The reconciliation API and worker, wired as server.ts and app.ts will wire them: a POST records a
 * run and the worker runs it; GET shows its counts, progress and discrepancies page by page, and as
 * CSV; the worker keeps one schedule per connection and picks up runs whose job was lost. And the
 * `orderbridge reconcile` command against the same API.
 */
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runReconcileCommand } from '../../src/cli/reconcile-command.ts'
import { loadEnv } from '../../src/config.ts'
import { reconciliationSettingsSchema } from '../../src/reconciliation/reconciliation.schemas.ts'
import { requestRun } from '../../src/reconciliation/reconciliation.service.ts'
import { startReconciliationHarness, type ReconciliationHarness } from './reconciliation-harness.ts'

let h: ReconciliationHarness
let app: FastifyInstance
beforeAll(async () => {
  h = await startReconciliationHarness()
  h.startWorker()
  app = await h.routes({ role: 'ops' })
}, 120_000)
afterAll(() => h?.close())

const waitDone = (id: number) =>
  h.stack.waitFor(async () => {
    const answer = await app.inject({ method: 'GET', url: `/api/v1/reconciliations/${id}` })
    const body = answer.json()
    return body.status === 'succeeded' || body.status === 'failed' ? body : undefined
  }, `run ${id} finished`)

describe('POST /api/v1/reconciliations', () => {
  it('answers 202 with the run, which the worker runs; GET shows counts, progress and the discrepancies paged', async () => {
    const ids = await h.sendOrders('API', 3)
    h.stack.erp.drift.deleteSalesOrder((await h.link(ids[0]!, 'salesOrders.upsert'))!.external_id!)
    h.stack.erp.drift.updateSalesOrder((await h.link(ids[1]!, 'salesOrders.upsert'))!.external_id!, { total: '0.01' })

    const posted = await app.inject({ method: 'POST', url: '/api/v1/reconciliations', payload: { orderIds: ids, connections: ['demo-erp'] } })
    expect(posted.statusCode).toBe(202)
    const run = posted.json()
    expect(run).toMatchObject({ status: 'queued', connections: ['demo-erp'], orderIds: ids, window: null, requestedBy: 'test key (key k1)' })

    const done = await waitDone(run.id)
    expect(done).toMatchObject({ status: 'succeeded', discrepancies: 2, progress: { ordersTotal: 3, ordersChecked: 3, percent: 100 } })
    expect(done.counts.byKind).toMatchObject({ missing_in_target: 1, amount_mismatch: 1, orphan_in_target: 0 })
    // Default policy: a missing order is synced again, an amount is only reported.
    expect(done.counts.byAction).toMatchObject({ repair_requested: 1, reported: 1 })
    expect(done.discrepancyPage.items.map((d: { kind: string }) => d.kind).sort()).toEqual(['amount_mismatch', 'missing_in_target'])

    const first = (await app.inject({ method: 'GET', url: `/api/v1/reconciliations/${run.id}?limit=1` })).json()
    expect(first.discrepancyPage.items).toHaveLength(1)
    const second = (await app.inject({ method: 'GET', url: `/api/v1/reconciliations/${run.id}?limit=1&after=${first.discrepancyPage.next}` })).json()
    expect(second.discrepancyPage.items).toHaveLength(1)
    expect(second.discrepancyPage.items[0].id).not.toBe(first.discrepancyPage.items[0].id)
    const amount = (await app.inject({ method: 'GET', url: `/api/v1/reconciliations/${run.id}?kind=amount_mismatch` })).json().discrepancyPage.items
    expect(amount).toEqual([expect.objectContaining({ orderId: ids[1], expected: expect.objectContaining({ currency: 'CNY' }), actual: { total: '0.01', currency: 'CNY' }, action: 'reported' })])

    const csv = await app.inject({ method: 'GET', url: `/api/v1/reconciliations/${run.id}/discrepancies.csv` })
    expect(csv.statusCode).toBe(200)
    expect(csv.headers['content-type']).toContain('text/csv')
    const lines = csv.body.trim().split('\r\n')
    expect(lines[0]).toBe('id,run_id,kind,connection_id,order_id,external_id,action,detail,repaired_at,created_at,expected,actual')
    expect(lines).toHaveLength(3)
    expect(lines.some((l) => l.includes('amount_mismatch') && l.includes('"{""total"":""0.01"",""currency"":""CNY""}"'))).toBe(true)

    const list = (await app.inject({ method: 'GET', url: '/api/v1/reconciliations?limit=5' })).json()
    expect(list.runs[0]).toMatchObject({ id: run.id, status: 'succeeded' })
  })

  it('refuses what it cannot run, and 404s an unknown run', async () => {
    const unknown = await app.inject({ method: 'POST', url: '/api/v1/reconciliations', payload: { connections: ['nope'] } })
    expect(unknown.statusCode).toBe(422)
    expect(unknown.json().error.details).toEqual([expect.objectContaining({ path: 'connections[0]' })])
    const both = await app.inject({ method: 'POST', url: '/api/v1/reconciliations', payload: { since: '7d', orderIds: ['00000000-0000-4000-8000-000000000000'] } })
    expect(both.statusCode).toBe(422)
    expect((await app.inject({ method: 'POST', url: '/api/v1/reconciliations', payload: { since: 'last tuesday' } })).statusCode).toBe(422)
    expect((await app.inject({ method: 'GET', url: '/api/v1/reconciliations/999999' })).statusCode).toBe(404)
    expect((await app.inject({ method: 'GET', url: '/api/v1/reconciliations/abc' })).statusCode).toBe(404)
    expect((await app.inject({ method: 'GET', url: '/api/v1/reconciliations/999999/discrepancies.csv' })).statusCode).toBe(404)
  })
})

describe('the worker', () => {
  it('runs a run whose job was lost', async () => {
    const run = await requestRun({ db: h.db, connections: h.connections, settings: h.settings }, { since: '1h', connections: ['demo-erp'] }, { trigger: 'api' })
    await h.db.query(`update reconciliation_runs set heartbeat_at = now() - interval '1 minute' where id = $1`, [run.id])
    expect(await waitDone(run.id)).toMatchObject({ status: 'succeeded' })
  })

  it('keeps one schedule per reconcilable connection, and drops them when the schedule is unset', async () => {
    const scheduled = h.startWorker(reconciliationSettingsSchema.parse({ schedule: '0 3 * * *' }))
    await scheduled.ready
    const schedulers = await scheduled.queue.getJobSchedulers(0, -1)
    expect(schedulers.map((s) => s.id ?? s.key).sort()).toEqual(['reconcile-demo-crm', 'reconcile-demo-erp', 'reconcile-demo-wms'])
    expect(schedulers[0]).toMatchObject({ pattern: '0 3 * * *', tz: 'UTC' })
    const unscheduled = h.startWorker()
    await unscheduled.ready
    expect(await unscheduled.queue.getJobSchedulers(0, -1)).toEqual([])
  })
})

describe('orderbridge reconcile', () => {
  it('asks for a run, follows it to the end and prints its summary', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
    const out: string[] = []
    const err: string[] = []
    const code = await runReconcileCommand(['--since', '7d', '--connection', 'demo-wms', '--wait', '--url', url, '--key', 'unused-here'], loadEnv({}), {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 100))),
    })
    expect(code).toBe(0)
    expect(JSON.parse(out.at(-1)!)).toMatchObject({ status: 'succeeded', connections: ['demo-wms'] })
    expect(err.at(-1)).toMatch(/^run \d+ done: \d+ discrepancies/)

    const refused = await runReconcileCommand(['--connection', 'nope', '--url', url, '--key', 'k'], loadEnv({}), { out: () => {}, err: (l) => err.push(l) })
    expect(refused).toBe(1)
    expect(err.at(-1)).toContain('connections[0]')
  })
})
