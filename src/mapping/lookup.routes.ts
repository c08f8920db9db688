/**
 * Lookup tables under /api/v1/lookups: read (admin, ops), replace, merge and import from CSV
 * (admin), as src/auth/route-policy.ts says. Every change is audited and makes this process's
 * catalog read the tables again.
 */
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { z } from 'zod'
import type { Database } from '../db/database.ts'
import { errorBody } from '../shared/http-errors.ts'
import {
  listLookupTables,
  lookupTableNameSchema,
  LookupTooLarge,
  mergeEntriesSchema,
  mergeLookupTable,
  parseLookupCsv,
  readLookupTable,
  replaceEntriesSchema,
  replaceLookupTable,
} from './lookup-tables.ts'
import type { MappingCatalog } from './mapping-catalog.ts'
import { actorOf, parseBody } from './mapping.routes.ts'

export interface LookupRoutesOptions {
  db: Database
  catalog: MappingCatalog
}

// Cross-reference tables exported from an ERP run to tens of thousands of rows.
const tableBodyLimit = 16 * 1024 * 1024

const importQuery = z.object({ mode: z.enum(['replace', 'merge']).default('replace') })

export const lookupRoutes: FastifyPluginAsync<LookupRoutesOptions> = async (app, deps) => {
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: tableBodyLimit }, (_req, body, done) => done(null, body))

  /** The table name from the URL, or undefined after answering 422. */
  const tableName = (table: string, reply: FastifyReply) => {
    const parsed = lookupTableNameSchema.safeParse(table)
    if (parsed.success) return parsed.data
    void reply.code(422).send(errorBody('validation_failed', 'the table name is invalid', [{ path: 'table', message: parsed.error.issues[0]!.message }]))
    return undefined
  }

  async function change(reply: FastifyReply, work: () => Promise<object>) {
    try {
      const result = await work()
      deps.catalog.invalidate()
      return reply.send(result)
    } catch (err) {
      if (err instanceof LookupTooLarge) return reply.code(422).send(errorBody('validation_failed', err.message, [{ path: 'entries', message: err.message }]))
      throw err
    }
  }

  app.get('/lookups', async () => ({ tables: await listLookupTables(deps.db) }))

  app.get<{ Params: { table: string } }>('/lookups/:table', async (req, reply) => {
    const entries = lookupTableNameSchema.safeParse(req.params.table).success ? await readLookupTable(deps.db, req.params.table) : undefined
    if (!entries) return reply.code(404).send(errorBody('not_found', `no lookup table "${req.params.table}"`))
    return { table: req.params.table, entries }
  })

  app.put<{ Params: { table: string } }>('/lookups/:table', { bodyLimit: tableBodyLimit }, async (req, reply) => {
    const table = tableName(req.params.table, reply)
    const body = table && parseBody(replaceEntriesSchema, req.body, reply, 'table')
    if (!table || !body) return reply
    return change(reply, async () => ({ table, ...(await replaceLookupTable(deps.db, { table, entries: body.entries, actor: actorOf(req.principal) })) }))
  })

  app.patch<{ Params: { table: string } }>('/lookups/:table', { bodyLimit: tableBodyLimit }, async (req, reply) => {
    const table = tableName(req.params.table, reply)
    const body = table && parseBody(mergeEntriesSchema, req.body, reply, 'change')
    if (!table || !body) return reply
    return change(reply, async () => ({ table, ...(await mergeLookupTable(deps.db, { table, entries: body.entries, actor: actorOf(req.principal) })) }))
  })

  app.post<{ Params: { table: string } }>('/lookups/:table/import', { bodyLimit: tableBodyLimit }, async (req, reply) => {
    const table = tableName(req.params.table, reply)
    if (!table) return reply
    const query = importQuery.safeParse(req.query)
    if (!query.success) return reply.code(400).send(errorBody('invalid_query', 'mode must be replace or merge'))
    if (typeof req.body !== 'string') {
      return reply.code(415).send(errorBody('unsupported_media_type', 'send the table as text/csv with a key,value header row'))
    }
    const parsed = parseLookupCsv(req.body)
    if (!parsed.ok) return reply.code(422).send(errorBody('validation_failed', 'the CSV is invalid', parsed.issues))
    const { mode } = query.data
    const input = { table, entries: parsed.entries, actor: actorOf(req.principal), action: 'lookup.imported' as const }
    return change(reply, async () => ({ table, mode, ...(await (mode === 'merge' ? mergeLookupTable(deps.db, input) : replaceLookupTable(deps.db, input))) }))
  })
}
