/**
 * `orderbridge connectors new <id>`: scaffolds a connector folder (client, connector definition with
 * a sales-order stub, simulator, conformance test, README) for a developer to fill in. Writes only
 * the new folder: it never overwrites anything, and does not register the connector in
 * connectors/index.ts (a stub must not reach the pipeline). Needs no environment, database or Redis.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export const connectorsUsage = `usage:
  orderbridge connectors new <id> [--dir DIR] [--name "Display Name"]
                             scaffold DIR/<id>/ (DIR: ./connectors) with index.ts, client.ts,
                             simulator.ts, <id>.test.ts (the conformance suite) and README.md`

export interface Output {
  out(line: string): void
  err(line: string): void
}

const consoleOutput: Output = { out: (line) => console.log(line), err: (line) => console.error(line) }

/** Lower-case words joined by single hyphens, starting with a letter: `acme-erp`, `sap-idoc`, `kingdee`. */
export const connectorIdPattern = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/

/** A problem with how the command was called; printed with the usage. */
class UsageError extends Error {}

/** Runs a `connectors` subcommand and answers with the exit code. */
export async function runConnectorsCommand(args: readonly string[], io: Output = consoleOutput, cwd: string = process.cwd()): Promise<number> {
  const [sub, ...rest] = args
  try {
    if (sub === 'new') return newCommand(rest, io, cwd)
    throw new UsageError(sub ? `unknown connectors command "${sub}"` : 'which connectors command?')
  } catch (err) {
    if (err instanceof UsageError || isParseArgsError(err)) {
      io.err(`orderbridge: ${(err as Error).message}\n\n${connectorsUsage}`)
      return 1
    }
    if (err instanceof ScaffoldRefused) {
      io.err(`orderbridge: ${err.message}`)
      return 1
    }
    throw err
  }
}

function isParseArgsError(err: unknown): boolean {
  const code: unknown = err instanceof TypeError ? (err as NodeJS.ErrnoException).code : undefined
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}

/** Why a scaffold was not written (bad id, existing folder); the message says what to do. */
export class ScaffoldRefused extends Error {}

function newCommand(args: readonly string[], io: Output, cwd: string): number {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { dir: { type: 'string' }, name: { type: 'string' } },
  })
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'connectors new needs an id' : 'connectors new takes one id')
  const id = positionals[0]!
  const dir = path.resolve(cwd, values.dir ?? 'connectors')
  const written = scaffoldConnector({ id, dir, displayName: values.name })
  const folder = path.relative(cwd, path.join(dir, id)) || '.'
  io.out(`created ${folder}/`)
  for (const file of written) io.out(`  ${file}`)
  io.out(
    [
      '',
      'next:',
      `  1. fill in every TODO (start with ${folder}/README.md: API version, auth, rate limits, idempotency)`,
      `  2. npx vitest run ${folder}   (the conformance suite; give it sampleSalesOrder once salesOrders works)`,
      '  3. register the connector in connectors/index.ts when it passes',
    ].join('\n'),
  )
  return 0
}

export interface ScaffoldOptions {
  id: string
  /** The connectors folder; the scaffold goes to `<dir>/<id>/`, which must not exist. */
  dir: string
  displayName?: string
}

/** Writes `<dir>/<id>/` and answers the file names written. Throws `ScaffoldRefused` for a bad id or an existing folder. */
export function scaffoldConnector(options: ScaffoldOptions): string[] {
  const { id } = options
  if (!connectorIdPattern.test(id) || id.length > 40) {
    throw new ScaffoldRefused(
      `"${id}" is not a connector id: use lower-case letters, digits and single hyphens, starting with a letter, at most 40 characters (e.g. acme-erp)`,
    )
  }
  const target = path.join(options.dir, id)
  if (existsSync(target)) throw new ScaffoldRefused(`${target} already exists; choose another id or remove that folder first`)
  const displayName = (options.displayName ?? id.split('-').map((word) => word[0]!.toUpperCase() + word.slice(1)).join(' ')).trim()
  // It goes into code, comments and Markdown: letters, digits, spaces and a little punctuation only.
  if (!/^[\p{L}\p{N}][\p{L}\p{N} ._()&,+-]*$/u.test(displayName) || displayName.length > 80) {
    throw new ScaffoldRefused(`"${displayName}" cannot be a display name: use letters, digits, spaces and . _ ( ) & , + - (at most 80 characters)`)
  }
  const camel = id.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase())
  const names: Names = { id, displayName, camel, pascal: camel[0]!.toUpperCase() + camel.slice(1), kit: kitImportPath(target) }
  const files: [string, string][] = [
    ['README.md', readme(names)],
    ['client.ts', clientTs(names)],
    ['index.ts', indexTs(names)],
    ['simulator.ts', simulatorTs(names)],
    [`${id}.test.ts`, testTs(names)],
  ]
  mkdirSync(options.dir, { recursive: true })
  // Not recursive: if the folder appeared meanwhile, this throws instead of writing into it.
  try {
    mkdirSync(target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ScaffoldRefused(`${target} already exists; choose another id or remove that folder first`)
    throw err
  }
  for (const [name, content] of files) writeFileSync(path.join(target, name), content, { flag: 'wx' })
  return files.map(([name]) => name)
}

