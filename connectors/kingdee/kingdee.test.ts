import { readFileSync } from 'node:fs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { describeConnectorConformance } from '../../src/connector-kit/conformance.ts'
import { SyncFailure, withExchangeCapture, type HttpExchange, type Logger, type OperationContext } from '../../src/connector-kit/index.ts'
import { forgetKingdeeSessions, kingdeeClient, parseKingdeeJson, statusOf } from './client.ts'
import { KingdeeError, classifyKingdeeError } from './errors.ts'
import { fieldKeysOf, filterValue, kingdee, salesOrderModelSchema } from './index.ts'
import { secretsSchema, settingsSchema, type KingdeeSecrets, type KingdeeSettings } from './settings.ts'
import { startKingdeeSimulator, type KingdeeSimulator } from './simulator.ts'
import { freePort } from '../../src/shared/free-port.ts'
import { compareInvoices, compareSalesOrders, type OrderSnapshot } from '../../src/reconciliation/compare.ts'

const fixture = (name: string) => readFileSync(new URL(`../../../shared/fixtures/${name}`, import.meta.url), 'utf8')
const example = (name: string) => JSON.parse(readFileSync(new URL(`../../mappings/examples/canonical.to-kingdee.sales-order/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>

const account = { acctId: '6476f2c24443ea', username: 'orderbridge', appId: 'orderbridge_api', appSecret: 'b7b7b07f6e1547308db446efaba92713' }
const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const upsert = kingdee.salesOrders!.upsert
const cancel = kingdee.salesOrders!.cancel!

let k3: KingdeeSimulator
let sequence = 0

type Ctx = OperationContext<KingdeeSettings, KingdeeSecrets>

function context(overrides: { settings?: Record<string, unknown>; secrets?: Partial<KingdeeSecrets>; baseUrl?: string; connectionId?: string } & Partial<Omit<Ctx, 'settings' | 'secrets'>> = {}): Ctx {
  sequence += 1
  const { settings = {}, secrets = {}, baseUrl = k3.url, ...rest } = overrides
  return {
    connectionId: 'kingdee-test',
    settings: settingsSchema.parse({ baseUrl, acctId: account.acctId, username: account.username, timeoutMs: 5_000, ...settings }),
    secrets: secretsSchema.parse({ appId: account.appId, appSecret: account.appSecret, ...secrets }),
    log: noopLogger,
    idempotencyKey: `order-${sequence}.kingdee.salesOrders.upsert.v1`,
    reference: `3f2a9c4e-1b7d-4e8a-a5c6-${String(sequence).padStart(12, '0')}`,
    mayHaveWritten: false,
    ...rest,
  }
}

/** The golden example of the outbound mapping: exactly what the pipeline hands the connector. */
function model(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...example('fxiaoke-order.expected.json'), ...extra }
}

async function failureOf(promise: Promise<unknown>, ctx: Ctx): Promise<SyncFailure> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail')
    },
    (err: unknown) => err,
  )
  return kingdee.classify(error, ctx)
}

const ordersFor = (reference: string) => k3.salesOrders().filter((o) => o.model.FNetOrderBillNo === reference)
const services = (from = 0) => k3.requests().slice(from).map((r) => r.service)

beforeAll(async () => {
  k3 = await startKingdeeSimulator({ ...account, customers: ['CUST0001', 'CUST0042'], materials: ['MAT0001', 'MAT0002'] })
})

afterEach(() => {
  k3.faults.reset()
})

afterAll(async () => {
  await k3.close()
})

describe('settings', () => {
  it('fills in the documented defaults', () => {
    const settings = settingsSchema.parse({ baseUrl: 'https://erp.example.com/k3cloud', acctId: 'a', username: 'u' })
    expect(settings).toMatchObject({
      lcid: 2052,
      salesOrders: {
        formId: 'SAL_SaleOrder',
        referenceField: 'FNetOrderBillNo',
        afterSave: 'submit-audit',
        verifyBaseData: true,
        interactionFlags: [],
        ignoreInteraction: true,
        cancel: { mode: 'unaudit-delete', operation: 'BillClose' },
      },
    })
    expect(settings.credit).toBeUndefined()
  })

  it('refuses field keys that could break out of a query filter', () => {
    const base = { baseUrl: 'https://erp.example.com/k3cloud', acctId: 'a', username: 'u' }
    expect(settingsSchema.safeParse({ ...base, salesOrders: { referenceField: "FNote' or '1'='1" } }).success).toBe(false)
    expect(settingsSchema.safeParse({ ...base, salesOrders: { referenceField: 'FCustId.FNumber' } }).success).toBe(false)
    expect(settingsSchema.safeParse({ ...base, credit: { limit: { formId: 'BD_Customer', customerField: 'FNumber;drop', limitField: 'F_X' } } }).success).toBe(false)
    expect(secretsSchema.safeParse({ appId: 'x', appSecret: '' }).success).toBe(false)
  })

  it('quotes filter values', () => {
    expect(filterValue("O'Brien")).toBe("'O''Brien'")
  })
})

describe('the outbound mapping and the input schema', () => {
  it('accepts every successful golden example of canonical.to-kingdee.sales-order', () => {
    for (const name of ['fxiaoke-order.expected.json', 'account-not-in-table.expected.json']) {
      const parsed = salesOrderModelSchema.safeParse(example(name))
      expect(parsed.error?.issues ?? [], name).toEqual([])
    }
  })

  it('refuses a quantity or price sent as a binary float, and an order without lines', () => {
    const lines = (model().FSaleOrderEntry as Record<string, unknown>[]).map((line) => ({ ...line, FTaxPrice: 113.1 }))
    const result = salesOrderModelSchema.safeParse(model({ FSaleOrderEntry: lines }))
    expect(result.success).toBe(false)
    expect(result.error?.issues.map((i) => i.path.join('.'))).toContain('FSaleOrderEntry.0.FTaxPrice')
    expect(salesOrderModelSchema.safeParse(model({ FSaleOrderEntry: [] })).success).toBe(false)
  })

  it('lists the written field keys for NeedUpDateFields, base data as one field', () => {
    expect(fieldKeysOf(model())).toEqual([
      'FBillTypeID',
      'FNetOrderBillNo',
      'FDate',
      'FSaleOrgId',
      'FCustId',
      'FNote',
      'FSaleOrderFinance',
      'FSettleCurrId',
      'FExchangeTypeId',
      'FIsIncludedTax',
      'FSaleOrderEntry',
      'FRowType',
      'FMaterialId',
      'FQty',
      'FTaxPrice',
      'FIsFree',
    ])
  })
})

describe('the vendor payloads', () => {
  it('reads the published Save and Audit success answers', () => {
    expect(statusOf(parseKingdeeJson(fixture('kingdee-k3cloud-save-response-success.json')))).toEqual({
      isSuccess: true,
      msgCode: 0,
      errors: [],
      successEntities: [{ id: '100029', number: 'FKSQ000004', dIndex: 0 }],
    })
    expect(statusOf(parseKingdeeJson(fixture('kingdee-k3cloud-audit-response-success.json')))?.isSuccess).toBe(true)
  })

  it('classifies the published "already audited" refusal (MsgCode 11) as data, with its message', () => {
    const status = statusOf(parseKingdeeJson(fixture('kingdee-k3cloud-operation-response-error.json')))!
    const failure = classifyKingdeeError(new KingdeeError('Audit', status))
    expect(failure.kind).toBe('data')
    expect(failure.retryable).toBe(false)
    expect(failure.message).toBe('Kingdee refused Audit: 单据编号为“TK202504030001”的销售出库单，单据已经审核！')
  })

  it('reads the documented response template (IsSuccess and MsgCode as text)', () => {
    const status = statusOf(parseKingdeeJson(fixture('kingdee-k3cloud-save-response-doc-template.json')))!
    expect(status.isSuccess).toBe(false)
    expect(classifyKingdeeError(new KingdeeError('Save', status)).kind).toBe('data')
  })

  it('the simulator takes the published Save request as it is (without its _comment)', async () => {
    const post = (service: string, body: unknown, cookie?: string) =>
      fetch(`${k3.url}/Kingdee.BOS.WebApi.ServicesStub.${service}.common.kdsvc`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(cookie ? { cookie } : {}) },
        body: JSON.stringify(body),
      })
    const login = await post('AuthService.LoginByAppSecret', { parameters: [account.acctId, account.username, account.appId, account.appSecret, 2052] })
    expect(((await login.json()) as { LoginResultType: number }).LoginResultType).toBe(1)
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ')
    const { _comment, ...request } = JSON.parse(fixture('kingdee-k3cloud-sal-saleorder-save-request.json')) as Record<string, unknown>
    const answer = parseKingdeeJson(await (await post('DynamicFormService.Save', request, cookie)).text())
    expect(statusOf(answer)).toMatchObject({ isSuccess: true, successEntities: [{ number: expect.stringMatching(/^XSDD\d{6}$/) }] })
    // Its shape is the published success answer's.
    expect(Object.keys((answer as { Result: object }).Result)).toEqual(Object.keys((parseKingdeeJson(fixture('kingdee-k3cloud-save-response-success.json')) as { Result: object }).Result))
  })

  it('keeps numbers as their source text', () => {
    expect(parseKingdeeJson('[[1130.10, 0.1, 100029]]')).toEqual([['1130.10', '0.1', '100029']])
  })
})

describe('login', () => {
  it('logs in with LoginByAppSecret as the published parameters list, and reuses the session cookie', async () => {
    forgetKingdeeSessions()
    const from = k3.requests().length
    const loginsBefore = k3.logins()
    await kingdee.check(context())
    const ctx = context()
    await upsert.run(ctx, model(), undefined)
    await upsert.run(context(), model(), undefined)

    expect(k3.logins()).toBe(loginsBefore + 1)
    const login = k3.requests()[from]!
    expect(login.service).toBe('LoginByAppSecret')
    const published = JSON.parse(fixture('kingdee-k3cloud-login-by-appsecret.json')) as { request: { parameters: unknown[] } }
    expect(login.body).toEqual({ parameters: [account.acctId, account.username, account.appId, account.appSecret, 2052] })
    expect((login.body as { parameters: unknown[] }).parameters).toHaveLength(published.request.parameters.length)
    const sessions = new Set(k3.requests().slice(from + 1).map((r) => r.sessionId))
    expect(sessions.size).toBe(1)
    expect([...sessions][0]).toMatch(/^[0-9a-f]{32}$/)
  })

  it('logs in again once when Kingdee says the session was lost, and repeats the call', async () => {
    await kingdee.check(context())
    const loginsBefore = k3.logins()
    k3.faults.expireSessions()
    const from = k3.requests().length
    const ctx = context()

    const result = await upsert.run(ctx, model(), undefined)

    expect(ordersFor(ctx.reference).map((o) => o.FBillNo)).toEqual([result.externalId])
    expect(k3.logins()).toBe(loginsBefore + 1)
    expect(services(from).slice(0, 3)).toEqual(['ExecuteBillQuery', 'LoginByAppSecret', 'ExecuteBillQuery'])
  })

  it('gives up with auth when even a fresh session is refused', async () => {
    await kingdee.check(context())
    k3.faults.refuseNext(2, { msgCode: 1, message: '会话信息已丢失，请重新登录' })
    const ctx = context()

    const failure = await failureOf(upsert.run(ctx, model(), undefined), ctx)

    expect(failure.kind).toBe('auth')
    expect(ordersFor(ctx.reference)).toEqual([])
  })

  it('keeps the app secret and the session out of the exchange log', async () => {
    forgetKingdeeSessions()
    const exchanges: HttpExchange[] = []
    await withExchangeCapture((e) => exchanges.push(e), () => upsert.run(context(), model(), undefined))
    expect(exchanges.map((e) => e.url.replace(k3.url, ''))).toEqual([
      '/Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc',
      '/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc',
      '/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc',
      '/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Submit.common.kdsvc',
      '/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Audit.common.kdsvc',
    ])
    const logged = JSON.stringify(exchanges)
    expect(logged).not.toContain(account.appSecret)
    const sessionId = k3.requests().at(-1)!.sessionId!
    expect(logged).not.toContain(sessionId)
  })

  it('classifies a wrong app secret as auth, with Kingdee\'s reason', async () => {
    const ctx = context({ secrets: { appSecret: 'wrong' } })
    const failure = await failureOf(upsert.run(ctx, model(), undefined), ctx)
    expect(failure.kind).toBe('auth')
    expect(failure.message).toContain('应用ID或应用密钥错误')
    expect(failure.message).not.toContain('wrong')
  })
})

describe('salesOrders.upsert', () => {
  it('sends a Save request shaped like the published one, then Submit and Audit', async () => {
    const ctx = context()
    await kingdee.check(ctx)
    const from = k3.requests().length

    const result = await upsert.run(ctx, model(), undefined)

    expect(result.externalId).toMatch(/^XSDD\d{6}$/)
    expect(services(from)).toEqual(['ExecuteBillQuery', 'Save', 'Submit', 'Audit'])
    const save = k3.requests()[from + 1]!.body as { formid: string; data: Record<string, unknown> }
    const published = JSON.parse(fixture('kingdee-k3cloud-sal-saleorder-save-request.json')) as { formid: string; data: Record<string, unknown> }
    expect(save.formid).toBe(published.formid)
    // Every option of the published request, plus IgnoreInterationFlag from the Save documentation.
    expect(Object.keys(save.data).sort()).toEqual([...Object.keys(published.data), 'IgnoreInterationFlag'].sort())
    expect(save.data).toMatchObject({
      NeedUpDateFields: [],
      IsDeleteEntry: 'true',
      IsVerifyBaseDataField: 'true',
      ValidateFlag: 'true',
      NumberSearch: 'true',
      InterationFlags: '',
      IgnoreInterationFlag: 'true',
      IsAutoSubmitAndAudit: 'false',
    })
    expect(save.data.Model).toEqual({ ...model(), FNetOrderBillNo: ctx.reference, FID: 0 })
    const [order] = ordersFor(ctx.reference)
    expect(order).toMatchObject({ FBillNo: result.externalId, FDocumentStatus: 'C', FCloseStatus: 'A' })
    expect(order!.model.FSaleOrderEntry).toEqual(model().FSaleOrderEntry)
  })

  it('looks the order up by our reference with ExecuteBillQuery', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, model(), undefined)
    const from = k3.requests().length

    await expect(kingdee.salesOrders!.findByReference(ctx, ctx.reference)).resolves.toEqual(created)
    await expect(kingdee.salesOrders!.findByReference(ctx, 'no-such-reference')).resolves.toBeUndefined()
    expect(k3.requests()[from]!.body).toEqual({
      data: {
        FormId: 'SAL_SaleOrder',
        FieldKeys: 'FID,FBillNo,FDocumentStatus,FCloseStatus',
        FilterString: `FNetOrderBillNo = '${ctx.reference}'`,
        OrderString: '',
        TopRowCount: 0,
        StartRow: 0,
        Limit: 2000,
        SubSystemId: '',
      },
    })
  })

  it('saves with the configured interaction flags, or submits and audits in the Save itself', async () => {
    const ctx = context({ settings: { salesOrders: { afterSave: 'auto-submit-audit', interactionFlags: ['STK_InvCheckResult', 'SAL_DOWNPRICECHECK'], verifyBaseData: false } } })
    const from = k3.requests().length

    await upsert.run(ctx, model(), undefined)

    expect(services(from).filter((s) => s !== 'LoginByAppSecret')).toEqual(['ExecuteBillQuery', 'Save'])
    const save = k3.requests().find((r, i) => i >= from && r.service === 'Save')!.body as { data: Record<string, unknown> }
    expect(save.data).toMatchObject({ InterationFlags: 'STK_InvCheckResult;SAL_DOWNPRICECHECK', IsAutoSubmitAndAudit: 'true', IsVerifyBaseDataField: 'false' })
    expect(ordersFor(ctx.reference)[0]?.FDocumentStatus).toBe('C')
  })

  it('updates an audited order: UnAudit, Save with FID and NeedUpDateFields, Submit, Audit', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, model(), undefined)
    const lines = [{ FRowType: 'Standard', FMaterialId: { FNumber: 'MAT0002' }, FQty: '3', FTaxPrice: '180.80', FIsFree: 'false' }]
    const from = k3.requests().length

    const updated = await upsert.run({ ...ctx, idempotencyKey: `${ctx.idempotencyKey}-v2` }, model({ FSaleOrderEntry: lines }), created)

    expect(updated).toEqual(created)
    expect(services(from)).toEqual(['ExecuteBillQuery', 'UnAudit', 'Save', 'Submit', 'Audit'])
    const [order] = ordersFor(ctx.reference)
    const save = k3.requests()[from + 2]!.body as { data: { Model: Record<string, unknown>; NeedUpDateFields: string[] } }
    expect(save.data.Model.FID).toBe(order!.FID)
    expect(save.data.NeedUpDateFields).toContain('FSaleOrderEntry')
    expect(order).toMatchObject({ FDocumentStatus: 'C', saves: 2 })
    expect(order!.model.FSaleOrderEntry).toEqual(lines)
    expect(ordersFor(ctx.reference)).toHaveLength(1)
  })

  describe('when Kingdee commits the Save but the answer is lost', () => {
    it('classifies the loss as unknown_outcome, and the retry finds the order instead of creating a second', async () => {
      const ctx = context()
      await kingdee.check(ctx)
      k3.faults.commitThenDrop(1)

      const failure = await failureOf(upsert.run(ctx, model(), undefined), ctx)
      expect(failure.kind).toBe('unknown_outcome')
      expect(ordersFor(ctx.reference)).toHaveLength(1)
      expect(ordersFor(ctx.reference)[0]?.FDocumentStatus).toBe('A')

      const from = k3.requests().length
      const retried = await upsert.run({ ...ctx, mayHaveWritten: true }, model(), undefined)

      const orders = ordersFor(ctx.reference)
      expect(orders).toHaveLength(1)
      expect(retried).toEqual({ externalId: orders[0]!.FBillNo })
      expect(orders[0]!.FDocumentStatus).toBe('C')
      expect(services(from)).toEqual(['ExecuteBillQuery', 'Save', 'Submit', 'Audit'])
      expect((k3.requests()[from + 1]!.body as { data: { Model: { FID: number } } }).data.Model.FID).toBe(orders[0]!.FID)
    })

    it('finds the order on a retry after Save succeeded and Audit was refused, and finishes it', async () => {
      const ctx = context()
      k3.faults.refuseNext(1, { msgCode: 11, message: '信用额度不足，不允许审核' }, 'Audit')
      const failure = await failureOf(upsert.run(ctx, model(), undefined), ctx)
      expect(failure.kind).toBe('data')
      expect(ordersFor(ctx.reference)[0]?.FDocumentStatus).toBe('B')

      // A replay after the data failure: nothing says the first attempt wrote, the lookup still finds it.
      const result = await upsert.run(ctx, model(), undefined)
      expect(ordersFor(ctx.reference)).toHaveLength(1)
      expect(ordersFor(ctx.reference)[0]).toMatchObject({ FBillNo: result.externalId, FDocumentStatus: 'C' })
    })
  })

  describe('classify', () => {
    it('a refused document is data, with the field names in the message, and creates nothing', async () => {
      const ctx = context()
      const lines = [{ FMaterialId: { FNumber: 'MAT9999' }, FQty: '1', FTaxPrice: '1.00' }]
      const failure = await failureOf(upsert.run(ctx, model({ FCustId: { FNumber: 'CUST9999' }, FSaleOrderEntry: lines }), undefined), ctx)
      expect(failure.kind).toBe('data')
      expect(failure.message).toBe(
        'Kingdee refused Save: FCustId: 字段“客户”的值“CUST9999”在系统中不存在或未审核; FMaterialId: 第1行分录，字段“物料编码”的值“MAT9999”在系统中不存在或未审核',
      )
      expect(ordersFor(ctx.reference)).toEqual([])
    })

    it('a network-control conflict (MsgCode 13) or a lock message is conflict, and retried', async () => {
      const ctx = context()
      k3.faults.refuseNext(1, { msgCode: 13, message: '网络控制冲突：单据正在被其他用户修改' }, 'Save')
      const failure = await failureOf(upsert.run(ctx, model(), undefined), ctx)
      expect(failure).toMatchObject({ kind: 'conflict', retryable: true })
      const locked = classifyKingdeeError(new KingdeeError('Save', { isSuccess: false, msgCode: 4, errors: [{ fieldName: '', message: '数据已被锁定，请稍后再试' }], successEntities: [] }))
      expect(locked.kind).toBe('conflict')
    })

    it('a call limit (MsgCode 14) is rate_limited; no permission (MsgCode 2) is auth; a database failure (6) is transient', () => {
      const kind = (msgCode: number) => classifyKingdeeError(new KingdeeError('Save', { isSuccess: false, msgCode, errors: [{ fieldName: '', message: 'x' }], successEntities: [] })).kind
      expect(kind(14)).toBe('rate_limited')
      expect(kind(2)).toBe('auth')
      expect(kind(6)).toBe('transient')
      expect(kind(10)).toBe('not_found')
      expect(kind(9)).toBe('data')
    })

    it('an HTTP 503 is transient and writes nothing; an unreachable site is transient', async () => {
      const ctx = context()
      await kingdee.check(ctx)
      k3.faults.failNext(1, 503, { 'retry-after': '3' })
      const failure = await failureOf(upsert.run(ctx, model(), undefined), ctx)
      expect(failure).toMatchObject({ kind: 'transient', details: { httpStatus: 503, retryAfterMs: 3000 } })
      expect(ordersFor(ctx.reference)).toEqual([])

      const port = await freePort()
      const offline = context({ baseUrl: `http://127.0.0.1:${port}/k3cloud` })
      expect((await failureOf(upsert.run(offline, model(), undefined), offline)).kind).toBe('transient')
    })

    it('a Save answered 200 with something that is not JSON is unknown_outcome; a query so answered is transient', async () => {
      const ctx = context()
      await kingdee.check(ctx)
      k3.faults.failNext(1, 200, {}, 'Save')
      expect((await failureOf(upsert.run(ctx, model(), undefined), ctx)).kind).toBe('unknown_outcome')
      k3.faults.failNext(1, 200, {}, 'ExecuteBillQuery')
      expect((await failureOf(upsert.run(ctx, model(), undefined), ctx)).kind).toBe('transient')
    })
  })
})

