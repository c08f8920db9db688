/**
 * An isolated database per test file: a fresh schema on the PostgreSQL server on 127.0.0.1, or an
 * in-memory PGlite. Dropped at the end, so nothing is left behind.
 */
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { openDatabase, type Database } from '../../src/db/database.ts'
import { migrate } from '../../src/db/migrate.ts'

export const postgresUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const engines = ['pglite', 'postgres'] as const
export type Engine = (typeof engines)[number]

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`

export interface TestDatabase {
  db: Database
  /** For processes started by the test: the env that points at this same database. */
  env: Record<string, string>
  drop(): Promise<void>
}

export async function openTestDatabase(engine: Engine, options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  if (engine === 'pglite') {
    const db = await openDatabase({ engine: 'pglite' })
    if (options.migrate !== false) await migrate(db)
    return { db, env: {}, drop: () => db.close() }
  }
  const schema = uniqueName('t')
  const db = await openDatabase({ engine: 'postgres', url: postgresUrl, schema, poolSize: 5 })
  if (options.migrate !== false) await migrate(db)
  return {
    db,
    env: { DATABASE_URL: postgresUrl, ORDERBRIDGE_DB_SCHEMA: schema },
    async drop() {
      await db.query(`drop schema ${schema} cascade`)
      await db.close()
    },
  }
}

const migrations = new URL('../../src/db/migrations/', import.meta.url)

/**
 * The schema as it was before migration `next` (e.g. `'012'`): the earlier migrations applied and
 * recorded, so a test can write the data of that time and then run `migrate`. Open the database
 * with `{ migrate: false }`.
 */
export async function migrateUpTo(db: Database, next: string): Promise<void> {
  await db.exec('create table schema_migrations (name text primary key, applied_at timestamptz not null default now())')
  for (const file of readdirSync(migrations).filter((f) => f < next).sort()) {
    await db.exec(readFileSync(new URL(file, migrations), 'utf8'))
    await db.query('insert into schema_migrations (name) values ($1)', [file])
  }
}