interface Names {
  id: string
  displayName: string
  camel: string
  pascal: string
  /** Relative import path of src/connector-kit from the new folder, without a trailing slash. */
  kit: string
}

function kitImportPath(target: string): string {
  const kitDir = fileURLToPath(new URL('../connector-kit/', import.meta.url))
  const relative = path.relative(target, kitDir).split(path.sep).join('/')
  return relative.startsWith('.') ? relative : `./${relative}`
}

const templateNote = (id: string) => `TEMPLATE, scaffolded by \`orderbridge connectors new ${id}\`: replace every TODO, then this line.`

function readme({ id, displayName }: Names): string {
  return `# ${id} — ${displayName} connector

> ${templateNote(id)}

TODO: one paragraph: which system this is, which roles it plays (\`erp\`, \`inventory\`, \`crm\`) and
which capabilities it implements (\`salesOrders\`, \`inventory\`, \`credit\`, \`crm\`, \`webhooks\`).

## API version

TODO: the API and version it speaks (e.g. "K3 Cloud WebAPI, 7.x"), the endpoints it calls, and where
the vendor documents them. Name the fixtures in \`../shared/fixtures\` the tests use.

## Auth

TODO: how it authenticates (bearer token, login session, OAuth, signed requests), which secrets that
takes (all in \`secretsSchema\`, never in settings) and how a session is renewed (\`SessionCache\`,
\`withSession\` in the kit). \`check()\` makes an authenticated call, so a wrong secret fails as \`auth\`.

## Rate limits

TODO: the vendor's quotas, how it signals them (429 and Retry-After, or an error code in a 200 answer)
and the \`limits.concurrency\` this connector declares. The connector never retries by itself.

## Idempotency

TODO: how a retried write stays safe. \`native-key\`: the API honours our idempotency key.
\`lookup-by-reference\`: the API stores our reference and can be searched by it, so a retry after a lost
answer (\`ctx.mayHaveWritten\`) looks the order up before creating it. Say which field holds the reference.

## Errors

TODO: how \`classify()\` maps the vendor's errors to failure kinds, where it differs from the kit's HTTP
table (\`classifyHttpError\`): e.g. an error code in an HTTP 200 answer, a session-expired code.

## Configuration

| setting | default | meaning |
| --- | --- | --- |
| \`baseUrl\` | — (required) | base URL of the API |
| \`timeoutMs\` | \`15000\` | per-request timeout |
| secret \`apiToken\` | — (required) | TODO |

## Simulator

\`simulator.ts\` speaks the vendor's wire format for tests and the demo (\`start…Simulator({ apiToken })\`),
with \`faults.failNext(count, status, headers?)\` and \`faults.reset()\`. TODO: the endpoints it serves.
`
}

