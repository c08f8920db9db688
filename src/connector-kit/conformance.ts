/**
 * The conformance suite every connector must pass: one vitest `describe` that starts the connector's
 * simulator and checks what the connector declares, against the same rules for every vendor:
 *
 * - manifest: a kebab-case id, a semver version, roles with their capabilities, schemas that parse
 *   the given settings and secrets, every secret in the secrets schema (described) and none in settings;
 * - `check()`: passes against the simulator, fails as `auth` with a wrong secret and as `transient`
 *   when the remote is unreachable;
 * - `classify()`: HTTP 400/401/403/404/409/422/429 (with Retry-After)/500/503, timeouts, resets and
 *   refused connections map to the kit's kinds (`failureKindForStatus`, `classifyHttpError`), on made-up
 *   errors and, with `faults`, on real answers of the simulator; messages never carry a secret;
 * - `salesOrders`: two creates under one idempotency key make one order with one externalId, found by
 *   reference; an unknown reference finds nothing; an update through `existing` keeps the id; cancel
 *   twice succeeds; a create whose answer was lost is found, not repeated;
 * - `inventory`: stock as decimal strings, reserve twice under one key → one reservation, release twice;
 * - `credit`: figures as decimal strings; `crm`: the same status update twice succeeds (and changes once);
 * - nothing secret is logged.
 *
 * What a connector does not declare (or gives no sample for) is skipped, with the reason.
 *
 * This file imports vitest, so it is not exported from the kit's index (which runs in production):
 * import it from `src/connector-kit/conformance.ts` in a test file.
 */
import { randomBytes } from 'node:crypto'
import { AxiosError, AxiosHeaders, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import type { ConnectorContext, ConnectorDefinition, Logger, OperationContext, ReservationRequest } from './connector.ts'
import { SyncFailure, failureKinds, isSyncFailure, type FailureKind } from './failure.ts'
import { classifyHttpError, isSecretName, secretValuesOf } from './http-client.ts'
import { failureKindForStatus } from './http-status.ts'
import { freePort } from '../shared/free-port.ts'

/** Faults the simulator can inject, as the suite needs them. */
export interface ConformanceFaults {
  /**
   * The next request the probe makes answers `status` with these headers and changes nothing. The
   * probe is a sales-order create, else a reservation, else a CRM status update, else `check()`:
   * the fault must reach the first of those the connector declares (with its sample).
   */
  failNext(status: number, headers?: Record<string, string>): void
  /** The next sales-order create commits, then the connection drops before the answer. */
  commitThenDropNext?(): void
}

/** Cases of `classify()` whose expected kind can be overridden. */
export type ConformanceCase = 400 | 401 | 403 | 404 | 409 | 422 | 429 | 500 | 503 | 'timeout' | 'reset' | 'refused'

/** What `setup()` starts and hands to the suite. */
export interface ConformanceEnvironment {
  connector: ConnectorDefinition
  /** Settings and secrets as a connections file holds them; the manifest's schemas parse them. */
  ctx: { settings: unknown; secrets: unknown; connectionId?: string }
  /** Secrets with a wrong credential. Default: every string secret with `-wrong` appended. */
  wrongSecrets?: unknown
  /** A mapped sales-order document the simulator accepts, carrying `reference` where the connector needs it. */
  sampleSalesOrder?(reference: string): Record<string, unknown>
  /** How many sales orders the simulator holds under a reference, to prove "one order". */
  countSalesOrders?(reference: string): number | Promise<number>
  /** A reservation the simulator can satisfy (SKUs it stocks, whole units). */
  sampleReservation?(): ReservationRequest
  /** A customer the simulator has credit figures for. */
  sampleCustomerId?: string
  /** A CRM order id to write status to. Default: a fresh `CONF-…` id. */
  sampleCrmOrderId?(): string
  /** How many distinct statuses the CRM simulator recorded for an order, to prove "changes once". */
  countCrmStatuses?(crmOrderId: string): number | Promise<number>
  /**
   * Where the vendor's API documents another meaning than the kit's table (say why in a comment),
   * e.g. `{ 404: 'data' }` for an API that answers 404 for an unknown customer code in a document.
   */
  expectedKinds?: Partial<Record<ConformanceCase, FailureKind>>
  faults?: ConformanceFaults
  /** Runs after every test: disarm faults. */
  reset?(): void | Promise<void>
  close(): Promise<void>
}

const httpCases = [400, 401, 403, 404, 409, 422, 429, 500, 503] as const
const retryAfterSeconds = 7
const connectorRoles = ['crm', 'inventory', 'erp'] as const
const idPattern = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/
const semverPattern = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/
const decimalPattern = /^-?\d+(\.\d+)?$/

/** An AxiosError as the kit's HTTP client would throw it, for `classify()` without a server. */
function syntheticAxiosError(options: { status?: number; code?: string; headers?: Record<string, string>; secret?: string }): AxiosError {
  const secret = options.secret ?? 'no-secret'
  const config = {
    method: 'post',
    baseURL: 'http://remote.invalid',
    url: `/orders?access_token=${encodeURIComponent(secret)}`,
    headers: new AxiosHeaders({ Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }),
    data: JSON.stringify({ password: secret, reference: 'CONF' }),
  } as InternalAxiosRequestConfig
  const response: AxiosResponse | undefined =
    options.status === undefined
      ? undefined
      : {
          status: options.status,
          statusText: '',
          headers: new AxiosHeaders(options.headers ?? {}),
          config,
          data: { error: { code: 'conformance', message: `refused with token ${secret}` } },
          request: {},
        }
  const message = response ? `Request failed with status code ${response.status}` : `connect failed (${options.code ?? 'network'}) sending ${secret}`
  return new AxiosError(message, options.code ?? (response ? 'ERR_BAD_RESPONSE' : undefined), config, {}, response)
}

/** Settings with every http(s) URL pointed at a closed port; `undefined` when there is no URL to point. */
function unreachable(settings: unknown, port: number): unknown {
  let replaced = false
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string' && /^https?:\/\//.test(value)) {
      try {
        const url = new URL(value)
        replaced = true
        return `http://127.0.0.1:${port}${url.pathname === '/' ? '' : url.pathname}`
      } catch {
        return value
      }
    }
    if (Array.isArray(value)) return value.map(walk)
    if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]))
    return value
  }
  const result = walk(settings)
  return replaced ? result : undefined
}

