/**
 * orderbridge analyzes its own tables where nothing else does (PGlite; PostgreSQL with autovacuum off),
 * and only those whose rows changed by more than autovacuum's default threshold.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Logger } from '../../src/connector-kit/index.ts'
import { openDatabase, type Database, type Queryable } from '../../src/db/database.ts'
import { migrate } from '../../src/db/migrate.ts'
import { analyzeStaleTables, createStatisticsKeeper } from '../../src/db/table-statistics.ts'
import { engines, openTestDatabase, type TestDatabase } from '../support/test-database.ts'

/** Over the threshold for an empty table (50 + 10% of live rows). */
const manyRows = 2_000
const fewRows = 10

interface TableStatistics {
  lastAnalyze: Date | null
  reltuples: number
}

function tableStatistics(db: Queryable, table: string): Promise<TableStatistics | undefined> {
  return db
    .query<TableStatistics>(
      `select s.last_analyze as "lastAnalyze", c.reltuples::float8 as reltuples
       from pg_stat_user_tables s join pg_class c on c.oid = s.relid
       where s.schemaname = current_schema() and s.relname = $1`,
      [table],
    )
    .then((rows) => rows[0])
}

/**
 * Writes in one transaction and publishes its counters at commit: a session otherwise publishes
 * them at most once a second, which would make the test depend on timing.
 */
function insertInboxEvents(db: Database, count: number, from: number): Promise<void> {
  return db.transaction(async (tx) => {
    await tx.query(
      `insert into inbox_events (connection_id, event_id, event_type, external_id, source_version, document)
       select 'demo-crm', 'msg_' || g, 'order.created', 'SO-' || g, 1, '{}'::jsonb from generate_series($1::int, $2::int) g`,
      [from, from + count - 1],
    )
    await tx.query('select pg_stat_force_next_flush()')
  })
}

function insertRejectedDeliveries(db: Database, count: number): Promise<void> {
  return db.transaction(async (tx) => {
    await tx.query(
      `insert into rejected_deliveries (connection_id, http_status, code, message)
       select 'demo-crm', 401, 'bad_signature', 'bad signature' from generate_series(1, $1::int)`,
      [count],
    )
    await tx.query('select pg_stat_force_next_flush()')
  })
}

function recordingLogger(): Logger & { lines: { level: string; fields: object }[] } {
  const lines: { level: string; fields: object }[] = []
  return {
    lines,
    info: (fields) => lines.push({ level: 'info', fields }),
    warn: (fields) => lines.push({ level: 'warn', fields }),
    error: (fields) => lines.push({ level: 'error', fields }),
  }
}

describe.each(engines)('table statistics on %s', (engine) => {
  let t: TestDatabase
  beforeAll(async () => {
    t = await openTestDatabase(engine)
  })
  afterAll(async () => {
    await t?.drop()
  })

  it('analyzes a table with many changed rows and leaves one with few alone', async () => {
    await insertInboxEvents(t.db, manyRows, 1)
    await insertRejectedDeliveries(t.db, fewRows)
    expect((await tableStatistics(t.db, 'inbox_events'))?.lastAnalyze).toBeNull()

    const { analyzed, failed } = await analyzeStaleTables(t.db)

    expect(failed).toEqual([])
    expect(analyzed).toContainEqual({ table: 'inbox_events', changedRows: manyRows, liveRows: manyRows })
    expect(analyzed.map((a) => a.table)).not.toContain('rejected_deliveries')
    const inbox = await tableStatistics(t.db, 'inbox_events')
    expect(inbox?.lastAnalyze).toBeInstanceOf(Date)
    expect(inbox?.reltuples).toBe(manyRows)
    expect((await tableStatistics(t.db, 'rejected_deliveries'))?.lastAnalyze).toBeNull()
  })

  it('does not analyze a table again until enough of it changed since', async () => {
    await insertInboxEvents(t.db, 20, manyRows + 1)
    expect((await analyzeStaleTables(t.db)).analyzed.map((a) => a.table)).not.toContain('inbox_events')
  })

  describe('as a task of the sweep', () => {
    let analyzesByItself: boolean
    beforeAll(async () => {
      // PGlite says autovacuum is on, but single-user it never runs; only a server's setting counts.
      analyzesByItself = engine === 'postgres' && (await t.db.query<{ autovacuum: string }>('show autovacuum'))[0]?.autovacuum === 'on'
    })

    it('analyzes where the database does not, at most once per interval, and says which tables and why', async () => {
      const log = recordingLogger()
      const intervalMs = 300
      const keepStatistics = createStatisticsKeeper(t.db, log, { intervalMs })
      await insertInboxEvents(t.db, manyRows, 10_000)
      await keepStatistics()
      await insertRejectedDeliveries(t.db, 100)
      await keepStatistics()
      if (analyzesByItself) {
        expect(log.lines).toEqual([])
        return
      }
      const analyzedTables = () => log.lines.filter((l) => l.level === 'info').map((l) => l.fields)
      expect(analyzedTables()).toEqual([{ tables: [expect.objectContaining({ table: 'inbox_events' })] }])
      // Within the interval the second call did not look, though rejected_deliveries is stale by now.
      expect((await tableStatistics(t.db, 'rejected_deliveries'))?.lastAnalyze).toBeNull()

      await sleep(intervalMs)
      await keepStatistics()
      expect(analyzedTables()).toEqual([
        { tables: [expect.objectContaining({ table: 'inbox_events' })] },
        { tables: [expect.objectContaining({ table: 'rejected_deliveries', changedRows: fewRows + 100 })] },
      ])
      // Decided once, at the first call: one start-up warning on a server with autovacuum off, none on PGlite.
      expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(engine === 'postgres' ? 1 : 0)
    })
  })
})

describe('on PGlite, which forgets its row counters when it closes', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'orderbridge-statistics-'))
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it('still sizes a table by its last analyze, so a few changes after a restart do not analyze it again', async () => {
    const before = await openDatabase({ engine: 'pglite', dataDir })
    await migrate(before)
    await insertInboxEvents(before, manyRows, 1)
    await analyzeStaleTables(before)
    await before.close()

    const after = await openDatabase({ engine: 'pglite', dataDir })
    try {
      // 100 changes: over 50 + 10% of the live rows counted since opening (100), under 50 + 10% of 2,000.
      await insertInboxEvents(after, 100, manyRows + 1)
      expect((await after.query<{ n_live_tup: number }>(`select n_live_tup from pg_stat_user_tables where relname = 'inbox_events'`))[0]?.n_live_tup).toBe(100)
      expect((await analyzeStaleTables(after)).analyzed.map((a) => a.table)).not.toContain('inbox_events')
    } finally {
      await after.close()
    }
  })
})
