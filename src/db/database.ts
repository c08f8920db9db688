/**
 * One SQL dialect on two engines: PGlite (Postgres in WASM, a data folder on disk) for the embedded
 * single-process mode, and a PostgreSQL server (node-postgres pool) in production. Callers see only
 * `Database`; nothing here knows about orders or queues.
 */
import { createHash } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'

export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>
}

export interface Database extends Queryable {
  readonly engine: 'pglite' | 'postgres'
  /** Runs `fn` in one transaction; it commits when `fn` resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  /** Runs a script of several statements (migrations). */
  exec(sql: string): Promise<void>
  close(): Promise<void>
}

export type DatabaseOptions =
  | { engine: 'postgres'; url: string; schema?: string; poolSize?: number }
  | { engine: 'pglite'; dataDir?: string }

// int8 (counts, sequences) as numbers: they stay far below 2^53. numeric stays a string: it is money.
const int8Oid = 20

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return options.engine === 'postgres' ? openPostgres(options) : openPglite(options)
}

async function openPostgres(options: { url: string; schema?: string; poolSize?: number }): Promise<Database> {
  if (options.schema && !/^[a-z_][a-z0-9_]*$/.test(options.schema)) throw new Error(`invalid schema name ${options.schema}`)
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === int8Oid ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  })
  // An idle client's error (e.g. the server restarted) must not crash the process; the next query reports it.
  pool.on('error', () => {})
  if (options.schema) await pool.query(`create schema if not exists ${options.schema}`)
  return {
    engine: 'postgres',
    async query(sql, params) {
      const result = await pool.query(prepared(sql, params))
      return result.rows
    },
    async transaction(fn) {
      const client = await pool.connect()
      try {
        await client.query('begin')
        const result = await fn({
          async query(sql, params) {
            return (await client.query(prepared(sql, params))).rows
          },
        })
        await client.query('commit')
        return result
      } catch (err) {
        await client.query('rollback').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },
    async exec(sql) {
      await pool.query(sql)
    },
    close: () => pool.end(),
  }
}

const statementNames = new Map<string, string>()

/**
 * Parameterised statements run as named prepared statements: each connection parses and plans a
 * statement once instead of on every call, which is most of the server's work for our short queries.
 * The name is a hash of the text, so the same text always maps to the same statement.
 */
function prepared(text: string, values: readonly unknown[] | undefined): pg.QueryConfig {
  if (!values) return { text }
  let name = statementNames.get(text)
  if (!name) {
    name = `ob_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
    if (statementNames.size < 10_000) statementNames.set(text, name)
  }
  return { name, text, values: values as unknown[] }
}

async function openPglite(options: { dataDir?: string }): Promise<Database> {
  if (options.dataDir) mkdirSync(options.dataDir, { recursive: true })
  const db = await PGlite.create(options.dataDir ?? 'memory://', { parsers: { [int8Oid]: Number } })
  return {
    engine: 'pglite',
    async query(sql, params) {
      return (await db.query(sql, params as unknown[])).rows as never
    },
    async transaction(fn) {
      return db.transaction((tx) =>
        fn({
          async query(sql, params) {
            return (await tx.query(sql, params as unknown[])).rows as never
          },
        }),
      )
    },
    async exec(sql) {
      await db.exec(sql)
    },
    close: () => db.close(),
  }
}