function wrongSecretsOf(secrets: unknown): unknown {
  if (typeof secrets === 'string') return `${secrets}-wrong`
  if (Array.isArray(secrets)) return secrets.map(wrongSecretsOf)
  if (secrets !== null && typeof secrets === 'object') return Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, wrongSecretsOf(v)]))
  return secrets
}

/** Property names anywhere in a JSON schema, with their paths. */
function propertyPaths(schema: unknown, prefix = ''): string[] {
  const out: string[] = []
  if (schema === null || typeof schema !== 'object') return out
  const node = schema as { properties?: Record<string, unknown>; items?: unknown; anyOf?: unknown[]; oneOf?: unknown[]; allOf?: unknown[] }
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    out.push(`${prefix}${name}`, ...propertyPaths(child, `${prefix}${name}.`))
  }
  if (node.items) out.push(...propertyPaths(node.items, `${prefix}[].`))
  for (const variant of [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])]) out.push(...propertyPaths(variant, prefix))
  return out
}

function jsonSchemaOf(schema: z.ZodType): unknown {
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' })
  } catch {
    return undefined
  }
}

async function failureOf(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run()
  } catch (err) {
    return err
  }
  throw new Error('expected the call to fail, but it succeeded')
}

/**
 * Registers the conformance suite for one connector. `setup()` runs once before the suite (start
 * the simulator there) and `close()` once after it.
 *
 * @example
 * // connectors/acme-erp/acme-erp.test.ts
 * describeConnectorConformance('acme-erp', async () => {
 *   const sim = await startAcmeSimulator({ apiToken: 'test-token' })
 *   return {
 *     connector: acmeErp,
 *     ctx: { settings: { baseUrl: sim.url }, secrets: { apiToken: 'test-token' } },
 *     sampleSalesOrder: (reference) => ({ reference, currency: 'CNY', lines: [{ itemCode: 'SKU-100', qty: '1', price: '9.50' }] }),
 *     faults: { failNext: (status, headers) => sim.faults.failNext(1, status, headers), commitThenDropNext: () => sim.faults.commitThenDrop(1) },
 *     reset: () => sim.faults.reset(),
 *     close: () => sim.close(),
 *   }
 * })
 */