describe('salesOrders.cancel', () => {
  it('unaudits and deletes the order, and a second cancel succeeds', async () => {
    const ctx = context()
    const created = await upsert.run(ctx, model(), undefined)
    const from = k3.requests().length

    await cancel(ctx, created)
    expect(ordersFor(ctx.reference)).toEqual([])
    expect(services(from)).toEqual(['ExecuteBillQuery', 'UnAudit', 'Delete'])
    await expect(cancel(ctx, created)).resolves.toBeUndefined()
  })

  it('runs the configured close operation instead, once', async () => {
    const ctx = context({ settings: { salesOrders: { cancel: { mode: 'operation' } } } })
    const created = await upsert.run(ctx, model(), undefined)
    const from = k3.requests().length

    await cancel(ctx, created)
    await cancel(ctx, created)

    expect(ordersFor(ctx.reference)[0]).toMatchObject({ FDocumentStatus: 'C', FCloseStatus: 'B' })
    expect(services(from)).toEqual(['ExecuteBillQuery', 'ExcuteOperation', 'ExecuteBillQuery'])
    expect(k3.requests()[from + 1]!.body).toMatchObject({ formid: 'SAL_SaleOrder', opNumber: 'BillClose' })
  })
})

describe('credit.getCustomerCredit', () => {
  const creditSettings = {
    credit: {
      limit: { formId: 'BD_Customer', customerField: 'FNumber', limitField: 'F_PAEZ_CreditLimit', currencyField: 'FTRADINGCURRID.FNumber' },
      receivables: { paidField: 'F_PAEZ_Received' },
    },
  }

  beforeAll(() => {
    k3.setRows('BD_Customer', [
      { FNumber: 'CUST0001', F_PAEZ_CreditLimit: { number: '50000' }, 'FTRADINGCURRID.FNumber': 'PRE001' },
      { FNumber: 'CUST0042', F_PAEZ_CreditLimit: { number: '1000.5' }, 'FTRADINGCURRID.FNumber': 'PRE001' },
    ])
    const receivable = (customer: string, amount: string, received: string, due: string, status = 'C', written = 'B') => ({
      'FCUSTOMERID.FNumber': customer,
      FALLAMOUNTFOR: { number: amount },
      F_PAEZ_Received: { number: received },
      FENDDATE_H: `${due}T00:00:00`,
      'FCURRENCYID.FNumber': 'PRE001',
      FDocumentStatus: status,
      FWRITTENOFFSTATUS: written,
    })
    k3.setRows('AR_receivable', [
      receivable('CUST0001', '1130.10', '0', '2999-12-31', 'C', 'A'),
      receivable('CUST0001', '0.20', '0.10', '2999-12-31'),
      receivable('CUST0001', '999.99', '999.99', '2000-01-01', 'C', 'C'),
      receivable('CUST0001', '500', '0', '2999-01-01', 'A', 'A'),
      receivable('CUST0042', '300.00', '100.00', '2000-01-31'),
    ])
  })

  it('answers decimal strings: the limit, and the open part of audited receivables not written off', async () => {
    const credit = await kingdee.credit!.getCustomerCredit(context({ settings: creditSettings }), 'CUST0001')
    expect(credit).toEqual({ limit: '50000.00', outstanding: '1130.20', currency: 'CNY', overdue: false })
  })

  it('is overdue when an open receivable is past its due date', async () => {
    const credit = await kingdee.credit!.getCustomerCredit(context({ settings: creditSettings }), 'CUST0042')
    expect(credit).toEqual({ limit: '1000.50', outstanding: '200.00', currency: 'CNY', overdue: true })
  })

  it('queries with the configured form, fields and filter', async () => {
    const from = k3.requests().length
    await kingdee.credit!.getCustomerCredit(context({ settings: creditSettings }), 'CUST0042')
    const queries = k3.requests().slice(from).filter((r) => r.service === 'ExecuteBillQuery').map((r) => (r.body as { data: Record<string, unknown> }).data)
    expect(queries.map((q) => [q.FormId, q.FieldKeys, q.FilterString])).toEqual([
      ['BD_Customer', 'F_PAEZ_CreditLimit,FTRADINGCURRID.FNumber', "FNumber = 'CUST0042'"],
      ['AR_receivable', 'FALLAMOUNTFOR,FENDDATE_H,F_PAEZ_Received,FCURRENCYID.FNumber', "FCUSTOMERID.FNumber = 'CUST0042' and (FDocumentStatus = 'C' and FWRITTENOFFSTATUS <> 'C')"],
    ])
  })

  it('fails with config when no limit query is configured, not_found for an unknown customer', async () => {
    const unconfigured = context()
    expect(await failureOf(kingdee.credit!.getCustomerCredit(unconfigured, 'CUST0001'), unconfigured)).toMatchObject({ kind: 'config' })
    const ctx = context({ settings: creditSettings })
    expect(await failureOf(kingdee.credit!.getCustomerCredit(ctx, 'CUST7777'), ctx)).toMatchObject({ kind: 'not_found' })
  })

  it('classifies a field the form does not have (MsgCode 9) as data', async () => {
    const ctx = context({ settings: { credit: { ...creditSettings.credit, limit: { ...creditSettings.credit.limit, limitField: 'FCreditAmount' } } } })
    const failure = await failureOf(kingdee.credit!.getCustomerCredit(ctx, 'CUST0001'), ctx)
    expect(failure.kind).toBe('data')
    expect(failure.message).toContain('FCreditAmount')
  })
})

