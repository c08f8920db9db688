/**
 * Prometheus text for GET /metrics: the database counters (src/failures/counters.ts) as gauges
 * labelled by connection, and BullMQ queue depths by queue and state. Everything is read when
 * scraped, so several API processes report the same numbers. Gauges, not counters: link counts
 * are current states and go down as well as up.
 */
import type { Queue } from 'bullmq'
import type { Queryable } from '../db/database.ts'
import { countersByConnection, type Counters } from '../failures/counters.ts'

type Scalar = Exclude<keyof Counters, 'links' | 'inbox'>

const counterMetrics: [Scalar, string, string][] = [
  ['accepted', 'orderbridge_accepted', 'Deliveries committed to the inbox (distinct events).'],
  ['duplicate', 'orderbridge_duplicate', 'Redeliveries of an event already in the inbox, answered from it.'],
  ['rejected', 'orderbridge_rejected', 'Deliveries refused (signature, body, connection, size).'],
  ['staleSkipped', 'orderbridge_stale_skipped', 'Inbox events skipped as an older or repeated version.'],
  ['synced', 'orderbridge_synced', 'Links whose target holds the order\'s current version.'],
  ['failed', 'orderbridge_failed', 'Links retrying after a retryable failure.'],
  ['dead', 'orderbridge_dead', 'Links whose retries are used up (dead letters).'],
  ['needsAttention', 'orderbridge_needs_attention', 'Links stopped by a permanent failure.'],
  ['cancelled', 'orderbridge_cancelled', 'Links whose target order was cancelled or never created.'],
  ['replayed', 'orderbridge_replayed', 'Failed links and events replayed by a person.'],
]

const queueStates = ['waiting', 'active', 'delayed', 'failed', 'prioritized'] as const
/** A scrape must answer even when Redis does not; ioredis would otherwise wait for it. */
const queueTimeoutMs = 2_000

const label = (value: string) => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')

export async function renderMetrics(db: Queryable, queues: readonly Queue[]): Promise<string> {
  const [byConnection, depths] = await Promise.all([countersByConnection(db), queueDepths(queues)])
  const lines: string[] = []
  const connections = [...byConnection.keys()].sort()
  for (const [key, name, help] of counterMetrics) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`)
    for (const id of connections) lines.push(`${name}{connection="${label(id)}"} ${byConnection.get(id)![key]}`)
  }
  lines.push('# HELP orderbridge_links Links by target connection and status.', '# TYPE orderbridge_links gauge')
  for (const id of connections) {
    for (const [status, n] of Object.entries(byConnection.get(id)!.links)) lines.push(`orderbridge_links{connection="${label(id)}",status="${status}"} ${n}`)
  }
  lines.push('# HELP orderbridge_queue_up 1 when the queue depths below could be read from Redis.', '# TYPE orderbridge_queue_up gauge', `orderbridge_queue_up ${depths ? 1 : 0}`)
  if (depths) {
    lines.push('# HELP orderbridge_queue_jobs BullMQ jobs by queue and state.', '# TYPE orderbridge_queue_jobs gauge')
    for (const { queue, counts } of depths) {
      for (const state of queueStates) lines.push(`orderbridge_queue_jobs{queue="${label(queue)}",state="${state}"} ${counts[state] ?? 0}`)
    }
  }
  return `${lines.join('\n')}\n`
}

async function queueDepths(queues: readonly Queue[]): Promise<{ queue: string; counts: Record<string, number> }[] | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), queueTimeoutMs)
  })
  const read = Promise.all(queues.map(async (q) => ({ queue: q.name, counts: await q.getJobCounts(...queueStates) }))).catch(() => undefined)
  try {
    return await Promise.race([read, timeout])
  } finally {
    clearTimeout(timer)
  }
}
