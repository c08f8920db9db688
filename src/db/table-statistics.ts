/**
 * Keeps the planner statistics of orderbridge's own tables fresh where nothing else does. Our batched
 * statements join `unnest(...)` arrays to tables such as `links`; on a table that was never analyzed
 * the planner guesses, picks hash joins over whole-table scans, and every statement slows down as the
 * table grows. Autovacuum normally prevents that, but PGlite has none (it runs single-user, so no
 * launcher ever starts, although `show autovacuum` says `on`), and a PostgreSQL server may run with it off.
 *
 * It only analyzes tables in the current schema, and never vacuums: where autovacuum runs it does nothing.
 */
import type { Logger } from '../connector-kit/index.ts'
import type { Database, Queryable } from './database.ts'

export interface StaleTable {
  table: string
  /** Rows inserted, updated or deleted since the table was last analyzed. */
  changedRows: number
  /** The live-row counter, or the row count of the table's last analyze when that is larger (see below). */
  liveRows: number
}

export interface AnalyzeResult {
  analyzed: StaleTable[]
  failed: { table: string; err: unknown }[]
}

/**
 * Analyzes the current schema's tables whose rows changed by more than autovacuum's default threshold
 * (50 + 10% of live rows) since their last analyze. Each table is analyzed on its own, so one that
 * fails does not keep the others stale.
 *
 * The counters come from `pg_stat_user_tables`, on PGlite too. A session publishes its counts at most
 * once a second, so rows written in the last second may be counted on the next call only. PGlite
 * starts them from zero each time it opens (so does a server after a crash), which would make a big
 * table look small and be analyzed every minute: its size is therefore at least `pg_class.reltuples`,
 * the row count its last analyze recorded, which survives restarts (and is what autovacuum uses).
 */
export async function analyzeStaleTables(db: Queryable): Promise<AnalyzeResult> {
  const stale = await db.query<StaleTable>(
    `select s.relname as "table", s.n_mod_since_analyze as "changedRows", greatest(s.n_live_tup, c.reltuples::bigint) as "liveRows"
     from pg_stat_user_tables s join pg_class c on c.oid = s.relid
     where s.schemaname = current_schema() and s.n_mod_since_analyze > 50 + 0.1 * greatest(s.n_live_tup, c.reltuples::bigint)
     order by s.relname`,
  )
  const result: AnalyzeResult = { analyzed: [], failed: [] }
  for (const table of stale) {
    try {
      // Names come from the catalog, not from input; quoted all the same.
      await db.query(`analyze "${table.table.replaceAll('"', '""')}"`)
      result.analyzed.push(table)
    } catch (err) {
      result.failed.push({ table: table.table, err })
    }
  }
  return result
}

const defaultIntervalMs = 60_000

/**
 * A task for the worker's sweep: at most once per `intervalMs`, analyzes the stale tables when the
 * database does not do it by itself. That is decided on the first call (at start-up) and kept. It never
 * throws: statistics are an optimisation, and a failure must not stop the sweep it rides on.
 */
export function createStatisticsKeeper(db: Database, log: Logger, options: { intervalMs?: number } = {}): () => Promise<void> {
  const intervalMs = options.intervalMs ?? defaultIntervalMs
  let analyzesItself: boolean | undefined
  let lastRunAt = -Infinity
  return async () => {
    if (analyzesItself || performance.now() - lastRunAt < intervalMs) return
    lastRunAt = performance.now()
    try {
      analyzesItself ??= await databaseAnalyzesItself(db, log)
      if (analyzesItself) return
      const { analyzed, failed } = await analyzeStaleTables(db)
      if (analyzed.length) log.info({ tables: analyzed }, 'analyzed tables whose rows changed by more than 50 + 10% since their last analyze')
      for (const { table, err } of failed) log.warn({ err, table }, 'could not analyze a table; will try again')
    } catch (err) {
      log.warn({ err }, 'could not check table statistics; will try again')
    }
  }
}

async function databaseAnalyzesItself(db: Database, log: Logger): Promise<boolean> {
  if (db.engine === 'pglite') return false
  const [setting] = await db.query<{ autovacuum: string }>('show autovacuum')
  if (setting?.autovacuum === 'on') return true
  log.warn({}, 'PostgreSQL runs with autovacuum off: orderbridge will analyze its own tables; turn autovacuum on in production, it also vacuums')
  return false
}