function clientTs({ id, displayName, camel, pascal, kit }: Names): string {
  return `/**
 * ${templateNote(id)}
 *
 * The HTTP client of the ${displayName} connector: the only file that knows its URLs and answer
 * shapes. It does not retry and does not classify errors; the queue and \`classify()\` do that.
 */
import { z } from 'zod'
import { createHttpClient, type ConnectorContext } from '${kit}/index.ts'

export const ${camel}ConnectorId = '${id}'

// TODO: what the vendor needs besides the URL (API version, tenant or company id, ...), each described.
export const settingsSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the ${displayName} API, e.g. https://api.example.com.'),
  timeoutMs: z.number().int().positive().default(15_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
})

// TODO: the vendor's credentials. Everything secret goes here, never in settings, each described.
export const secretsSchema = z.object({
  apiToken: z.string().min(1).describe('API token, sent as \`Authorization: Bearer <token>\`.'),
})

export type ${pascal}Settings = z.infer<typeof settingsSchema>
export type ${pascal}Secrets = z.infer<typeof secretsSchema>
export type ${pascal}Context = ConnectorContext<${pascal}Settings, ${pascal}Secrets>

type HttpClient = ReturnType<typeof createHttpClient>

// One axios instance per (settings, secrets) pair, keyed weakly so nothing outlives the configuration.
// A vendor that makes you log in first keeps its session in a SessionCache (see the kit) instead.
const httpClients = new WeakMap<${pascal}Settings, { secrets: ${pascal}Secrets; http: HttpClient }>()

function httpClientFor(ctx: ${pascal}Context): HttpClient {
  const cached = httpClients.get(ctx.settings)
  if (cached && cached.secrets === ctx.secrets) return cached.http
  const http = createHttpClient({
    baseURL: ctx.settings.baseUrl,
    timeoutMs: ctx.settings.timeoutMs,
    headers: { Authorization: \`Bearer \${ctx.secrets.apiToken}\`, Accept: 'application/json' },
  })
  httpClients.set(ctx.settings, { secrets: ctx.secrets, http })
  return http
}

export interface ${pascal}Client {
  /** Resolves when the API answers an authenticated request: proves the URL and the credentials. */
  ping(): Promise<void>
}

export function ${camel}Client(ctx: ${pascal}Context): ${pascal}Client {
  const http = httpClientFor(ctx)
  return {
    async ping() {
      // TODO: the cheapest authenticated read the vendor offers (an open health endpoint proves nothing about the secret).
      await http.get('/ping')
    },
  }
}
`
}

function indexTs({ id, displayName, camel, pascal, kit }: Names): string {
  return `/**
 * ${templateNote(id)}
 *
 * ${displayName} connector: TODO what it does (capabilities, API version) and what it must not do.
 * It never retries by itself: the queue does, and \`classify()\` says how.
 */
import { z } from 'zod'
import { SyncFailure, classifyHttpError, defineConnector, type Operation, type RemoteRecord } from '${kit}/index.ts'
import { ${camel}Client, ${camel}ConnectorId, secretsSchema, settingsSchema, type ${pascal}Context, type ${pascal}Secrets, type ${pascal}Settings } from './client.ts'

export { ${camel}ConnectorId, secretsSchema, settingsSchema, type ${pascal}Secrets, type ${pascal}Settings } from './client.ts'

// TEMPLATE: every stub fails as \`config\`, so a connection using it pauses instead of pretending to work.
function notImplemented(): never {
  throw new SyncFailure('config', 'not implemented yet', { connectorId: ${camel}ConnectorId })
}

// TODO: the document the mapping must produce for the vendor (a zod schema; it is validated before run()).
export const salesOrderInputSchema = z.record(z.string(), z.unknown())

export const upsertSalesOrder: Operation<z.infer<typeof salesOrderInputSchema>, RemoteRecord, ${pascal}Settings, ${pascal}Secrets> = {
  inputSchema: salesOrderInputSchema,
  // TODO: 'native-key' when the API honours an idempotency key (send ctx.idempotencyKey);
  // 'lookup-by-reference' when it stores ctx.reference: then look it up first when ctx.mayHaveWritten.
  idempotency: 'lookup-by-reference',
  // TODO: create the order, or update \`existing\` when it is given; answer its externalId.
  run: async (_ctx, _input, _existing) => notImplemented(),
}

// TODO: the order the vendor holds under our reference, or undefined.
async function findByReference(_ctx: ${pascal}Context, _reference: string): Promise<RemoteRecord | undefined> {
  return notImplemented()
}

export const ${camel} = defineConnector({
  manifest: {
    id: ${camel}ConnectorId,
    version: '0.1.0',
    displayName: '${displayName}',
    // TODO: 'erp', 'inventory' and/or 'crm'; each role needs its capability.
    roles: ['erp'],
    settingsSchema,
    secretsSchema,
  },
  check: (ctx) => ${camel}Client(ctx).ping(),
  // TODO: refine where the vendor signals errors its own way (an error code in an HTTP 200 answer, ...).
  classify: (err) => classifyHttpError(err, ${camel}ConnectorId),
  salesOrders: { upsert: upsertSalesOrder, findByReference },
})
`
}

