/**
 * Process configuration: environment variables (each described) and the connections file
 * (ORDERBRIDGE_CONFIG, YAML or JSON). Every error names the path and what was expected.
 * Reads files and the environment; opens no connections.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { formatIssues, issuesOf, type FieldIssue } from './shared/field-issues.ts'
import { approvalPolicySchema } from './approvals/approval-rules.schemas.ts'
import { notificationSettingsSchema } from './notifications/notification.schemas.ts'
import { reconciliationSettingsSchema } from './reconciliation/reconciliation.schemas.ts'

export const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000).describe('HTTP port of the API'),
  HOST: z.string().default('127.0.0.1').describe('Interface the API listens on (0.0.0.0 in containers)'),
  ORDERBRIDGE_DATA_DIR: z.string().default('./data').describe('Folder for PGlite data, generated credentials and a private Redis'),
  DATABASE_URL: z.string().optional().describe('PostgreSQL server URL; when unset, PGlite in the data folder is used'),
  ORDERBRIDGE_DB_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier')
    .optional()
    .describe('PostgreSQL schema to use (created if missing), to share one database between deployments'),
  REDIS_URL: z.string().optional().describe('Redis URL for the queues (default redis://127.0.0.1:6379)'),
  ORDERBRIDGE_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only')
    .default('orderbridge')
    .describe('Prefix of every queue key, to isolate deployments (and tests) on one Redis'),
  ORDERBRIDGE_CONFIG: z.string().optional().describe('Connections file (YAML or JSON); when unset, the demo connections are used'),
  ORDERBRIDGE_DEMO_WEBHOOK_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/=]+$/, 'a Standard Webhooks secret: whsec_ followed by base64')
    .optional()
    .describe('Webhook secret of the demo CRM connection; generated once and kept in the data folder when unset'),
  ORDERBRIDGE_DEMO_ERP_TOKEN: z.string().min(8).optional().describe('API token of the demo ERP simulator; generated once and kept in the data folder when unset'),
  ORDERBRIDGE_DEMO_WMS_TOKEN: z.string().min(8).optional().describe('API token of the demo WMS simulator; generated once and kept in the data folder when unset'),
  ORDERBRIDGE_ADMIN_KEY: z.string().min(16).optional().describe('The first admin API key; generated once and kept in the data folder when unset'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level'),
  ORDERBRIDGE_BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(1_048_576).describe('Largest webhook body accepted'),
  ORDERBRIDGE_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000).describe('How long SIGTERM waits for in-flight work'),
  ORDERBRIDGE_SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(30_000).describe('How often committed-but-unqueued work is re-enqueued'),
})
export type Env = z.infer<typeof envSchema>

export class ConfigError extends Error {
  readonly issues: FieldIssue[]
  constructor(source: string, issues: FieldIssue[]) {
    super(`${source} is invalid:\n${formatIssues(issues)}`)
    this.name = 'ConfigError'
    this.issues = issues
  }
}

export function loadEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const result = envSchema.safeParse(env)
  if (!result.success) throw new ConfigError('the environment', issuesOf(result.error))
  return result.data
}

/** Calls to one connection, shared by every worker process (enforced in Redis). */
export const rateLimitSchema = z.object({
  max: z.number().int().positive().describe('How many sync steps may start per interval'),
  perMs: z.number().int().positive().describe('The interval, in milliseconds'),
})
export type RateLimit = z.infer<typeof rateLimitSchema>

/** Unset fields take `circuitBreakerDefaults`; the registry fills them in. */
export const circuitBreakerSchema = z.object({
  failureThreshold: z.number().int().positive().optional().describe('Consecutive infrastructure failures that open the breaker'),
  errorRate: z.number().gt(0).max(1).optional().describe('Share of failures among the last `window` calls that opens the breaker (with at least half the window seen)'),
  window: z.number().int().min(2).max(1000).optional().describe('How many recent calls the error rate is computed over'),
  cooldownMs: z.number().int().positive().optional().describe('How long the breaker stays open before one probe is let through'),
  maxCooldownMs: z.number().int().positive().optional().describe('The cooldown doubles after each failed probe, up to this'),
})
export const circuitBreakerDefaults = { failureThreshold: 5, errorRate: 0.5, window: 20, cooldownMs: 30_000, maxCooldownMs: 300_000 } as const
export type CircuitBreakerSettings = { [K in keyof typeof circuitBreakerDefaults]: number }

