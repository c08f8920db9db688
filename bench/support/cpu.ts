/**
 * CPU seconds used by the machine and by named processes, from /proc, so a benchmark can say where
 * its cores went. The machine is shared (tests and builds may run beside a bench), so `other` is
 * reported: a run with much of it measured the neighbours as much as orderbridge.
 */
import { readdirSync, readFileSync } from 'node:fs'

const clockTicks = 100

/** The groups every snapshot has besides the named processes. */
type Group = 'postgres' | 'redis' | 'machine' | 'steal'

export interface CpuSnapshot<Name extends string = string> {
  at: number
  /** CPU seconds by group: each named process, plus `postgres`, `redis`, `machine` and `steal`. */
  seconds: Record<Name | Group, number>
}

export function cpuSnapshot<Name extends string>(named: Record<Name, number>): CpuSnapshot<Name> {
  const seconds = { postgres: 0, redis: 0, machine: 0, steal: 0 } as Record<Name | Group, number>
  for (const name of Object.keys(named) as Name[]) seconds[name] = 0
  const byPid = new Map((Object.entries(named) as [Name, number][]).map(([name, pid]) => [pid, name]))
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number)
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields
    seconds.machine = (user + nice + system + irq + softirq) / clockTicks
    seconds.steal = steal / clockTicks
  } catch {
    return { at: performance.now(), seconds } // not Linux: no CPU figures
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
    } catch {
      continue // exited meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const used = (Number(rest[11]) + Number(rest[12])) / clockTicks
    const name = byPid.get(Number(entry))
    if (name) seconds[name] += used
    else if (comm === 'postgres') seconds.postgres += used
    else if (comm.startsWith('redis-server')) seconds.redis += used
  }
  return { at: performance.now(), seconds }
}

/** Average cores used between two snapshots, by group, with `other` = the machine minus the groups. */
export function coresBetween<Name extends string>(a: CpuSnapshot<Name>, b: CpuSnapshot<Name>): Record<Name | Group | 'other', number> {
  const elapsed = (b.at - a.at) / 1000
  const cores = {} as Record<Name | Group | 'other', number>
  for (const k of Object.keys(b.seconds) as (Name | Group)[]) cores[k] = Math.round((Math.max(0, b.seconds[k] - (a.seconds[k] ?? 0)) / elapsed) * 100) / 100
  const known = Object.entries(cores)
    .filter(([k]) => k !== 'machine' && k !== 'steal')
    .reduce((sum, [, v]) => sum + v, 0)
  cores.other = Math.round(Math.max(0, cores.machine - known) * 100) / 100
  return cores
}