function simulatorTs({ id, displayName, pascal }: Names): string {
  return `/**
 * ${templateNote(id)}
 *
 * The ${displayName} simulator: a Fastify server on loopback speaking the vendor's wire format (TODO:
 * shapes from ../shared/fixtures or the vendor's docs) for tests and the demo, with faults that tests
 * script. State lives in memory and dies with the server. It does not log.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify from 'fastify'

export interface ${pascal}SimulatorOptions {
  apiToken: string
  /** 0 (the default) picks a free port. */
  port?: number
  /** Defaults to 127.0.0.1. */
  host?: string
}

/** Scripted faults; \`reset()\` disarms everything. */
export interface ${pascal}FaultControl {
  /** The next \`count\` requests (all but /health) answer \`status\` with these headers and change nothing. */
  failNext(count: number, status: number, headers?: Record<string, string>): void
  reset(): void
}

export interface ${pascal}Simulator {
  url: string
  faults: ${pascal}FaultControl
  close(): Promise<void>
}

interface ArmedFailure {
  remaining: number
  status: number
  headers: Record<string, string>
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function errorBody(code: string, message: string) {
  return { error: { code, message } }
}

export async function start${pascal}Simulator(options: ${pascal}SimulatorOptions): Promise<${pascal}Simulator> {
  const host = options.host ?? '127.0.0.1'
  const expectedToken = digest(\`Bearer \${options.apiToken}\`)
  let failures: ArmedFailure[] = []
  const app = Fastify({ logger: false, forceCloseConnections: true })

  // TODO: the vendor's own auth (login, signature) and error format.
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/health') return
    const given = request.headers.authorization
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), expectedToken)) {
      return reply.code(401).send(errorBody('unauthorized', 'missing or wrong bearer token'))
    }
    const failure = failures[0]
    if (!failure) return
    failure.remaining -= 1
    if (failure.remaining <= 0) failures.shift()
    return reply.code(failure.status).headers(failure.headers).send(errorBody('injected_fault', \`injected HTTP \${failure.status}\`))
  })

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ping', async () => ({ ok: true }))
  // TODO: the endpoints the connector calls (create, find by reference, update, cancel, ...).

  await app.listen({ port: options.port ?? 0, host })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('${id} simulator is not listening on a TCP port')
  const urlHost = address.family === 'IPv6' ? \`[\${address.address}]\` : address.address

  return {
    url: \`http://\${urlHost}:\${address.port}\`,
    faults: {
      failNext(count, status, headers = {}) {
        if (count > 0) failures.push({ remaining: count, status, headers })
      },
      reset() {
        failures = []
      },
    },
    async close() {
      await app.close()
    },
  }
}
`
}

function testTs({ id, displayName, camel, pascal, kit }: Names): string {
  return `/**
 * ${templateNote(id)}
 *
 * ${displayName} against the conformance suite every connector must pass. Add the vendor's own tests
 * beside it: its published payloads (../shared/fixtures), its errors, its idempotency.
 */
import { describeConnectorConformance } from '${kit}/conformance.ts'
import { ${camel} } from './index.ts'
import { start${pascal}Simulator } from './simulator.ts'

describeConnectorConformance('${id}', async () => {
  const apiToken = 'test-${id}-token'
  const sim = await start${pascal}Simulator({ apiToken })
  return {
    connector: ${camel},
    ctx: { settings: { baseUrl: sim.url, timeoutMs: 5_000 }, secrets: { apiToken } },
    // TODO: once salesOrders works, a mapped document the simulator accepts (the sales-order tests skip until then):
    // sampleSalesOrder: (reference) => ({ reference, currency: 'CNY', lines: [{ sku: 'SKU-100', quantity: '1', price: '9.50' }] }),
    // countSalesOrders: (reference) => ...,
    faults: { failNext: (status, headers) => sim.faults.failNext(1, status, headers) },
    reset: () => sim.faults.reset(),
    close: () => sim.close(),
  }
})
`
}