describe('reconciliation reads', () => {
  let sim: KingdeeSimulator
  const so = kingdee.salesOrders!
  const invoices = kingdee.invoices!

  beforeAll(async () => {
    sim = await startKingdeeSimulator({ ...account, customers: ['CUST0001', 'CUST0042'], materials: ['MAT0001', 'MAT0002'] })
  })
  afterAll(async () => {
    await sim.close()
  })
  afterEach(() => {
    sim.faults.reset()
  })

  const rctx = (settings: Record<string, unknown> = {}) => context({ baseUrl: sim.url, settings })
  const queries = (from: number) =>
    sim
      .requests()
      .slice(from)
      .filter((r) => r.service === 'ExecuteBillQuery')
      .map((r) => (r.body as { data: Record<string, unknown> }).data)
  /** Creates (Save, Submit, Audit) a sales order under a fresh reference; answers its reference and bill number. */
  async function order(lines?: Record<string, unknown>[]): Promise<{ reference: string; billNo: string }> {
    const ctx = rctx()
    const created = await upsert.run(ctx, model(lines ? { FSaleOrderEntry: lines } : {}), undefined)
    return { reference: ctx.reference, billNo: created.externalId }
  }

  it('has defaults for a standard account set', () => {
    expect(settingsSchema.parse({ baseUrl: 'https://erp.example.com/k3cloud', acctId: 'a', username: 'u' }).reconciliation).toMatchObject({
      timezone: 'Asia/Shanghai',
      batchSize: 100,
      salesOrders: { totalField: 'FBillAllAmount', currencyField: 'FSettleCurrId.FNumber', skuField: 'FMaterialId.FNumber', quantityField: 'FQty', modifiedField: 'FModifyDate' },
      invoices: {
        formId: 'AR_receivable',
        salesOrderField: 'FORDERNUMBER',
        amountField: 'FALLAMOUNTFOR',
        paidField: 'FRelateHadPayAmount',
        dueDateField: 'FENDDATE_H',
        currencyField: 'FCURRENCYID.FNumber',
        filter: "FDocumentStatus = 'C' and FCancelStatus = 'A'",
      },
    })
  })

  describe('salesOrders.findManyByReference', () => {
    it('reads many references in batches of `in` filters, with totals, lines and status in the kit\'s words', async () => {
      const made = [await order(), await order(), await order(), await order(), await order()]
      const from = sim.requests().length

      const found = await so.findManyByReference!(rctx({ reconciliation: { batchSize: 2 } }), [...made.map((m) => m.reference), 'no-such-order'])

      const sent = queries(from)
      expect(sent.map((q) => q.FilterString)).toEqual([
        `FNetOrderBillNo in ('${made[0]!.reference}','${made[1]!.reference}')`,
        `FNetOrderBillNo in ('${made[2]!.reference}','${made[3]!.reference}')`,
        `FNetOrderBillNo in ('${made[4]!.reference}','no-such-order')`,
      ])
      expect(sent[0]).toMatchObject({ FormId: 'SAL_SaleOrder', FieldKeys: 'FID,FBillNo,FDocumentStatus,FCloseStatus,FCancelStatus,FManualClose,FNetOrderBillNo,FBillAllAmount,FSettleCurrId.FNumber,FModifyDate,FMaterialId.FNumber,FQty', OrderString: 'FID ASC' })
      expect(found.map((o) => o.reference)).toEqual(made.map((m) => m.reference))
      const first = sim.salesOrders().find((o) => o.FBillNo === made[0]!.billNo)!
      expect(found[0]).toEqual({
        externalId: made[0]!.billNo,
        reference: made[0]!.reference,
        status: 'open',
        remoteStatus: '已审核',
        currency: 'CNY',
        // 2 × 113.00 + 1 × 180.80, answered by Kingdee as the JSON number 406.8.
        total: '406.80',
        lines: [
          { sku: 'MAT0001', quantity: '2' },
          { sku: 'MAT0002', quantity: '1' },
        ],
        updatedAt: new Date(`${first.FModifyDate}+08:00`).toISOString(),
      })
    })

    it('answers JSON numbers as exact decimal strings, never through a float', async () => {
      const made = await order([
        { FRowType: 'Standard', FMaterialId: { FNumber: 'MAT0001' }, FQty: '1', FTaxPrice: '0.10', FIsFree: 'false' },
        { FRowType: 'Standard', FMaterialId: { FNumber: 'MAT0002' }, FQty: '1', FTaxPrice: '0.20', FIsFree: 'false' },
        { FRowType: 'Standard', FMaterialId: { FNumber: 'MAT0002' }, FQty: '0.5', FTaxPrice: '1130.01', FIsFree: 'false' },
      ])
      const raw = await fetch(`${sim.url}/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: `kdservice-sessionid=${sim.requests().at(-1)!.sessionId}` },
        body: JSON.stringify({ data: { FormId: 'SAL_SaleOrder', FieldKeys: 'FBillNo,FBillAllAmount,FQty', FilterString: `FBillNo = '${made.billNo}'` } }),
      })
      // Kingdee's wire format: an array of rows in FieldKeys order, amounts as JSON numbers.
      expect(await raw.text()).toBe(`[["${made.billNo}",565.31,1.0],["${made.billNo}",565.31,1.0],["${made.billNo}",565.31,0.5]]`)

      const [found] = await so.findManyByReference!(rctx(), [made.reference])
      // 0.10 + 0.20 + 565.005 (half-up to 565.01) = 565.31; quantities keep their scale.
      expect(found).toMatchObject({ total: '565.31', lines: [{ sku: 'MAT0001', quantity: '1' }, { sku: 'MAT0002', quantity: '1' }, { sku: 'MAT0002', quantity: '0.5' }] })
    })

    it('answers every order under a reference, a second one included', async () => {
      const made = await order()
      const ctx = rctx()
      await kingdeeClient(ctx).save('SAL_SaleOrder', { ...model(), FNetOrderBillNo: made.reference, FID: 0 }, { needUpdateFields: [], isDeleteEntry: true, verifyBaseData: true, interactionFlags: [], ignoreInteraction: true, autoSubmitAndAudit: false })
      const found = await so.findManyByReference!(ctx, [made.reference])
      expect(found.map((o) => [o.reference, o.remoteStatus])).toEqual([
        [made.reference, '已审核'],
        [made.reference, '创建'],
      ])
    })

    it('reads a voided order as cancelled; an order closed by hand only when this connection cancels by closing', async () => {
      const voided = await order()
      const closed = await order()
      sim.patchSalesOrder(voided.billNo, { FCancelStatus: 'B' })
      sim.patchSalesOrder(closed.billNo, { FCloseStatus: 'B', FManualClose: true })

      const read = async (settings: Record<string, unknown>) => Object.fromEntries((await so.findManyByReference!(rctx(settings), [voided.reference, closed.reference])).map((o) => [o.externalId, [o.status, o.remoteStatus]]))
      expect(await read({})).toEqual({ [voided.billNo]: ['cancelled', '已审核, 已作废'], [closed.billNo]: ['open', '已审核, 已关闭'] })
      expect((await read({ salesOrders: { cancel: { mode: 'operation' } } }))[closed.billNo]).toEqual(['cancelled', '已审核, 已关闭'])
      // Closed by Kingdee itself (everything delivered): open either way.
      sim.patchSalesOrder(closed.billNo, { FManualClose: false })
      expect((await read({ salesOrders: { cancel: { mode: 'operation' } } }))[closed.billNo]).toEqual(['open', '已审核, 已关闭'])
    })
  })

  describe('salesOrders.fetch', () => {
    it('reads one order by its bill number; an unknown number is undefined', async () => {
      const made = await order()
      const from = sim.requests().length
      expect(await so.fetch!(rctx(), made.billNo)).toMatchObject({ externalId: made.billNo, reference: made.reference, total: '406.80', currency: 'CNY' })
      expect(queries(from)[0]?.FilterString).toBe(`FBillNo = '${made.billNo}'`)
      expect(await so.fetch!(rctx(), "XSDD' or '1'='1")).toBeUndefined()
    })
  })

  describe('salesOrders.listSince', () => {
    async function listAll(ctx: ReturnType<typeof rctx>, query: { since?: string; limit: number }, between?: (page: number) => void) {
      const seen: string[] = []
      const cursors: (string | null)[] = []
      let cursor: string | null = null
      for (let page = 0; page < 100; page++) {
        const result = await so.listSince!(ctx, { ...query, cursor })
        seen.push(...result.orders.map((o) => o.externalId))
        cursors.push(result.nextCursor)
        cursor = result.nextCursor
        if (!cursor) break
        between?.(page)
      }
      return { seen, cursors }
    }

    it('lists every order once in modify-date order, a page at a time, equal timestamps across a page boundary included', async () => {
      const all = sim.salesOrders().map((o) => o.FBillNo)
      // Seven orders share one modify date, so pages of 3 end inside the run.
      for (const billNo of all.slice(0, 7)) sim.patchSalesOrder(billNo, { FModifyDate: '2001-01-01T00:00:00.000' })
      const from = sim.requests().length

      const { seen, cursors } = await listAll(rctx(), { limit: 3 })

      expect(seen).toHaveLength(all.length)
      expect(new Set(seen)).toEqual(new Set(all))
      expect(seen.slice(0, 7)).toEqual(all.slice(0, 7))
      expect(cursors[0]).toBe(`2001-01-01T00:00:00.000|${sim.salesOrders()[2]!.FID}`)
      const keyset = queries(from).filter((q) => q.FieldKeys === 'FID,FModifyDate')
      expect(keyset[0]).toMatchObject({ FormId: 'SAL_SaleOrder', OrderString: 'FModifyDate ASC, FID ASC', Limit: 3, StartRow: 0, FilterString: '' })
      expect(keyset[1]!.FilterString).toBe(`FModifyDate > '2001-01-01T00:00:00.000' or (FModifyDate = '2001-01-01T00:00:00.000' and FID > ${sim.salesOrders()[2]!.FID})`)
    })

    it('does not pass over an order modified while the pages are read', async () => {
      const all = sim.salesOrders().map((o) => o.FBillNo)
      all.forEach((billNo, i) => sim.patchSalesOrder(billNo, { FModifyDate: `2002-01-01T00:00:${String(i).padStart(2, '0')}.000` }))
      const { seen } = await listAll(rctx(), { limit: 2 }, (page) => {
        // An order of the first page is changed again: it moves to the end, nothing shifts.
        if (page === 0) sim.patchSalesOrder(all[0]!, { FModifyDate: '2002-01-02T00:00:00.000' })
      })
      expect(new Set(seen)).toEqual(new Set(all))
      expect(seen.filter((billNo) => billNo === all[0])).toHaveLength(2)
    })

    it('lists only orders changed since an instant, in the account set\'s wall clock', async () => {
      const [older, newer] = sim.salesOrders().map((o) => o.FBillNo)
      sim.patchSalesOrder(older!, { FModifyDate: '2030-01-01T07:59:59.999' })
      sim.patchSalesOrder(newer!, { FModifyDate: '2030-01-01T08:00:00.000' })
      const from = sim.requests().length
      const page = await so.listSince!(rctx(), { since: '2030-01-01T00:00:00.000Z', cursor: null, limit: 50 })
      expect(page.orders.map((o) => o.externalId)).toEqual([newer])
      expect(page.orders[0]!.updatedAt).toBe('2030-01-01T00:00:00.000Z')
      expect(queries(from)[0]!.FilterString).toBe("FModifyDate >= '2030-01-01T08:00:00.000'")
    })
  })

  describe('invoices.list', () => {
    it('reads the receivables of our orders, amount and paid exact to the cent, one invoice per receivable and order', async () => {
      const a = await order()
      const b = await order()
      const partly = sim.addReceivable({ amount: '406.80', paid: '100.01', dueDate: '2024-06-30', lines: [{ orderNumber: a.billNo, sourceBillNo: 'XSCKD000001' }, { orderNumber: a.billNo }] })
      const both = sim.addReceivable({ amount: '1130.10', paid: '1130.10', dueDate: '2024-07-31', lines: [{ orderNumber: a.billNo }, { orderNumber: b.billNo }] })
      sim.addReceivable({ amount: '5.00', dueDate: '2024-07-31', documentStatus: 'A', lines: [{ orderNumber: a.billNo }] })
      sim.addReceivable({ amount: '6.00', dueDate: '2024-07-31', cancelStatus: 'B', lines: [{ orderNumber: a.billNo }] })
      const from = sim.requests().length

      const { invoices: found, nextCursor } = await invoices.list(rctx(), { orderRefs: [a.reference, b.reference, 'no-such-order'] })

      expect(nextCursor).toBeNull()
      expect(found).toEqual([
        { externalId: String(partly.FID), number: partly.FBillNo, reference: a.reference, salesOrderId: a.billNo, currency: 'CNY', amount: '406.80', paid: '100.01', status: 'partially_paid', dueDate: '2024-06-30' },
        { externalId: String(both.FID), number: both.FBillNo, reference: a.reference, salesOrderId: a.billNo, currency: 'CNY', amount: '1130.10', paid: '1130.10', status: 'paid', dueDate: '2024-07-31' },
        { externalId: String(both.FID), number: both.FBillNo, reference: b.reference, salesOrderId: b.billNo, currency: 'CNY', amount: '1130.10', paid: '1130.10', status: 'paid', dueDate: '2024-07-31' },
      ])
      expect(queries(from).map((q) => [q.FormId, q.FieldKeys, q.FilterString])).toEqual([
        ['SAL_SaleOrder', 'FBillNo,FNetOrderBillNo', `FNetOrderBillNo in ('${a.reference}','${b.reference}','no-such-order')`],
        [
          'AR_receivable',
          'FID,FBillNo,FDocumentStatus,FALLAMOUNTFOR,FRelateHadPayAmount,FENDDATE_H,FCURRENCYID.FNumber,FWRITTENOFFSTATUS,FORDERNUMBER',
          `(FORDERNUMBER in ('${a.billNo}','${b.billNo}')) and (FDocumentStatus = 'C' and FCancelStatus = 'A')`,
        ],
      ])
    })

    it('links receivables through the configured field, e.g. FSOURCEBILLNO when they are pushed from sales orders', async () => {
      const a = await order()
      const pushed = sim.addReceivable({ amount: '406.80', dueDate: '2024-06-30', lines: [{ sourceBillNo: a.billNo }] })
      expect((await invoices.list(rctx(), { orderRefs: [a.reference] })).invoices).toEqual([])
      const { invoices: found } = await invoices.list(rctx({ reconciliation: { invoices: { salesOrderField: 'FSOURCEBILLNO' } } }), { orderRefs: [a.reference] })
      expect(found).toEqual([expect.objectContaining({ externalId: String(pushed.FID), reference: a.reference, amount: '406.80', paid: '0.00', status: 'unpaid' })])
    })

    it('lists receivables changed since an instant, page by page, with the order each belongs to', async () => {
      const a = await order()
      const stamps = ['2031-01-01T08:00:00.000', '2031-01-01T08:00:00.000', '2031-01-01T08:00:00.000', '2031-01-02T08:00:00.000']
      const made = stamps.map((modifyDate, i) => sim.addReceivable({ amount: `${i + 1}.10`, dueDate: '2031-02-01', modifyDate, lines: [{ orderNumber: a.billNo }, { orderNumber: a.billNo }] }))
      sim.addReceivable({ amount: '9.99', dueDate: '2031-02-01', modifyDate: '2030-12-31T23:59:59.999', lines: [{ orderNumber: a.billNo }] })

      const seen: string[] = []
      let cursor: string | null = null
      for (let page = 0; page < 10; page++) {
        const result = await invoices.list(rctx(), { since: '2031-01-01T00:00:00Z', cursor, limit: 2 })
        seen.push(...result.invoices.map((i) => `${i.number}:${i.amount}:${i.reference}`))
        cursor = result.nextCursor
        if (!cursor) break
      }
      expect(seen).toEqual(made.map((m, i) => `${m.FBillNo}:${i + 1}.10:${a.reference}`))
    })

    it('gives reconciliation what it compares: a synced order and its invoice match, drift shows', async () => {
      const a = await order()
      const receivable = sim.addReceivable({ amount: '406.80', paid: '100.01', dueDate: '2024-06-30', lines: [{ orderNumber: a.billNo }] })
      const snapshot: OrderSnapshot = {
        id: a.reference,
        sourceConnection: 'fxiaoke',
        externalId: 'crm-1',
        state: 'pending_shipment',
        sourceVersion: 1,
        currency: 'CNY',
        total: '406.80',
        paymentState: 'partially_paid',
        amountPaid: '100.01',
        lines: [
          { sku: 'MAT0001', quantity: '2' },
          { sku: 'MAT0002', quantity: '1.000' },
        ],
        invoices: [{ number: receivable.FBillNo, amount: '406.80' }],
        erp: { externalId: a.billNo, status: 'synced', leased: false },
      }
      const read = async () => ({
        orders: await so.findManyByReference!(rctx(), [a.reference]),
        invoices: (await invoices.list(rctx(), { orderRefs: [a.reference] })).invoices,
      })
      let now = await read()
      expect(compareSalesOrders(snapshot, now.orders, 'kingdee', '0.00')).toEqual([])
      expect(compareInvoices(snapshot, now.invoices, 'kingdee', '0.00')).toBeNull()

      sim.patchSalesOrder(a.billNo, { FCancelStatus: 'B' })
      now = await read()
      expect(compareSalesOrders(snapshot, now.orders, 'kingdee', '0.00')).toEqual([expect.objectContaining({ kind: 'state_mismatch', externalId: a.billNo, actual: expect.objectContaining({ status: '已审核, 已作废', total: '406.80' }) })])
      expect(compareInvoices({ ...snapshot, amountPaid: '100.00' }, now.invoices, 'kingdee', '0.00')).toMatchObject({ kind: 'invoice_mismatch', actual: { paid: '100.01', problems: ['paid 100.01 in the ERP, 100.00 here'] } })
    })

    it('fails as config for a currency without an ISO code, and as data for a field the account set does not have', async () => {
      const a = await order()
      sim.addReceivable({ amount: '1.00', currency: 'PRE099', dueDate: '2024-06-30', lines: [{ orderNumber: a.billNo }] })
      const ctx = rctx()
      expect(await failureOf(invoices.list(ctx, { orderRefs: [a.reference] }), ctx)).toMatchObject({ kind: 'config', message: expect.stringContaining('PRE099') })
      const mapped = rctx({ reconciliation: { currencyNumbers: { PRE001: 'CNY', PRE099: 'MOP' } } })
      expect((await invoices.list(mapped, { orderRefs: [a.reference] })).invoices.map((i) => i.currency)).toEqual(['MOP'])
      const custom = rctx({ reconciliation: { invoices: { salesOrderField: 'F_PAEZ_SaleOrderNo' } } })
      const failure = await failureOf(invoices.list(custom, { orderRefs: [a.reference] }), custom)
      expect(failure.kind).toBe('data')
      expect(failure.message).toContain('F_PAEZ_SaleOrderNo')
    })
  })
})

describeConnectorConformance('kingdee', async () => {
  const sim = await startKingdeeSimulator({ ...account, customers: ['CUST0001', 'CUST0042'], materials: ['MAT0001', 'MAT0002'] })
  sim.setRows('BD_Customer', [{ FNumber: 'CUST0001', F_PAEZ_CreditLimit: { number: '50000.00' } }])
  sim.setRows('AR_receivable', [
    { 'FCUSTOMERID.FNumber': 'CUST0001', FALLAMOUNTFOR: { number: '406.80' }, FENDDATE_H: '2999-01-01T00:00:00', 'FCURRENCYID.FNumber': 'PRE001', FDocumentStatus: 'C', FWRITTENOFFSTATUS: 'A' },
  ])
  return {
    connector: kingdee,
    ctx: {
      settings: {
        baseUrl: sim.url,
        acctId: account.acctId,
        username: account.username,
        credit: { limit: { formId: 'BD_Customer', customerField: 'FNumber', limitField: 'F_PAEZ_CreditLimit' } },
      },
      secrets: { appId: account.appId, appSecret: account.appSecret },
    },
    // The connector writes our reference into FNetOrderBillNo itself.
    sampleSalesOrder: () => model(),
    countSalesOrders: (reference) => sim.salesOrders().filter((o) => o.model.FNetOrderBillNo === reference).length,
    sampleCustomerId: 'CUST0001',
    faults: {
      failNext: (status, headers) => sim.faults.failNext(1, status, headers),
      commitThenDropNext: () => sim.faults.commitThenDrop(1),
    },
    reset: () => sim.faults.reset(),
    close: () => sim.close(),
  }
})

