/**
 * The Tryton connector: its pure parts always (value encoding, error classification, the mapping's
 * output against the input schema), and against a live Tryton 6.0 when `TRYTON_ENV_JSON` names the
 * env.json of ../shared/tryton/setup.sh (.ci/run sets it; without it the live tests are skipped):
 * the conformance suite through a fault proxy, sales created, confirmed, found and cancelled, stock
 * that drops at confirm (forecast) and at shipment (on hand), credit figures, the credit-limit
 * refusal, re-login after the session ends, lock contention, the login throttle, the poller, and
 * the reads reconciliation compares with.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { AxiosError, AxiosHeaders, type InternalAxiosRequestConfig } from 'axios'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import type { ConnectorContext, InboundEvent, Logger, OperationContext, RemoteInvoice, RemoteRecord } from '../../src/connector-kit/index.ts'
import { isSyncFailure, withExchangeCapture, type HttpExchange, type SyncFailure } from '../../src/connector-kit/index.ts'
import { loadExamples } from '../../src/mapping/golden-examples.ts'
import { logoutCachedSession, TrytonRpcError } from './client.ts'
import { classifyTrytonError, isCreditLimitError } from './errors.ts'
import { tryton, upsertTrytonSale, type TrytonSale } from './index.ts'
import { parseCursor } from './poll.ts'
import type { TrytonSecrets, TrytonSettings } from './settings.ts'
import { connectionOf, demoData, skipMessage, startFaultProxy, trytonPerson, trytonTestEnv, type FaultProxy, type TrytonPerson } from './test-support.ts'
import { addDecimals, compareDecimals, datetime, decimal, decode, floatToDecimal, trimDecimal } from './values.ts'

const env = trytonTestEnv()
const run = randomBytes(3).toString('hex')
type PolledEvent = InboundEvent & { eventId: string }
const silent: Logger = { info: () => {}, warn: () => {}, error: () => {} }

describe('Tryton values', () => {
  it('encodes money as Decimal objects from strings, never numbers', () => {
    expect(decimal('19.99')).toEqual({ __class__: 'Decimal', decimal: '19.99' })
    expect(() => decimal('19,99')).toThrow()
  })

  it('decodes Decimal, date and datetime (to the microsecond) and encodes the datetime back', () => {
    const answer = decode({ a: { __class__: 'Decimal', decimal: '10.50' }, d: { __class__: 'date', year: 2026, month: 1, day: 5 }, t: { __class__: 'datetime', year: 2026, month: 11, day: 27, hour: 9, minute: 3, second: 7, microsecond: 4021 } })
    expect(answer).toEqual({ a: '10.50', d: '2026-01-05', t: '2026-11-27T09:03:07.004021' })
    expect(datetime('2026-11-27T09:03:07.004021')).toMatchObject({ second: 7, microsecond: 4021 })
  })

  it('turns Float quantities into decimal strings without float noise', () => {
    expect(floatToDecimal(100)).toBe('100')
    expect(floatToDecimal(0.1 + 0.2)).toBe('0.3')
    expect(addDecimals('0.1', '0.2')).toBe('0.3')
    expect(compareDecimals('10', '9.99')).toBe(1)
    expect(trimDecimal('330', 2)).toBe('330.00')
  })
})

describe('classifying Tryton errors', () => {
  const axiosError = (status: number, method: string) => {
    const config = { method: 'post', url: '/db/', headers: new AxiosHeaders(), data: JSON.stringify({ id: 1, method, params: [] }) } as InternalAxiosRequestConfig
    return new AxiosError('failed', 'ERR_BAD_REQUEST', config, {}, { status, statusText: '', headers: new AxiosHeaders(), config, data: '<html>', request: {} })
  }

  it('makes the credit-limit UserError a data failure with Tryton\'s message, for finance to read', () => {
    const err = new TrytonRpcError('UserError', ['Party "Acme Corp" has reached their credit limit of $1000.00.', '', null], 'model.sale.sale.confirm')
    expect(isCreditLimitError(err)).toBe(true)
    const failure = classifyTrytonError(err)
    expect(failure.kind).toBe('data')
    expect(failure.message).toBe('Tryton: Party "Acme Corp" has reached their credit limit of $1000.00.')
  })

  it('makes lock contention and ConcurrencyException retryable conflicts', () => {
    expect(classifyTrytonError(new TrytonRpcError('could not obtain lock on relation "sale_sale"\n', '', 'model.sale.sale.confirm')).kind).toBe('conflict')
    expect(classifyTrytonError(new TrytonRpcError('ConcurrencyException', 'Records were modified in the meanwhile', 'model.sale.sale.write')).kind).toBe('conflict')
  })

  it('makes a refused login auth, the login throttle rate_limited, and access rules config', () => {
    expect(classifyTrytonError(axiosError(401, 'common.db.login')).kind).toBe('auth')
    const throttled = classifyTrytonError(axiosError(429, 'common.db.login'))
    expect(throttled.kind).toBe('rate_limited')
    expect(throttled.details.retryAfterMs).toBe(60_000)
    expect(classifyTrytonError(new TrytonRpcError('LoginException', ['password', 'Password for x', 'password'], 'common.db.login')).kind).toBe('auth')
    expect(classifyTrytonError(new TrytonRpcError('UserError', ['You are not allowed to create records of "Party".', '', null], 'model.party.party.create')).kind).toBe('config')
  })
})

describe('the Tryton sale mapping', () => {
  it('produces documents the connector\'s upsert accepts', () => {
    const examples = loadExamples('canonical.to-tryton.sale')
    expect(examples.length).toBeGreaterThan(0)
    for (const example of examples) expect(upsertTrytonSale.inputSchema.safeParse(example.expected).error?.issues ?? [], example.name).toEqual([])
  })
})

describe('the poll cursor', () => {
  it('starts at now minus the settle time, or at `since`', () => {
    const settings = tryton.manifest.settingsSchema.parse({ url: 'http://127.0.0.1:8000/', database: 'db', username: 'u', poll: { settleMs: 1000 } })
    const cursor = parseCursor(null, settings, Date.UTC(2026, 10, 27, 12, 0, 0))
    expect(cursor.shipments).toEqual({ at: '2026-11-27T11:59:59.000000', id: 0 })
    const since = parseCursor(null, { ...settings, poll: { ...settings.poll!, since: '2026-11-01T00:00:00Z' } }, Date.now())
    expect(since.invoices.at).toBe('2026-10-31T23:59:59.999000')
  })
})

if (!env) {
  describe('Tryton (live)', () => {
    it.skip(skipMessage, () => {})
  })
  console.warn(`connectors/tryton: ${skipMessage}`)
} else {
  const acmeCode = demoData.acme.code
  const bigCode = demoData.bigSpender.code

  describeConnectorConformance('tryton (live)', async () => {
    const proxy = await startFaultProxy(env.url)
    const person = await trytonPerson(env)
    await person.codeDemoCustomers()
    const connection = connectionOf(env, { url: proxy.url })
    return {
      connector: tryton,
      ctx: { ...connection, connectionId: `conformance-tryton-${run}` },
      sampleSalesOrder: (reference) => ({
        reference,
        customer: { code: `CONF-${run}`, name: 'Conformance Customer' },
        currency: 'USD',
        lines: [{ product: demoData.widget.code, quantity: '1', unitPrice: demoData.widget.price }],
      }),
      countSalesOrders: async (reference) => (await person.saleByReference(reference)).length,
      sampleReservation: () => ({ allowPartial: false, lines: [{ lineId: '1', sku: demoData.widget.code, quantity: '1' }] }),
      sampleCustomerId: acmeCode,
      faults: { failNext: (status, headers) => proxy.failNext(status, headers), commitThenDropNext: () => proxy.commitThenDropNext() },
      reset: () => proxy.reset(),
      close: () => proxy.close(),
    }
  })

  describe('Tryton (live)', () => {
    let person: TrytonPerson
    let proxy: FaultProxy
    let ctx: ConnectorContext<TrytonSettings, TrytonSecrets>
    let sequence = 0

    const operation = (reference = randomUUID(), overrides: Partial<OperationContext<TrytonSettings, TrytonSecrets>> = {}): OperationContext<TrytonSettings, TrytonSecrets> => ({
      ...ctx,
      idempotencyKey: `${reference}-tryton-salesOrders.upsert-v${++sequence}`,
      reference,
      mayHaveWritten: false,
      ...overrides,
    })
    const sale = (reference: string, customer: string, lines: [string, string, string][]): TrytonSale => ({
      reference,
      customer: { code: customer },
      currency: 'USD',
      description: `test ${run}`,
      lines: lines.map(([product, quantity, unitPrice]) => ({ product, quantity, unitPrice })),
    })
    const failureOf = async (run: () => Promise<unknown>): Promise<SyncFailure> => {
      try {
        await run()
      } catch (err) {
        const failure = tryton.classify(err, ctx)
        expect(isSyncFailure(failure)).toBe(true)
        return failure
      }
      throw new Error('expected a failure')
    }

    beforeAll(async () => {
      person = await trytonPerson(env)
      await person.codeDemoCustomers()
      proxy = await startFaultProxy(env.url)
      const connection = connectionOf(env, { url: proxy.url })
      ctx = {
        connectionId: `tryton-live-${run}`,
        settings: tryton.manifest.settingsSchema.parse(connection.settings),
        secrets: tryton.manifest.secretsSchema.parse(connection.secrets),
        log: silent,
      }
    })
    afterAll(async () => {
      await proxy?.close()
    })

    it('creates, quotes and confirms a sale with our reference, with the right lines and totals, and finds it', async () => {
      const reference = randomUUID()
      const created = await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '5', '10.00'], [demoData.gadget.code, '1', '250.00']]), undefined)
      const [held] = await person.saleByReference(reference)
      expect(held).toMatchObject({ id: Number(created.externalId), state: 'processing', untaxed_amount: '300.00', tax_amount: '30.00', total_amount: '330.00', party: demoData.bigSpender.id })
      expect(held.shipments).toHaveLength(1)
      expect(held.invoices).toHaveLength(1)
      const lines = await person.saleLines(held.lines)
      expect(lines.map((l) => [l['product.'].code, l.quantity, l.unit_price]).sort()).toEqual([
        [demoData.gadget.code, 1, '250.00'],
        [demoData.widget.code, 5, '10.00'],
      ].sort())
      expect(await tryton.salesOrders!.findByReference(ctx, reference)).toEqual(created)
      expect(await tryton.salesOrders!.findByReference(ctx, randomUUID())).toBeUndefined()
      // The same document again changes nothing and keeps the id.
      expect(await upsertTrytonSale.run(operation(reference, { mayHaveWritten: true }), sale(reference, bigCode, [[demoData.widget.code, '5', '10.00'], [demoData.gadget.code, '1', '250.00']]), created)).toEqual(created)
      expect(await person.saleByReference(reference)).toHaveLength(1)
    })

    it('refuses to change the lines of a confirmed sale, as data', async () => {
      const reference = randomUUID()
      const created = await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '1', '10.00']]), undefined)
      const failure = await failureOf(() => upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '2', '10.00']]), created))
      expect(failure.kind).toBe('data')
      expect(failure.message).toMatch(/processing: a confirmed sale's customer and lines cannot be changed/)
    })

    it('continues a sale an interrupted attempt left in draft instead of creating another', async () => {
      const reference = randomUUID()
      const [partyId] = await person.call<number[]>('party.party', 'search', [['code', '=', bigCode]], 0, 1, null)
      await person.call('sale.sale', 'create', [{ party: partyId, invoice_address: 4, shipment_address: 4, reference, lines: [['create', [{ type: 'line', product: 1, quantity: 1, unit: 1, unit_price: { __class__: 'Decimal', decimal: '10.00' } }]]] }])
      const found = await upsertTrytonSale.run(operation(reference, { mayHaveWritten: true }), sale(reference, bigCode, [[demoData.widget.code, '1', '10.00']]), undefined)
      const sales = await person.saleByReference(reference)
      expect(sales).toHaveLength(1)
      expect(sales[0]).toMatchObject({ id: Number(found.externalId), state: 'processing' })
    })

    it('creates a customer (party) for an unknown CRM account, once', async () => {
      const code = `NEW-${run}`
      const reference = randomUUID()
      await upsertTrytonSale.run(operation(reference), { ...sale(reference, code, [[demoData.widget.code, '1', '10.00']]), customer: { code, name: 'Brand New Ltd' } }, undefined)
      const parties = await person.call<{ name: string }[]>('party.party', 'search_read', [['code', '=', code]], 0, null, null, ['name'])
      expect(parties).toEqual([expect.objectContaining({ name: 'Brand New Ltd' })])
      const again = randomUUID()
      await upsertTrytonSale.run(operation(again), sale(again, code, [[demoData.widget.code, '1', '10.00']]), undefined)
      expect(await person.call('party.party', 'search_count', [['code', '=', code]])).toBe(1)
    })

    it('names every product it does not know, as data', async () => {
      const reference = randomUUID()
      const failure = await failureOf(() => upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [['NO-SUCH-SKU', '1', '1.00']]), undefined))
      expect(failure).toMatchObject({ kind: 'data', message: 'Tryton has no product with code NO-SUCH-SKU' })
    })

    it('lowers the forecast when the sale is confirmed and the quantity on hand when its shipment is done', async () => {
      // A product of this test's own: other test files sell the demo products at the same time.
      const product = await person.createProduct(`STOCK-${run}`, '12.00', 10)
      const [level] = await tryton.inventory!.getStock(ctx, [product.code])
      expect(level).toEqual({ sku: product.code, available: '10', onHand: '10', warehouse: 'WH' })
      const reference = randomUUID()
      const reservation = await tryton.inventory!.reserve.run(operation(reference), { allowPartial: false, lines: [{ lineId: '1', sku: product.code, quantity: '3' }] }, undefined)
      expect(reservation).toEqual({ externalId: `atp-${reference}`, lines: [{ lineId: '1', sku: product.code, requested: '3', reserved: '3' }] })
      await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[product.code, '3', '12.00']]), undefined)
      expect(await person.stock(product.code)).toEqual({ quantity: 10, forecast: 7 })
      expect((await tryton.inventory!.getStock(ctx, [product.code]))[0]).toMatchObject({ available: '7', onHand: '10' })
      // The order's own confirmed sale counts as available to it: a retried check still passes, another order's does not.
      expect((await tryton.inventory!.reserve.run(operation(reference, { mayHaveWritten: true }), { allowPartial: false, lines: [{ lineId: '1', sku: product.code, quantity: '3' }] }, undefined)).lines[0]!.reserved).toBe('3')
      expect((await tryton.inventory!.reserve.run(operation(), { allowPartial: true, lines: [{ lineId: '1', sku: product.code, quantity: '9' }] }, undefined)).lines[0]!.reserved).toBe('7')
      expect((await tryton.inventory!.findReservation(ctx, reference))?.lines).toEqual([{ lineId: '1', sku: product.code, requested: '3', reserved: '3' }])
      await person.shipSale(reference)
      expect(await person.stock(product.code)).toEqual({ quantity: 7, forecast: 7 })
    })

    it('refuses a reservation beyond the forecast with what is missing, or reserves part when allowed', async () => {
      const failure = await failureOf(() => tryton.inventory!.reserve.run(operation(), { allowPartial: false, lines: [{ lineId: '1', sku: demoData.noStock.code, quantity: '2' }, { lineId: '2', sku: demoData.widget.code, quantity: '1' }] }, undefined))
      expect(failure.kind).toBe('data')
      expect(failure.details.missing).toEqual([{ lineId: '1', sku: demoData.noStock.code, requested: '2', available: '0' }])
      const partial = await tryton.inventory!.reserve.run(operation(), { allowPartial: true, lines: [{ lineId: '1', sku: demoData.noStock.code, quantity: '2' }] }, undefined)
      expect(partial.lines).toEqual([{ lineId: '1', sku: demoData.noStock.code, requested: '2', reserved: '0' }])
    })

    it('cancels a confirmed sale (shipment and invoice cancelled, stock back), and cancelling again succeeds', async () => {
      const product = await person.createProduct(`CANCEL-${run}`, '250.00', 5)
      const reference = randomUUID()
      const created = await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[product.code, '2', '250.00']]), undefined)
      expect(await person.stock(product.code)).toEqual({ quantity: 5, forecast: 3 })
      await tryton.salesOrders!.cancel!(operation(reference), created)
      await tryton.salesOrders!.cancel!(operation(reference, { mayHaveWritten: true }), created)
      const [held] = await person.saleByReference(reference)
      const shipments = await person.call<{ state: string }[]>('stock.shipment.out', 'read', held.shipments, ['state'])
      const invoices = await person.call<{ state: string }[]>('account.invoice', 'read', held.invoices, ['state'])
      expect(shipments.map((s) => s.state)).toEqual(['cancelled'])
      expect(invoices.map((i) => i.state)).toEqual(['cancelled'])
      expect(held.state).toBe('done')
      expect(await person.stock(product.code)).toEqual({ quantity: 5, forecast: 5 })

      const quoted = randomUUID()
      const draft: RemoteRecord = { externalId: String((await person.call<number[]>('sale.sale', 'create', [{ party: demoData.bigSpender.id, invoice_address: 4, shipment_address: 4, reference: quoted }]))[0]) }
      await tryton.salesOrders!.cancel!(operation(quoted), draft)
      expect((await person.saleByReference(quoted))[0].state).toBe('cancelled')
    })

    it('reads customer credit: limit, outstanding and overdue from the party, in the company currency', async () => {
      const credit = await tryton.credit!.getCustomerCredit(ctx, acmeCode)
      expect(credit).toMatchObject({ limit: '1000.00', currency: 'USD', overdue: false })
      expect(credit.outstanding).toMatch(/^\d+\.\d{2}$/)
      const [party] = await person.call<{ credit_amount: string }[]>('party.party', 'read', [demoData.acme.id], ['credit_amount'])
      expect(credit.outstanding).toBe(trimDecimal(party!.credit_amount, 2))
      // A customer Tryton does not know yet, and one without a limit: the configured stand-in.
      expect(await tryton.credit!.getCustomerCredit(ctx, `UNKNOWN-${run}`)).toEqual({ limit: '0.00', outstanding: '0.00', currency: 'USD', overdue: false })
      expect((await tryton.credit!.getCustomerCredit(ctx, bigCode)).limit).toBe('0.00')
    })

    it('classifies the credit-limit refusal at confirm as data with Tryton\'s message, leaving the sale quoted', async () => {
      const reference = randomUUID()
      const failure = await failureOf(() => upsertTrytonSale.run(operation(reference), sale(reference, acmeCode, [[demoData.gadget.code, '5', '250.00']]), undefined))
      expect(failure.kind).toBe('data')
      expect(failure.message).toMatch(/^Tryton: Party "Acme Corp" has reached their credit limit/)
      expect((await person.saleByReference(reference)).map((s) => s.state)).toEqual(['quotation'])
    })

    it('logs in again when Tryton no longer knows the session', async () => {
      await tryton.inventory!.getStock(ctx, [demoData.widget.code])
      await logoutCachedSession(ctx)
      const logins = proxy.methods().filter((m) => m === 'common.db.login').length
      await tryton.inventory!.getStock(ctx, [demoData.widget.code])
      expect(proxy.methods().filter((m) => m === 'common.db.login').length).toBe(logins + 1)
    })

    it('keeps the password and the session key out of the exchanges it records', async () => {
      const exchanges: HttpExchange[] = []
      const fresh = { ...ctx, connectionId: `exchanges-${run}` }
      await withExchangeCapture((e) => exchanges.push(e), () => tryton.inventory!.getStock(fresh, [demoData.widget.code]))
      expect(exchanges.length).toBeGreaterThan(0)
      const text = JSON.stringify(exchanges)
      expect(text).not.toContain(env.password)
      expect(text).not.toContain('common.db.login')
      expect(text).not.toMatch(/Session [A-Za-z0-9+/=]{16,}/)
    })

    it('answers auth for a wrong password and rate_limited once Tryton throttles the login', async () => {
      // A throw-away login name: Tryton throttles per login, and the API user must stay usable.
      const nobody = { ...ctx, settings: { ...ctx.settings, url: env.url, username: `nobody-${run}`, timeoutMs: 3_000 }, secrets: { password: 'not-the-password' } }
      // At once: Tryton delays each login by up to 2^(earlier failures) - 1 s after recording it; an
      // attempt it keeps waiting past the timeout ends as unknown_outcome, and still counts.
      const attempts = await Promise.all(Array.from({ length: 7 }, (_, i) => failureOf(() => tryton.check({ ...nobody, connectionId: `nobody-${run}-${i}` }))))
      expect(attempts.map((f) => f.kind)).toContain('auth')
      for (const failure of attempts) expect(['auth', 'rate_limited', 'unknown_outcome']).toContain(failure.kind)
      // More than 5 failures in Tryton's window: 429, whatever the password.
      const throttled = await failureOf(() => tryton.check({ ...nobody, connectionId: `nobody-${run}-last` }))
      expect(throttled).toMatchObject({ kind: 'rate_limited', details: { httpStatus: 429, retryAfterMs: 60_000 } })
    }, 90_000)

    it.runIf(env.backend === 'postgresql')('reports lock contention at confirm as a conflict, and the retry confirms the same sale', async () => {
      const reference = randomUUID()
      const db = new pg.Client({ connectionString: process.env.TRYTON_PG_URL ?? `postgresql://tryton:tryton@127.0.0.1:5432/${env.database}` })
      await db.connect()
      try {
        // The credit check takes LOCK TABLE … NOWAIT on account_move_line (Acme has a limit); hold it.
        await db.query('begin')
        await db.query('lock table account_move_line in share mode')
        const failure = await failureOf(() => upsertTrytonSale.run(operation(reference), sale(reference, acmeCode, [[demoData.widget.code, '1', '10.00']]), undefined))
        expect(failure.kind).toBe('conflict')
        expect(failure.retryable).toBe(true)
      } finally {
        await db.query('rollback')
        await db.end()
      }
      const retried = await upsertTrytonSale.run(operation(reference, { mayHaveWritten: true }), sale(reference, acmeCode, [[demoData.widget.code, '1', '10.00']]), undefined)
      const sales = await person.saleByReference(reference)
      expect(sales.map((s) => [s.id, s.state])).toEqual([[Number(retried.externalId), 'processing']])
    }, 60_000)

    it('polls shipments, invoices and each payment into fulfilment events with stable ids', async () => {
      const pollCtx = { ...ctx, settings: { ...ctx.settings, poll: { intervalMs: 1000, settleMs: 0, deliveredOnDone: true } } }
      const start = await tryton.poll!.fetchChanges(pollCtx, null, 100)
      const reference = randomUUID()
      await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '2', '10.00']]), undefined)
      await person.shipSale(reference)
      const invoice = await person.postInvoice(reference)
      expect(invoice.total_amount).toBe('22.00')
      await person.pay(invoice.id, '5.00')
      expect(await person.pay(invoice.id, '17.00')).toMatchObject({ state: 'paid' })
      await new Promise((resolve) => setTimeout(resolve, 50))

      const events: PolledEvent[] = []
      let cursor = start.nextCursor
      // Two polls, as the poller makes them an interval apart: delivered follows shipped at the next.
      for (let poll = 0; poll < 2; poll++) {
        for (let page = 0; page < 20; page++) {
          const changes = await tryton.poll!.fetchChanges(pollCtx, cursor, 100)
          events.push(...changes.events.filter((e) => e.externalId === `ref:${reference}`))
          cursor = changes.nextCursor
          if (!changes.more) break
        }
        if (poll === 0) {
          expect(events.map((e) => e.type)).not.toContain('order.delivered')
          expect(events.map((e) => e.type)).toContain('order.shipped')
        }
      }
      const byType = (type: string) => events.filter((e) => e.type === type)
      expect(byType('order.shipped')).toEqual([expect.objectContaining({ document: { lines: [{ sku: demoData.widget.code, quantity: '2' }] } })])
      expect(byType('order.delivered')).toHaveLength(1)
      expect(byType('order.invoiced').at(-1)).toMatchObject({ eventId: `tryton-invoice-${invoice.id}-posted`, document: { invoiceNumber: invoice.number, amount: '22.00', currency: 'USD', dueDate: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) } })
      // Each payment once, whatever how often the invoice was read: the ids are the payment lines'.
      const payments = new Map(byType('order.payment_received').map((e) => [e.eventId, e.document.amount]))
      expect([...payments.values()].sort()).toEqual(['17.00', '5.00'])
      // Read again from the start: the same event ids.
      const again = await tryton.poll!.fetchChanges(pollCtx, start.nextCursor, 200)
      const ids = new Set(again.events.filter((e) => e.externalId === `ref:${reference}`).map((e) => e.eventId))
      for (const id of payments.keys()) expect(ids.has(id)).toBe(true)
    })

    describe('reconciliation reads', () => {
      const so = () => tryton.salesOrders!
      /** Every page of `listSince` from the start: the sale ids in the order they came. */
      const listAll = async (since: string, limit: number) => {
        const ids: string[] = []
        let cursor: string | null = null
        for (let page = 0; page < 500; page++) {
          const answer: Awaited<ReturnType<NonNullable<ReturnType<typeof so>['listSince']>>> = await so().listSince!(ctx, { since, cursor, limit })
          expect(answer.orders.length).toBeLessThanOrEqual(limit)
          ids.push(...answer.orders.map((o) => o.externalId))
          cursor = answer.nextCursor
          if (cursor === null) return ids
        }
        throw new Error('listSince did not end')
      }

      it('finds the sales of many references in the kit\'s words: duplicates, every state, a sale cancelled after confirmation as cancelled', async () => {
        const reference = randomUUID()
        const created = await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '3', '10.00'], [demoData.gadget.code, '1', '250.00']]), undefined)
        // A second sale under the same reference, entered by hand and left in draft (never written since).
        const [duplicate] = await person.call<number[]>('sale.sale', 'create', [
          { party: demoData.bigSpender.id, invoice_address: 4, shipment_address: 4, reference, lines: [['create', [{ type: 'line', product: 1, quantity: 2, unit: 1, unit_price: { __class__: 'Decimal', decimal: '10.00' } }]]] },
        ])
        const cancelledRef = randomUUID()
        const cancelled = await upsertTrytonSale.run(operation(cancelledRef), sale(cancelledRef, bigCode, [[demoData.widget.code, '1', '10.00']]), undefined)
        await tryton.salesOrders!.cancel!(operation(cancelledRef), cancelled)

        const found = await so().findManyByReference!(ctx, [reference, cancelledRef, randomUUID()])
        const ours = { externalId: created.externalId, reference, status: 'open', remoteStatus: 'processing', currency: 'USD', total: '280.00', updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) }
        expect(found.filter((o) => o.reference === reference).sort((a, b) => Number(a.externalId) - Number(b.externalId))).toEqual([
          { ...ours, lines: expect.arrayContaining([{ sku: demoData.widget.code, quantity: '3' }, { sku: demoData.gadget.code, quantity: '1' }]) },
          { externalId: String(duplicate), reference, status: 'open', remoteStatus: 'draft', currency: 'USD', total: '20.00', lines: [{ sku: demoData.widget.code, quantity: '2' }], updatedAt: expect.any(String) },
        ])
        // Tryton cannot cancel a confirmed sale: `cancel` left it done, with nothing shipped or invoiced.
        expect(found.filter((o) => o.reference === cancelledRef)).toEqual([expect.objectContaining({ externalId: cancelled.externalId, status: 'cancelled', remoteStatus: expect.stringMatching(/^done/) })])
        expect(found).toHaveLength(3)

        expect(await so().fetch!(ctx, created.externalId)).toEqual(found.find((o) => o.externalId === created.externalId))
        expect(await so().fetch!(ctx, '999999999')).toBeUndefined()
        expect(await so().fetch!(ctx, 'SO-1')).toBeUndefined()
      })

      it('lists the sales created or written since a time page by page, each once, the never-written ones too', async () => {
        const since = new Date(Date.now() - 2_000).toISOString()
        const reference = randomUUID()
        const created = await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '1', '10.00']]), undefined)
        const [draft] = await person.call<number[]>('sale.sale', 'create', [{ party: demoData.bigSpender.id, invoice_address: 4, shipment_address: 4, reference: `HAND-${run}` }])
        const ids = await listAll(since, 2)
        expect(ids.filter((id) => id === created.externalId)).toHaveLength(1)
        expect(ids.filter((id) => id === String(draft))).toHaveLength(1)
        // One page or many: the same sales (other test files may add theirs meanwhile).
        const onePage = await listAll(since, 500)
        for (const id of [created.externalId, String(draft)]) expect(onePage.filter((x) => x === id)).toHaveLength(1)
        // Nothing before `since`.
        expect(await listAll(new Date(Date.now() + 60_000).toISOString(), 10)).toEqual([])
        await expect(so().listSince!(ctx, { cursor: 'not json', limit: 10 })).rejects.toMatchObject({ kind: 'bug' })
      })

      it('reads what each order\'s confirmed sale holds as its reservation: active, then shipped; released once cancelled; a quotation\'s quantities before', async () => {
        const [held, cancelledRef, draftRef, noneRef] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
        await upsertTrytonSale.run(operation(held), sale(held, bigCode, [[demoData.widget.code, '2', '10.00'], [demoData.gadget.code, '1', '250.00']]), undefined)
        const cancelled = await upsertTrytonSale.run(operation(cancelledRef), sale(cancelledRef, bigCode, [[demoData.widget.code, '1', '10.00']]), undefined)
        await tryton.salesOrders!.cancel!(operation(cancelledRef), cancelled)
        await person.call('sale.sale', 'create', [
          { party: demoData.bigSpender.id, invoice_address: 4, shipment_address: 4, reference: draftRef, lines: [['create', [{ type: 'line', product: 1, quantity: 3, unit: 1, unit_price: { __class__: 'Decimal', decimal: '10.00' } }]]] },
        ])
        const findMany = tryton.inventory!.findManyReservations!
        const found = await findMany(ctx, [held, cancelledRef, draftRef, noneRef])
        const lines = (widget: string) => expect.arrayContaining([{ lineId: expect.any(String), sku: demoData.widget.code, requested: widget, reserved: widget }, { lineId: expect.any(String), sku: demoData.gadget.code, requested: '1', reserved: '1' }])
        expect(found).toEqual([
          { externalId: `atp-${held}`, reference: held, status: 'active', lines: lines('2') },
          { externalId: `atp-${cancelledRef}`, reference: cancelledRef, status: 'released', lines: [] },
          { externalId: `atp-${draftRef}`, reference: draftRef, status: 'active', lines: [{ lineId: '1', sku: demoData.widget.code, requested: '3', reserved: '3' }] },
        ])
        // The same id and quantities findReservation answers.
        expect(await tryton.inventory!.findReservation(ctx, held)).toEqual({ externalId: `atp-${held}`, lines: lines('2') })
        await person.shipSale(held)
        expect(await findMany(ctx, [held])).toEqual([{ externalId: `atp-${held}`, reference: held, status: 'shipped', lines: lines('2') }])
      })

      it('reads the invoices of our sales: posted or paid, the amount with tax, and what is paid so far', async () => {
        const since = new Date(Date.now() - 2_000).toISOString()
        const reference = randomUUID()
        const created = await upsertTrytonSale.run(operation(reference), sale(reference, bigCode, [[demoData.widget.code, '2', '10.00']]), undefined)
        // The draft invoice made at confirmation has no number yet: not an invoice to compare.
        expect(await tryton.invoices!.list(ctx, { orderRefs: [reference] })).toEqual({ invoices: [], nextCursor: null })
        await person.shipSale(reference)
        const invoice = await person.postInvoice(reference)
        await person.pay(invoice.id, '5.00')
        const expected = { externalId: String(invoice.id), number: invoice.number, reference, salesOrderId: created.externalId, currency: 'USD', amount: '22.00', paid: '5.00', status: 'posted' }
        expect(await tryton.invoices!.list(ctx, { orderRefs: [reference, randomUUID()] })).toEqual({ invoices: [expected], nextCursor: null })
        await person.pay(invoice.id, '17.00')
        expect((await tryton.invoices!.list(ctx, { orderRefs: [reference] })).invoices).toEqual([{ ...expected, paid: '22.00', status: 'paid' }])

        const listed: RemoteInvoice[] = []
        let cursor: string | null = null
        for (let page = 0; page < 200 && (page === 0 || cursor !== null); page++) {
          const answer: { invoices: RemoteInvoice[]; nextCursor: string | null } = await tryton.invoices!.list(ctx, { since, cursor, limit: 1 })
          listed.push(...answer.invoices)
          cursor = answer.nextCursor
        }
        expect(listed.filter((i) => i.externalId === String(invoice.id))).toEqual([{ ...expected, paid: '22.00', status: 'paid' }])
      })
    })
  })
}
