/**
 * `orderbridge reconcile`: asks a running orderbridge for a reconciliation run through its API
 * (POST /api/v1/reconciliations; the worker runs it) and, with `--wait`, follows it to the end,
 * printing progress to stderr and the run's summary as JSON to stdout. It reads nothing from the
 * database itself, so it works against PGlite and PostgreSQL deployments alike.
 */
import { parseArgs } from 'node:util'
import type { Env } from '../config.ts'
import { readStoredCredentials } from '../demo/demo-credentials.ts'

export const reconcileUsage = `orderbridge reconcile [--since 7d|ISO|all] [--order <id>]... [--connection <id>]... [--wait] [--fail-on-drift]
                   [--url URL] [--key KEY] [--timeout SECONDS]
  asks the running orderbridge for a reconciliation run (default window: the configured one);
  --wait follows it and prints its summary; --fail-on-drift exits 2 when it found discrepancies`

export interface ReconcileIo {
  out(line: string): void
  err(line: string): void
  fetch?: typeof fetch
  sleep?(ms: number): Promise<void>
}

interface RunAnswer {
  id: number
  status: 'queued' | 'running' | 'succeeded' | 'failed'
  connections: string[]
  progress: { ordersTotal: number | null; ordersChecked: number; ordersSkipped: number; targetRecordsChecked: number; percent: number }
  discrepancies: number
  counts: { byKind: Record<string, number>; byAction: Record<string, number> }
  error: string | null
}

/** Runs the command; answers the exit code (0 done, 1 failed or refused, 2 drift found with --fail-on-drift). */
export async function runReconcileCommand(args: readonly string[], env: Env, io: ReconcileIo = { out: (l) => console.log(l), err: (l) => console.error(l) }): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: [...args],
      options: {
        since: { type: 'string' },
        order: { type: 'string', multiple: true },
        connection: { type: 'string', multiple: true },
        wait: { type: 'boolean', default: false },
        'fail-on-drift': { type: 'boolean', default: false },
        url: { type: 'string' },
        key: { type: 'string' },
        timeout: { type: 'string', default: '3600' },
      },
    }))
  } catch (err) {
    io.err(`orderbridge reconcile: ${(err as Error).message}\n\n${reconcileUsage}`)
    return 1
  }
  const key = values.key ?? env.ORDERBRIDGE_ADMIN_KEY ?? readStoredCredentials(env.ORDERBRIDGE_DATA_DIR)?.adminKey
  if (!key) {
    io.err(`orderbridge reconcile: no API key: pass --key (an admin or ops key), set ORDERBRIDGE_ADMIN_KEY, or run from the folder whose ${env.ORDERBRIDGE_DATA_DIR} the server uses`)
    return 1
  }
  const base = (values.url ?? `http://127.0.0.1:${env.PORT}`).replace(/\/+$/, '')
  const doFetch = io.fetch ?? fetch
  const sleep = io.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const response = await doFetch(`${base}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await response.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      json = text
    }
    return { status: response.status, body: json }
  }

  const request = {
    ...(values.since !== undefined ? { since: values.since } : {}),
    ...(values.order?.length ? { orderIds: values.order } : {}),
    ...(values.connection?.length ? { connections: values.connection } : {}),
  }
  let answer
  try {
    answer = await call('POST', '/reconciliations', request)
  } catch (err) {
    io.err(`orderbridge reconcile: cannot reach ${base}: ${(err as Error).message}`)
    return 1
  }
  if (answer.status !== 202) {
    const error = (answer.body as { error?: { message?: string; details?: { path: string; message: string }[] } }).error
    io.err(`orderbridge reconcile: refused (${answer.status}): ${error?.message ?? JSON.stringify(answer.body)}${(error?.details ?? []).map((d) => `\n  ${d.path}: ${d.message}`).join('')}`)
    return 1
  }
  let run = answer.body as RunAnswer
  io.err(`reconciliation run ${run.id} ${run.status} (${run.connections.join(', ')})`)
  if (!values.wait) {
    io.out(JSON.stringify(run))
    return 0
  }

  const deadline = Date.now() + Number(values.timeout) * 1000
  let last = ''
  while (run.status === 'queued' || run.status === 'running') {
    if (Date.now() > deadline) {
      io.err(`orderbridge reconcile: run ${run.id} is still ${run.status} after ${values.timeout} s; it goes on in the worker`)
      io.out(JSON.stringify(run))
      return 1
    }
    await sleep(1000)
    const polled = await call('GET', `/reconciliations/${run.id}?limit=1`)
    if (polled.status !== 200) {
      io.err(`orderbridge reconcile: GET run ${run.id} answered ${polled.status}`)
      return 1
    }
    run = polled.body as RunAnswer
    const p = run.progress
    const line = `${run.status}: ${p.ordersChecked + p.ordersSkipped}/${p.ordersTotal ?? '?'} orders (${p.percent}%), ${p.targetRecordsChecked} target records, ${run.discrepancies} discrepancies`
    if (line !== last) io.err((last = line))
  }
  const { discrepancyPage: _page, ...summary } = run as RunAnswer & { discrepancyPage?: unknown }
  const kinds = Object.entries(run.counts.byKind).filter(([, n]) => n > 0)
  io.err(
    run.status === 'succeeded'
      ? `run ${run.id} done: ${run.discrepancies} discrepancies${kinds.length ? ` (${kinds.map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}; details: GET /api/v1/reconciliations/${run.id}, CSV: /api/v1/reconciliations/${run.id}/discrepancies.csv`
      : `run ${run.id} failed: ${run.error}`,
  )
  io.out(JSON.stringify(summary))
  if (run.status === 'failed') return 1
  return values['fail-on-drift'] && run.discrepancies > 0 ? 2 : 0
}
