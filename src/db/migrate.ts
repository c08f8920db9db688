import { readdirSync, readFileSync } from 'node:fs'
import type { Database } from './database.ts'

const migrationsDir = new URL('./migrations/', import.meta.url)
// Any constant works; it only has to be the same for every process that migrates this database.
const migrationLockKey = 7_000_001

/** Applies the SQL files in migrations/ that this database has not seen, in name order. */
export async function migrate(db: Database): Promise<string[]> {
  const files = readdirSync(migrationsDir).filter((f) => f.endsWith('.sql')).sort()
  return db.transaction(async (tx) => {
    // API and worker processes may start together; one migrates, the others wait and find nothing to do.
    await tx.query('select pg_advisory_xact_lock($1)', [migrationLockKey])
    await tx.query('create table if not exists schema_migrations (name text primary key, applied_at timestamptz not null default now())')
    const applied = new Set((await tx.query<{ name: string }>('select name from schema_migrations')).map((r) => r.name))
    const done: string[] = []
    for (const file of files) {
      if (applied.has(file)) continue
      const sql = readFileSync(new URL(file, migrationsDir), 'utf8')
      for (const statement of splitStatements(sql)) await tx.query(statement)
      await tx.query('insert into schema_migrations (name) values ($1)', [file])
      done.push(file)
    }
    return done
  })
}

// Migrations are plain DDL: no functions with `;` in their bodies, so splitting on `;` is exact.
function splitStatements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n')
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
}