/** How a connection's sync jobs retry retryable failures (config `retry`): tries in all, then a dead letter. */
export const retryDefaults = { attempts: 8, backoffMs: 1_000, maxBackoffMs: 300_000 } as const
export type RetryPolicy = { [K in keyof typeof retryDefaults]: number }

export const connectionSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and -'),
  connector: z.string().min(1),
  settings: z.record(z.string(), z.unknown()).default({}),
  secrets: z.record(z.string(), z.unknown()).default({}),
  /** Mapping ids by purpose: `inbound` for a source, `salesOrder` for an ERP. */
  mappings: z.record(z.string(), z.string()).default({}),
  concurrency: z.number().int().positive().optional(),
  rateLimit: rateLimitSchema.optional(),
  circuitBreaker: circuitBreakerSchema.optional(),
  /** An inventory connection: what to do with an order short of stock. */
  stockPolicy: z
    .enum(['hold', 'partial', 'reject'])
    .optional()
    .describe('hold (the default): wait for stock; partial: reserve what there is and backorder the rest; reject: reject the order'),
  /** A CRM connection: `crm` when the CRM runs approval itself and sends approval events. */
  approvedBy: z.enum(['orderbridge', 'crm']).optional(),
  /** How sync jobs for this connection retry retryable failures before they become dead letters. */
  retry: z
    .object({
      attempts: z.number().int().min(1).max(100).describe('Tries in all, the first included (default 8)'),
      backoffMs: z.number().int().positive().describe('The first backoff delay; it doubles with each try, with jitter (default 1000)'),
      maxBackoffMs: z.number().int().positive().optional().describe('The longest backoff delay, however many tries came before (default 300000: five minutes)'),
    })
    .optional(),
})
export type ConnectionConfig = z.infer<typeof connectionSchema>

export const fileConfigSchema = z.object({
  connections: z.array(connectionSchema).min(1),
  /** Which connection plays which role for orders coming from any source. */
  pipeline: z.object({ erp: z.string(), inventory: z.string().optional() }),
  /** Approval rules; seed version 1 of the rules in the database (docs/APPROVALS_AND_NOTIFICATIONS.md). */
  approval: approvalPolicySchema.optional(),
  /** Notification and reminder rules, webhook endpoints and SMTP (docs/APPROVALS_AND_NOTIFICATIONS.md). */
  notifications: notificationSettingsSchema.optional(),
  /** Reconciliation: schedule, window, amount tolerance and the policy per drift kind (README, Reconciliation). */
  reconciliation: reconciliationSettingsSchema.optional(),
})
export type FileConfig = z.infer<typeof fileConfigSchema>

/** Reads and validates the connections file; `${VAR}` in a string is replaced from the environment. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): FileConfig {
  const text = readFileSync(file, 'utf8')
  let raw: unknown
  try {
    raw = path.extname(file) === '.json' ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `not valid ${path.extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message}` }])
  }
  const missing: FieldIssue[] = []
  const interpolated = interpolate(raw, env, '', missing)
  if (missing.length) throw new ConfigError(file, missing)
  return validateConfig(interpolated, file)
}

export function validateConfig(raw: unknown, source: string): FileConfig {
  const result = fileConfigSchema.safeParse(raw)
  if (!result.success) throw new ConfigError(source, issuesOf(result.error))
  const config = result.data
  const ids = new Set<string>()
  const issues: FieldIssue[] = []
  config.connections.forEach((c, i) => {
    if (ids.has(c.id)) issues.push({ path: `connections[${i}].id`, message: `duplicate connection id "${c.id}"` })
    ids.add(c.id)
  })
  for (const [role, id] of Object.entries(config.pipeline)) {
    if (id !== undefined && !ids.has(id)) issues.push({ path: `pipeline.${role}`, message: `no connection with id "${id}"` })
  }
  if (issues.length) throw new ConfigError(source, issues)
  return config
}

function interpolate(value: unknown, env: NodeJS.ProcessEnv, at: string, missing: FieldIssue[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name]
      if (found === undefined) missing.push({ path: at, message: `environment variable ${name} is not set` })
      return found ?? ''
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, `${at}[${i}]`, missing))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, at ? `${at}.${k}` : k, missing)]))
  }
  return value
}