export function describeConnectorConformance(name: string, setup: () => Promise<ConformanceEnvironment>): void {
  describe(`${name} conformance`, () => {
    let env: ConformanceEnvironment
    let connector: ConnectorDefinition
    let settings: unknown
    let secrets: unknown
    let wrongSecrets: unknown
    let secretValues: string[] = []
    const logged: unknown[] = []
    const run = randomBytes(4).toString('hex')
    let sequence = 0

    const log: Logger = {
      info: (obj, msg) => void logged.push([obj, msg]),
      warn: (obj, msg) => void logged.push([obj, msg]),
      error: (obj, msg) => void logged.push([obj, msg]),
    }

    beforeAll(async () => {
      env = await setup()
      connector = env.connector
      settings = connector.manifest.settingsSchema.parse(env.ctx.settings)
      secrets = connector.manifest.secretsSchema.parse(env.ctx.secrets)
      wrongSecrets = env.wrongSecrets ?? wrongSecretsOf(env.ctx.secrets)
      secretValues = [...new Set([...secretValuesOf(env.ctx.secrets), ...secretValuesOf(wrongSecrets)])]
    })

    afterEach(async () => {
      await env?.reset?.()
    })

    afterAll(async () => {
      await env?.close()
    })

    const connectionId = () => env.ctx.connectionId ?? `conformance-${connector.manifest.id}`
    const context = (overrides: { settings?: unknown; secrets?: unknown } = {}): ConnectorContext => ({
      connectionId: connectionId(),
      settings: overrides.settings ?? settings,
      secrets: overrides.secrets ?? secrets,
      log,
    })
    const operation = (overrides: Partial<OperationContext> = {}): OperationContext => {
      sequence += 1
      return {
        ...context(),
        idempotencyKey: `conformance-${run}-${sequence}.v1`,
        reference: `CONF-${run}-${sequence}`,
        mayHaveWritten: false,
        ...overrides,
      }
    }

    /** A failure as the pipeline sees it: classified once, safe to show. */
    const classified = (err: unknown, ctx: ConnectorContext = context()): SyncFailure => {
      const failure = connector.classify(err, ctx)
      expect(isSyncFailure(failure), 'classify() answers a SyncFailure').toBe(true)
      expect(failureKinds).toContain(failure.kind)
      expect(failure.message.length, 'a failure has a message').toBeGreaterThan(0)
      const shown = `${failure.message} ${JSON.stringify(failure.toJSON())}`
      for (const secret of secretValues) expect(shown.includes(secret), 'a failure message must not contain a secret').toBe(false)
      return failure
    }

    const expectedKind = (key: ConformanceCase, fallback: FailureKind): FailureKind => env.expectedKinds?.[key] ?? fallback

    const crmEnabled = () => connector.crm !== undefined && (connector.crm.enabled?.(settings) ?? true)

    /** One write (or the check) that reaches the simulator, for injected faults. */
    const probe = (): ((ctx: OperationContext) => Promise<unknown>) => {
      const salesOrders = connector.salesOrders
      const sample = env.sampleSalesOrder
      if (salesOrders && sample) return (ctx) => salesOrders.upsert.run(ctx, salesOrders.upsert.inputSchema.parse(sample(ctx.reference)), undefined)
      const inventory = connector.inventory
      const reservation = env.sampleReservation
      if (inventory && reservation) return (ctx) => inventory.reserve.run(ctx, inventory.reserve.inputSchema.parse(reservation()), undefined)
      const crm = connector.crm
      if (crm && crmEnabled()) return (ctx) => crm.updateOrderStatus(ctx, env.sampleCrmOrderId?.() ?? ctx.reference, { state: 'approved' })
      return (ctx) => connector.check(ctx)
    }

    describe('manifest', () => {
      it('declares a kebab-case id, a semver version, a display name and roles', () => {
        const { id, version, displayName, roles } = connector.manifest
        expect(id).toMatch(idPattern)
        expect(version).toMatch(semverPattern)
        expect(displayName.trim().length).toBeGreaterThan(0)
        expect(roles.length).toBeGreaterThan(0)
        expect(new Set(roles).size).toBe(roles.length)
        for (const role of roles) expect(connectorRoles).toContain(role)
      })

      it('implements a capability for each role it declares', () => {
        const roles = connector.manifest.roles
        const has = (member: string) => (connector as unknown as Record<string, unknown>)[member] !== undefined
        if (roles.includes('erp')) expect(has('salesOrders') || has('credit'), 'an erp implements salesOrders or credit').toBe(true)
        if (roles.includes('inventory')) expect(has('inventory'), 'an inventory system implements inventory').toBe(true)
        if (roles.includes('crm')) expect(['webhooks', 'customWebhooks', 'poll', 'crm'].some(has), 'a crm sends orders (webhooks, customWebhooks, poll) or takes status (crm)').toBe(true)
      })

      it('parses the given settings and secrets with its schemas', () => {
        expect(connector.manifest.settingsSchema.safeParse(env.ctx.settings).success).toBe(true)
        expect(connector.manifest.secretsSchema.safeParse(env.ctx.secrets).success).toBe(true)
      })

      it('keeps every secret in the secrets schema, described, and none in settings', () => {
        const secretsJson = jsonSchemaOf(connector.manifest.secretsSchema) as { type?: string; properties?: Record<string, { description?: string }> } | undefined
        expect(secretsJson?.type, 'the secrets schema is an object').toBe('object')
        for (const [field, property] of Object.entries(secretsJson?.properties ?? {})) {
          expect(property.description, `secret ${field} has a .describe()`).toBeTruthy()
        }
        const settingsJson = jsonSchemaOf(connector.manifest.settingsSchema)
        const leaked = propertyPaths(settingsJson).filter((path) => isSecretName(path.split('.').at(-1) ?? ''))
        expect(leaked, 'fields named like secrets belong in secretsSchema').toEqual([])
      })

      it('declares an input schema and how retries stay safe for each operation', () => {
        const operations = [connector.salesOrders?.upsert, connector.inventory?.reserve].filter((op) => op !== undefined)
        for (const op of operations) {
          expect(typeof op.inputSchema.safeParse).toBe('function')
          expect(['native-key', 'lookup-by-reference', 'none']).toContain(op.idempotency)
          expect(typeof op.run).toBe('function')
        }
        if (connector.webhooks) {
          expect(connector.webhooks.verification).toBe('standard-webhooks')
          expect(typeof connector.webhooks.bodySchema.safeParse).toBe('function')
        }
        if (connector.customWebhooks) expect(connector.customWebhooks.contentTypes.length).toBeGreaterThan(0)
      })

      it('describes the fields of its targets, when it says it can', async ({ skip }) => {
        const describeFields = connector.describeFields
        if (!describeFields) return skip('no describeFields')
        const target = connector.salesOrders ? 'salesOrder' : 'customer'
        const fields = await describeFields(context(), target)
        for (const field of fields) {
          expect(field.path).toMatch(/^[A-Za-z_$][\w$-]*(\[\])?(\.[A-Za-z_$][\w$-]*(\[\])?)*$/)
          expect(typeof field.type).toBe('string')
          expect(typeof field.required).toBe('boolean')
        }
        expect(new Set(fields.map((field) => field.path)).size).toBe(fields.length)
        expect(await describeFields(context(), 'no-such-target')).toEqual([])
      })
    })

    describe('check()', () => {
      it('passes against the simulator', async () => {
        await connector.check(context())
      })

      it('fails as auth with a wrong secret', async () => {
        const wrong = context({ secrets: connector.manifest.secretsSchema.parse(wrongSecrets) })
        const err = await failureOf(() => connector.check(wrong))
        expect(classified(err, wrong).kind).toBe('auth')
      })

      it('fails as transient when the remote is unreachable', async ({ skip }) => {
        const raw = unreachable(env.ctx.settings, await freePort())
        if (raw === undefined) return skip('no URL in the settings to point elsewhere')
        const ctx = context({ settings: connector.manifest.settingsSchema.parse(raw) })
        const err = await failureOf(() => connector.check(ctx))
        expect(classified(err, ctx).kind).toBe(expectedKind('refused', 'transient'))
      })
    })

    describe('classify()', () => {
      it.for(httpCases)('maps HTTP %i as the kit does', (status) => {
        const headers = status === 429 ? { 'retry-after': String(retryAfterSeconds) } : undefined
        const failure = classified(syntheticAxiosError({ status, headers, secret: secretValues[0] }))
        expect(failure.kind).toBe(expectedKind(status, failureKindForStatus(status)))
        expect(failure.details.httpStatus).toBe(status)
        if (status === 429 && env.expectedKinds?.[429] === undefined) expect(failure.details.retryAfterMs).toBe(retryAfterSeconds * 1000)
      })

      it.for([
        ['timeout', 'ECONNABORTED'],
        ['timeout', 'ETIMEDOUT'],
        ['reset', 'ECONNRESET'],
        ['refused', 'ECONNREFUSED'],
      ] as const)('maps a %s (%s) as the kit does', ([kase, code]) => {
        const err = syntheticAxiosError({ code, secret: secretValues[0] })
        expect(classified(err).kind).toBe(expectedKind(kase, classifyHttpError(err, 'kit').kind))
      })

      it('keeps a SyncFailure it is given, and turns an unexpected error into one', () => {
        const given = new SyncFailure('data', 'document refused')
        expect(classified(given).kind).toBe('data')
        classified(new TypeError(`cannot read properties of undefined (token ${secretValues[0] ?? ''})`))
      })

      it.for(httpCases)('maps a real HTTP %i from the simulator as the kit does', async (status, { skip }) => {
        if (!env.faults) return skip('no faults.failNext')
        const ctx = operation()
        env.faults.failNext(status, status === 429 ? { 'retry-after': String(retryAfterSeconds) } : undefined)
        const failure = classified(await failureOf(() => probe()(ctx)), ctx)
        expect(failure.kind).toBe(expectedKind(status, failureKindForStatus(status)))
        if (status === 429 && env.expectedKinds?.[429] === undefined) expect(failure.details.retryAfterMs).toBe(retryAfterSeconds * 1000)
      })
    })

    describe('salesOrders', () => {
      const ready = (skip: (note: string) => never) => {
        const salesOrders = connector.salesOrders
        if (!salesOrders) return skip('no salesOrders capability')
        const sample = env.sampleSalesOrder
        if (!sample) return skip('no sampleSalesOrder to test with')
        const document = (reference: string) => salesOrders.upsert.inputSchema.parse(sample(reference))
        return { salesOrders, document }
      }
      const expectOneOrder = async (reference: string, externalId: string) => {
        const found = await connector.salesOrders!.findByReference(context(), reference)
        expect(found?.externalId).toBe(externalId)
        if (env.countSalesOrders) expect(await env.countSalesOrders(reference)).toBe(1)
      }

      it('creates one order for two creates under one idempotency key', async ({ skip }) => {
        const { salesOrders, document } = ready(skip)
        const { idempotency } = salesOrders.upsert
        if (idempotency === 'none') return skip("idempotency 'none': a retried create is not safe by declaration")
        const first = operation()
        const created = await salesOrders.upsert.run(first, document(first.reference), undefined)
        expect(created.externalId.length).toBeGreaterThan(0)
        if (idempotency === 'native-key') {
          // The key alone must be enough.
          const again = await salesOrders.upsert.run({ ...first }, document(first.reference), undefined)
          expect(again.externalId).toBe(created.externalId)
        }
        // A retry after an unknown outcome.
        const retry = await salesOrders.upsert.run({ ...first, mayHaveWritten: true }, document(first.reference), undefined)
        expect(retry.externalId).toBe(created.externalId)
        await expectOneOrder(first.reference, created.externalId)
      })

      it('finds nothing under an unknown reference', async ({ skip }) => {
        const { salesOrders } = ready(skip)
        expect(await salesOrders.findByReference(context(), `CONF-${run}-unknown`)).toBeUndefined()
      })

      it('updates the order named by existing, keeping its id', async ({ skip }) => {
        const { salesOrders, document } = ready(skip)
        const ctx = operation()
        const created = await salesOrders.upsert.run(ctx, document(ctx.reference), undefined)
        const update = operation({ reference: ctx.reference })
        const updated = await salesOrders.upsert.run(update, document(ctx.reference), created)
        expect(updated.externalId).toBe(created.externalId)
        await expectOneOrder(ctx.reference, created.externalId)
      })

      it('cancels, and cancelling again succeeds', async ({ skip }) => {
        const { salesOrders, document } = ready(skip)
        const cancel = salesOrders.cancel
        if (!cancel) return skip('no cancel')
        const ctx = operation()
        const created = await salesOrders.upsert.run(ctx, document(ctx.reference), undefined)
        const cancelling = operation({ reference: ctx.reference })
        await cancel(cancelling, created)
        await cancel({ ...cancelling, mayHaveWritten: true }, created)
      })

      it('finds an order whose create answer was lost instead of creating another', async ({ skip }) => {
        const { salesOrders, document } = ready(skip)
        const commitThenDropNext = env.faults?.commitThenDropNext
        if (!commitThenDropNext) return skip('no faults.commitThenDropNext')
        if (salesOrders.upsert.idempotency === 'none') return skip("idempotency 'none'")
        const ctx = operation()
        commitThenDropNext()
        const failure = classified(await failureOf(() => salesOrders.upsert.run(ctx, document(ctx.reference), undefined)), ctx)
        expect(failure.kind).toBe(expectedKind('reset', 'unknown_outcome'))
        const retry = await salesOrders.upsert.run({ ...ctx, mayHaveWritten: true }, document(ctx.reference), undefined)
        await expectOneOrder(ctx.reference, retry.externalId)
      })
    })

    describe('inventory', () => {
      const ready = (skip: (note: string) => never) => {
        const inventory = connector.inventory
        if (!inventory) return skip('no inventory capability')
        const sample = env.sampleReservation
        if (!sample) return skip('no sampleReservation to test with')
        return { inventory, request: () => inventory.reserve.inputSchema.parse(sample()) }
      }

      it('reports stock as decimal strings', async ({ skip }) => {
        const { inventory, request } = ready(skip)
        const levels = await inventory.getStock(context(), [...new Set(request().lines.map((line) => line.sku))])
        expect(levels.length).toBeGreaterThan(0)
        for (const level of levels) {
          expect(level.available).toMatch(decimalPattern)
          if (level.onHand !== undefined) expect(level.onHand).toMatch(decimalPattern)
        }
      })

      it('makes one reservation for two reserves under one idempotency key', async ({ skip }) => {
        const { inventory, request } = ready(skip)
        if (inventory.reserve.idempotency === 'none') return skip("idempotency 'none'")
        const ctx = operation()
        const first = await inventory.reserve.run(ctx, request(), undefined)
        for (const line of first.lines) {
          expect(line.requested).toMatch(decimalPattern)
          expect(line.reserved).toMatch(decimalPattern)
        }
        const again = await inventory.reserve.run({ ...ctx, mayHaveWritten: true }, request(), undefined)
        expect(again.externalId).toBe(first.externalId)
        expect((await inventory.findReservation(context(), ctx.reference))?.externalId).toBe(first.externalId)
        await inventory.release(operation({ reference: ctx.reference }), first)
      })

      it('releases, and releasing again succeeds', async ({ skip }) => {
        const { inventory, request } = ready(skip)
        const ctx = operation()
        const reservation = await inventory.reserve.run(ctx, request(), undefined)
        const releasing = operation({ reference: ctx.reference })
        await inventory.release(releasing, reservation)
        await inventory.release({ ...releasing, mayHaveWritten: true }, reservation)
      })
    })

    describe('credit', () => {
      it('answers figures as decimal strings', async ({ skip }) => {
        const credit = connector.credit
        if (!credit) return skip('no credit capability')
        if (env.sampleCustomerId === undefined) return skip('no sampleCustomerId to test with')
        const figures = await credit.getCustomerCredit(context(), env.sampleCustomerId)
        expect(figures.limit).toMatch(decimalPattern)
        expect(figures.outstanding).toMatch(decimalPattern)
        expect(figures.currency).toMatch(/^[A-Z]{3}$/)
        expect(typeof figures.overdue).toBe('boolean')
      })
    })

    describe('crm', () => {
      it('takes the same status update twice as once', async ({ skip }) => {
        const crm = connector.crm
        if (!crm) return skip('no crm capability')
        if (!crmEnabled()) return skip('crm writeback is disabled by these settings')
        const ctx = operation()
        const crmOrderId = env.sampleCrmOrderId?.() ?? ctx.reference
        const update = { state: 'pending_shipment', erpOrderNumber: 'SO-CONF-1', comment: 'conformance' }
        await crm.updateOrderStatus(ctx, crmOrderId, update)
        await crm.updateOrderStatus({ ...ctx, mayHaveWritten: true }, crmOrderId, update)
        if (env.countCrmStatuses) expect(await env.countCrmStatuses(crmOrderId)).toBe(1)
      })
    })

    describe('logs', () => {
      it('logged nothing secret during the suite', () => {
        const text = JSON.stringify(logged, (_key, value: unknown) => (value instanceof Error ? { name: value.name, message: value.message } : value))
        for (const secret of secretValues) expect(text.includes(secret), 'a log entry contains a secret').toBe(false)
      })
    })
  })
}
