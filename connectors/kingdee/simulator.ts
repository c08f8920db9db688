/**
 * A Kingdee K3 Cloud WebAPI on loopback for tests and the demo: LoginByAppSecret with a
 * `kdservice-sessionid` cookie, and the DynamicFormService endpoints the connector uses (Save,
 * Submit, Audit, UnAudit, CancelAssign, Delete, ExcuteOperation, ExecuteBillQuery, View) under
 * `/k3cloud/…common.kdsvc`, answering HTTP 200 with `Result.ResponseStatus` as the real WebAPI does,
 * refusals included. It keeps SAL_SaleOrder bills with their document, close and void status, lines
 * and modify dates, and any other form's rows you give it (credit limits, receivables) for
 * ExecuteBillQuery, which answers Kingdee's arrays of rows in FieldKeys order, with SQL-like filters
 * (and, or, in, parentheses) and OrderString. Faults are scriptable like the generic REST
 * simulator's. State lives in memory; it does not log.
 *
 * What it does not do: workflows, numbering rules, field-level business rules beyond the required
 * fields, or the array form of FilterString.
 */
import { randomBytes } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'

export type TableValue = string | boolean | null | { number: string }
export type TableRow = Record<string, TableValue>

export interface SimulatedSaleOrder {
  FID: number
  FBillNo: string
  /** Z 暂存, A 创建, B 审核中, C 已审核, D 重新审核. */
  FDocumentStatus: 'Z' | 'A' | 'B' | 'C' | 'D'
  /** A open, B closed. */
  FCloseStatus: 'A' | 'B'
  /** A normal, B voided (作废). */
  FCancelStatus: 'A' | 'B'
  /** Closed by hand (整单关闭), not because everything was delivered. */
  FManualClose: boolean
  /** 创建日期 and 修改日期: the account set's wall clock, "2025-01-09T12:00:45.053". */
  FCreateDate: string
  FModifyDate: string
  /** The saved Model, FID and FBillNo excluded. */
  model: Record<string, unknown>
  /** How many Saves wrote it. */
  saves: number
}

/** A receivable (应收单) as `addReceivable` takes it; amounts are decimal strings. */
export interface SimulatedReceivable {
  FBillNo?: string
  /** FCUSTOMERID.FNumber. */
  customer?: string
  /** FCURRENCYID.FNumber (default PRE001). */
  currency?: string
  /** 价税合计 (FALLAMOUNTFOR). */
  amount: string
  /** 收(退)款单的关联金额 (FRelateHadPayAmount), default "0". */
  paid?: string
  /** 到期日, yyyy-MM-dd. */
  dueDate: string
  /** 收款核销状态: by default A when nothing is paid, C when all is, else B. */
  writtenOff?: 'A' | 'B' | 'C'
  documentStatus?: 'Z' | 'A' | 'B' | 'C' | 'D'
  cancelStatus?: 'A' | 'B'
  /** 修改日期 (default now), the account set's wall clock. */
  modifyDate?: string
  /** One per line (FEntityDetail): the sales order it comes from (FORDERNUMBER) and its direct source bill (FSOURCEBILLNO, e.g. the 出库单). */
  lines: { orderNumber?: string; sourceBillNo?: string; amount?: string }[]
}

export interface KingdeeRequest {
  /** The service as named in the URL, e.g. `Save`, `ExecuteBillQuery`, `LoginByAppSecret`. */
  service: string
  body: unknown
  /** The `kdservice-sessionid` the request carried. */
  sessionId?: string
}

export interface KingdeeRefusal {
  msgCode: number
  message: string
  fieldName?: string
  errorCode?: number
}

export interface KingdeeFaultControl {
  /** The next `count` calls after login (of `service` only, if given) answer HTTP `status` with an HTML page and change nothing. */
  failNext(count: number, status: number, headers?: Record<string, string>, service?: string): void
  /** The next `count` calls (of `service` only, if given) are refused with IsSuccess false, before anything is done. */
  refuseNext(count: number, refusal: KingdeeRefusal, service?: string): void
  /** The next `count` Saves that create a bill commit it, then drop the connection unanswered. */
  commitThenDrop(count: number): void
  /** Every session is lost, as after a server restart or a session timeout. */
  expireSessions(): void
  /** Every request waits this long first. */
  delayMs(ms: number): void
  reset(): void
}

export interface KingdeeSimulator {
  /** The site URL to configure as `baseUrl`, e.g. `http://127.0.0.1:4321/k3cloud`. */
  url: string
  salesOrders(): SimulatedSaleOrder[]
  requests(): KingdeeRequest[]
  /** Successful logins so far. */
  logins(): number
  /** Replaces the rows of a form other than SAL_SaleOrder, for ExecuteBillQuery (`{ number: '1130.50' }` answers a JSON number). */
  setRows(formId: string, rows: TableRow[]): void
  /** Changes a sales order as a person in Kingdee would (void or close it, or stamp its modify date). */
  patchSalesOrder(billNo: string, patch: Partial<Pick<SimulatedSaleOrder, 'FDocumentStatus' | 'FCloseStatus' | 'FCancelStatus' | 'FManualClose' | 'FModifyDate'>>): void
  /** Adds an AR_receivable with one row per line, as ExecuteBillQuery answers header and entry fields. */
  addReceivable(receivable: SimulatedReceivable): { FID: number; FBillNo: string }
  faults: KingdeeFaultControl
  close(): Promise<void>
}

export interface KingdeeSimulatorOptions {
  port?: number
  host?: string
  acctId: string
  username: string
  appId: string
  appSecret: string
  /** Known customer numbers; without it any customer number exists. */
  customers?: readonly string[]
  /** Known material numbers; without it any material number exists. */
  materials?: readonly string[]
  tables?: Record<string, TableRow[]>
  /** The account set's time zone, for 修改日期 and 创建日期 (default Asia/Shanghai). */
  timezone?: string
}

const saleOrderForm = 'SAL_SaleOrder'
const sessionLostMessage = '会话信息已丢失，请重新登录'

// Header fields of SAL_SaleOrder the simulator answers queries for (from the Save template), plus
// any custom field (F_…).
const saleOrderHeaderFields = new Set(
  ['FID', 'FBillNo', 'FDocumentStatus', 'FCloseStatus', 'FDate', 'FBillTypeID', 'FSaleOrgId', 'FCustId', 'FSaleDeptId', 'FSalerId', 'FNote', 'FNetOrderBillNo', 'FNetOrderBillId', 'FReceiveId', 'FSettleId', 'FChargeId', 'FHeadDeliveryWay', 'FCorrespondOrgId', 'FSaleGroupId', 'FReceiveAddress', 'FOppID', 'FSalePhaseID', 'FISINIT'].map((f) => f.toLowerCase()),
)

// 财务信息 (FSaleOrderFinance) and 订单明细 (FSaleOrderEntry) fields the simulator answers.
const saleOrderFinanceFields = new Set(['FSettleCurrId', 'FExchangeTypeId', 'FIsIncludedTax', 'FRecConditionId', 'FSettleModeId', 'FBillAllAmount'].map((f) => f.toLowerCase()))
const saleOrderEntryFields = new Set(
  ['FSaleOrderEntry_FEntryID', 'FRowType', 'FMaterialId', 'FUnitID', 'FQty', 'FPrice', 'FTaxPrice', 'FEntryTaxRate', 'FAllAmount', 'FIsFree', 'FDeliveryDate', 'FEntryNote'].map((f) => f.toLowerCase()),
)
const saleOrderStatusFields = new Set(['FCancelStatus', 'FManualClose', 'FCreateDate', 'FModifyDate'].map((f) => f.toLowerCase()))

/** Exact decimal text → units at `scale` digits (half-up when it has more). */
function unitsAt(text: string, scale: number): bigint {
  const negative = text.startsWith('-')
  const [whole = '0', fraction = ''] = text.replace('-', '').split('.')
  let units = BigInt(whole + fraction.padEnd(scale, '0').slice(0, scale))
  if ((fraction[scale] ?? '0') >= '5') units += 1n
  return negative ? -units : units
}

function unitsText(units: bigint, scale: number): string {
  const negative = units < 0n
  const digits = (negative ? -units : units).toString().padStart(scale + 1, '0')
  const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits
  return negative ? `-${text}` : text
}

/** How Kingdee writes a decimal in JSON: no trailing zeros, but a fraction ("406.8", "2.0"). */
function kingdeeDecimal(text: string): string {
  const trimmed = text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text
  return trimmed.includes('.') ? trimmed : `${trimmed}.0`
}

/** 价税合计 of a line: quantity × tax-inclusive price (or price), rounded half-up to the cent. */
function lineAmount(entry: Record<string, unknown>): string {
  const qty = numberOf(entry.FQty) ?? '0'
  const price = numberOf(entry.FTaxPrice) ?? numberOf(entry.FPrice) ?? '0'
  const qtyScale = (qty.split('.')[1] ?? '').length
  const priceScale = (price.split('.')[1] ?? '').length
  const product = unitsAt(qty, qtyScale) * unitsAt(price, priceScale)
  return unitsText(unitsAt(unitsText(product, qtyScale + priceScale), 2), 2)
}

/** A JSON value whose numbers are written exactly as given. */
class JsonNumber {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}

function toJson(value: unknown): string {
  if (value instanceof JsonNumber) return value.text
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

interface Message {
  FieldName: string | null
  Message: string
  DIndex: number
}

function responseStatus(success: boolean, options: { errors?: Message[]; entities?: { Id: number; Number: string }[]; messages?: Message[]; msgCode?: number; errorCode?: number } = {}) {
  return {
    ...(success ? {} : { ErrorCode: options.errorCode ?? 500 }),
    IsSuccess: success,
    Errors: options.errors ?? [],
    SuccessEntitys: (options.entities ?? []).map((e, i) => ({ Id: e.Id, Number: e.Number, DIndex: i })),
    SuccessMessages: options.messages ?? [],
    MsgCode: options.msgCode ?? 0,
  }
}

class Refusal extends Error {
  readonly msgCode: number
  readonly errors: Message[]
  constructor(msgCode: number, errors: Message[]) {
    super(errors.map((e) => e.Message).join('; '))
    this.msgCode = msgCode
    this.errors = errors
  }
}

const refuse = (msgCode: number, message: string, fieldName: string | null = null, dIndex = 0) => new Refusal(msgCode, [{ FieldName: fieldName, Message: message, DIndex: dIndex }])

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/** `data` may be an object or, as some clients send it, a JSON string. */
function dataOf(body: Record<string, unknown>): Record<string, unknown> {
  const data = typeof body.data === 'string' ? (JSON.parse(body.data) as unknown) : body.data
  const record = asRecord(data)
  if (!record) throw refuse(8, '参数data不能为空')
  return record
}

function formIdOf(body: Record<string, unknown>): string {
  const formId = body.formid ?? body.formId ?? body.FormId
  if (typeof formId !== 'string' || formId === '') throw refuse(5, '业务对象表单Id不能为空')
  return formId
}

function idsOf(data: Record<string, unknown>): string[] {
  const ids = typeof data.Ids === 'string' ? data.Ids.split(',').map((s) => s.trim()).filter(Boolean) : []
  const numbers = Array.isArray(data.Numbers) ? data.Numbers.map(String) : []
  if (ids.length === 0 && numbers.length === 0) throw refuse(8, '单据内码和单据编码不能同时为空')
  return [...ids.map((id) => `id:${id}`), ...numbers.map((n) => `no:${n}`)]
}

const isTrue = (value: unknown, fallback: boolean) => (value === undefined || value === '' ? fallback : value === true || String(value).toLowerCase() === 'true')
const decimalText = /^-?\d+(\.\d+)?$/

function numberOf(value: unknown): string | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : undefined
  return text !== undefined && decimalText.test(text) ? text : undefined
}

function refNumber(value: unknown): string {
  const record = asRecord(value)
  const number = record?.FNumber ?? record?.FNUMBER
  return typeof number === 'string' ? number : ''
}

// ----- FilterString: SQL-like conditions, as ExecuteBillQuery takes them -------------------------
//   expr := and ('or' and)* ; and := unary ('and' unary)* ; unary := '(' expr ')' | comparison
//   comparison := field op literal | field ['not'] 'in' '(' literal (',' literal)* ')'

type Literal = { value: string; quoted: boolean }
type Condition =
  | { kind: 'compare'; field: string; op: string; literal: Literal }
  | { kind: 'in'; field: string; negate: boolean; literals: Literal[] }
  | { kind: 'and' | 'or'; parts: Condition[] }

type Token = { type: 'word' | 'string' | 'number' | 'op' | '(' | ')' | ','; text: string }

function tokenize(filter: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < filter.length) {
    const rest = filter.slice(i)
    const space = /^\s+/.exec(rest)
    if (space) {
      i += space[0].length
      continue
    }
    const quoted = /^'((?:[^']|'')*)'/.exec(rest)
    const number = /^-?\d+(?:\.\d+)?/.exec(rest)
    const word = /^[A-Za-z_][\w.]*/.exec(rest)
    const op = /^(<>|!=|>=|<=|=|>|<)/.exec(rest)
    if (quoted) tokens.push({ type: 'string', text: quoted[1]!.replaceAll("''", "'") }), (i += quoted[0].length)
    else if (number) tokens.push({ type: 'number', text: number[0] }), (i += number[0].length)
    else if (word) tokens.push({ type: 'word', text: word[0] }), (i += word[0].length)
    else if (op) tokens.push({ type: 'op', text: op[0] }), (i += op[0].length)
    else if ('(),'.includes(rest[0]!)) tokens.push({ type: rest[0] as '(' | ')' | ',', text: rest[0]! }), (i += 1)
    else throw refuse(8, `过滤条件“${filter}”无法解析`)
  }
  return tokens
}

function parseFilter(filter: unknown): Condition | undefined {
  if (filter === undefined || filter === null || filter === '') return undefined
  if (typeof filter !== 'string') throw refuse(8, '模拟器只支持字符串形式的FilterString')
  const tokens = tokenize(filter)
  let at = 0
  const fail = (): never => {
    throw refuse(8, `过滤条件“${filter}”无法解析`)
  }
  const peekWord = (word: string) => tokens[at]?.type === 'word' && tokens[at]!.text.toLowerCase() === word
  const literal = (): Literal => {
    const token = tokens[at++]
    if (token?.type === 'string') return { value: token.text, quoted: true }
    if (token?.type === 'number') return { value: token.text, quoted: false }
    return fail()
  }
  const unary = (): Condition => {
    if (tokens[at]?.type === '(') {
      at += 1
      const inner = expr()
      if (tokens[at++]?.type !== ')') fail()
      return inner
    }
    const field = tokens[at++]
    if (field?.type !== 'word') return fail()
    const negate = peekWord('not')
    if (negate) at += 1
    if (peekWord('in')) {
      at += 1
      if (tokens[at++]?.type !== '(') fail()
      const literals = [literal()]
      while (tokens[at]?.type === ',') (at += 1), literals.push(literal())
      if (tokens[at++]?.type !== ')') fail()
      return { kind: 'in', field: field.text, negate, literals }
    }
    const op = tokens[at++]
    if (negate || op?.type !== 'op') return fail()
    return { kind: 'compare', field: field.text, op: op.text, literal: literal() }
  }
  const and = (): Condition => {
    const parts = [unary()]
    while (peekWord('and')) (at += 1), parts.push(unary())
    return parts.length === 1 ? parts[0]! : { kind: 'and', parts }
  }
  const expr = (): Condition => {
    const parts = [and()]
    while (peekWord('or')) (at += 1), parts.push(and())
    return parts.length === 1 ? parts[0]! : { kind: 'or', parts }
  }
  const condition = expr()
  if (at !== tokens.length) fail()
  return condition
}

function fieldsOf(condition: Condition | undefined): string[] {
  if (!condition) return []
  if ('parts' in condition) return condition.parts.flatMap(fieldsOf)
  return [condition.field]
}

const datetimeText = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?)?$/

/** Datetimes compare as instants whatever their spelling ("2024-05-20", "…T08:00:00", "… 08:00:00.050"). */
function canonicalDatetime(text: string): string | undefined {
  const match = datetimeText.exec(text)
  if (!match) return undefined
  const time = (match[2] ?? '00:00:00').padEnd(8, ':00').slice(0, 8)
  return `${match[1]}T${time}.${(match[3] ?? '').padEnd(7, '0').slice(0, 7)}`
}

/** A cell's text for comparing: numbers as their text, dates canonical, null as ''. */
function textOf(value: TableValue | JsonNumber | undefined): string {
  if (value === null || value === undefined) return ''
  if (value instanceof JsonNumber) return value.text
  return typeof value === 'object' ? value.number : String(value)
}

/** Exact: "2.50" vs "2.5" is 0, "10" vs "9.99" is 1. */
function compareDecimalText(a: string, b: string): number {
  const scaledOf = (text: string, scale: number) => {
    const [whole = '0', fraction = ''] = text.replace('-', '').split('.')
    const units = BigInt(whole + fraction.padEnd(scale, '0'))
    return text.startsWith('-') ? -units : units
  }
  const scale = Math.max((a.split('.')[1] ?? '').length, (b.split('.')[1] ?? '').length)
  const [x, y] = [scaledOf(a, scale), scaledOf(b, scale)]
  return x < y ? -1 : x > y ? 1 : 0
}

function order(a: string, b: string, numeric: boolean): number {
  if (numeric && decimalText.test(a) && decimalText.test(b)) return compareDecimalText(a, b)
  const [x, y] = [canonicalDatetime(a) ?? a, canonicalDatetime(b) ?? b]
  return x < y ? -1 : x > y ? 1 : 0
}

function evaluate(condition: Condition | undefined, get: (field: string) => TableValue | JsonNumber | undefined): boolean {
  if (!condition) return true
  switch (condition.kind) {
    case 'and':
      return condition.parts.every((c) => evaluate(c, get))
    case 'or':
      return condition.parts.some((c) => evaluate(c, get))
    case 'in': {
      const text = textOf(get(condition.field))
      const found = condition.literals.some((l) => order(text, l.value, !l.quoted) === 0)
      return condition.negate ? !found : found
    }
    default: {
      const c = order(textOf(get(condition.field)), condition.literal.value, !condition.literal.quoted)
      switch (condition.op) {
        case '=':
          return c === 0
        case '<>':
        case '!=':
          return c !== 0
        case '>':
          return c > 0
        case '>=':
          return c >= 0
        case '<':
          return c < 0
        default:
          return c <= 0
      }
    }
  }
}

/** OrderString: "FModifyDate ASC, FID ASC". */
function parseOrder(orderString: unknown): { field: string; descending: boolean }[] {
  if (orderString === undefined || orderString === null || orderString === '') return []
  if (typeof orderString !== 'string') throw refuse(8, 'OrderString必须是字符串')
  return orderString.split(',').map((part) => {
    const match = /^\s*([A-Za-z_][\w.]*)(?:\s+(asc|desc))?\s*$/i.exec(part)
    if (!match) throw refuse(8, `排序条件“${orderString}”无法解析`)
    return { field: match[1]!, descending: match[2]?.toLowerCase() === 'desc' }
  })
}

function sessionIdOf(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie
  if (!header) return undefined
  for (const pair of header.split(';')) {
    const [name, ...rest] = pair.trim().split('=')
    if (name === 'kdservice-sessionid') return rest.join('=')
  }
  return undefined
}

/**
 * Starts the simulator.
 *
 * @example
 * const k3 = await startKingdeeSimulator({ acctId: '6476f2c24443ea', username: 'api', appId: 'orderbridge', appSecret: 's3cret' })
 * k3.faults.expireSessions()
 * // … drive the connector against k3.url …
 * await k3.close()
 */
export async function startKingdeeSimulator(options: KingdeeSimulatorOptions): Promise<KingdeeSimulator> {
  const orders = new Map<number, SimulatedSaleOrder>()
  const tables = new Map<string, TableRow[]>(Object.entries(options.tables ?? {}).map(([form, rows]) => [form.toLowerCase(), rows]))
  const customers = options.customers ? new Set(options.customers) : undefined
  const materials = options.materials ? new Set(options.materials) : undefined
  const sessions = new Set<string>()
  const log: KingdeeRequest[] = []
  let loginCount = 0
  let nextId = 100_000
  let nextNumber = 0
  let delay = 0
  let failures: { remaining: number; status: number; headers: Record<string, string>; service?: string }[] = []
  let refusals: { remaining: number; refusal: KingdeeRefusal; service?: string }[] = []
  let drops = 0
  let nextReceivable = 200_000

  // The account set's wall clock, to the millisecond, as Kingdee stamps 修改日期.
  const clock = new Intl.DateTimeFormat('sv-SE', { timeZone: options.timezone ?? 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
  const now = () => {
    const at = new Date()
    return `${clock.format(at).replace(' ', 'T')}.${String(at.getMilliseconds()).padStart(3, '0')}`
  }

  const find = (key: string): SimulatedSaleOrder | undefined => {
    if (key.startsWith('id:')) return orders.get(Number(key.slice(3)))
    const number = key.slice(3)
    return [...orders.values()].find((o) => o.FBillNo === number)
  }
  const label = (key: string, order?: SimulatedSaleOrder) => order?.FBillNo ?? key.slice(3)

  // ----- Save -------------------------------------------------------------------------------

  function validateModel(model: Record<string, unknown>, verifyBaseData: boolean): void {
    const errors: Message[] = []
    const required = (field: string, name: string) => {
      if (refNumber(model[field]) === '') errors.push({ FieldName: field, Message: `字段“${name}”是必填项`, DIndex: 0 })
    }
    required('FSaleOrgId', '销售组织')
    const customer = refNumber(model.FCustId)
    if (customer === '') errors.push({ FieldName: 'FCustId', Message: '字段“客户”是必填项', DIndex: 0 })
    else if (customers && !customers.has(customer)) {
      errors.push({ FieldName: 'FCustId', Message: verifyBaseData ? `字段“客户”的值“${customer}”在系统中不存在或未审核` : '字段“客户”是必填项', DIndex: 0 })
    }
    if (refNumber(asRecord(model.FSaleOrderFinance)?.FSettleCurrId) === '') errors.push({ FieldName: 'FSettleCurrId', Message: '字段“结算币别”是必填项', DIndex: 0 })
    if (model.FDate !== undefined && (typeof model.FDate !== 'string' || Number.isNaN(Date.parse(model.FDate.replace(' ', 'T'))))) {
      errors.push({ FieldName: 'FDate', Message: '字段“日期”的值不是有效的日期', DIndex: 0 })
    }
    const entries = model.FSaleOrderEntry
    if (!Array.isArray(entries) || entries.length === 0) errors.push({ FieldName: 'FSaleOrderEntry', Message: '订单明细至少需要一行', DIndex: 0 })
    else {
      entries.forEach((entry, index) => {
        const row = asRecord(entry) ?? {}
        const material = refNumber(row.FMaterialId)
        if (material === '') errors.push({ FieldName: 'FMaterialId', Message: `第${index + 1}行分录，字段“物料编码”是必填项`, DIndex: 0 })
        else if (materials && !materials.has(material)) {
          errors.push({ FieldName: 'FMaterialId', Message: `第${index + 1}行分录，字段“物料编码”的值“${material}”在系统中不存在或未审核`, DIndex: 0 })
        }
        const qty = numberOf(row.FQty)
        if (qty === undefined || Number(qty) <= 0) errors.push({ FieldName: 'FQty', Message: `第${index + 1}行分录，“销售数量”必须大于0`, DIndex: 0 })
      })
    }
    if (errors.length) throw new Refusal(11, errors)
  }

  function save(body: Record<string, unknown>): { order: SimulatedSaleOrder; created: boolean } {
    const formId = formIdOf(body)
    if (formId !== saleOrderForm) throw refuse(4, `业务对象“${formId}”不支持保存`)
    const data = dataOf(body)
    const model = asRecord(data.Model)
    if (!model) throw refuse(8, 'Model不能为空')
    const fid = Number(model.FID ?? 0)
    const { FID: _fid, FBillNo: billNo, ...fields } = model
    if (fid > 0) {
      const order = orders.get(fid)
      if (!order) throw refuse(10, `内码为“${fid}”的单据不存在或已被删除`)
      if (!['Z', 'A', 'D'].includes(order.FDocumentStatus)) {
        throw refuse(11, `单据编号为“${order.FBillNo}”的销售订单，当前状态不允许修改！`)
      }
      const needUpdate = Array.isArray(data.NeedUpDateFields) ? new Set(data.NeedUpDateFields.map(String)) : new Set<string>()
      const isDeleteEntry = isTrue(data.IsDeleteEntry, true)
      const next: Record<string, unknown> = needUpdate.size === 0 ? { ...fields } : { ...order.model }
      if (needUpdate.size > 0) {
        for (const [key, value] of Object.entries(fields)) {
          if (!needUpdate.has(key)) continue
          if (Array.isArray(value) && !isDeleteEntry && Array.isArray(next[key])) next[key] = [...(next[key] as unknown[]), ...value]
          else next[key] = value
        }
      }
      if (isTrue(data.ValidateFlag, true)) validateModel(next, isTrue(data.IsVerifyBaseDataField, false))
      order.model = next
      order.saves += 1
      order.FModifyDate = now()
      if (isTrue(data.IsAutoSubmitAndAudit, false)) order.FDocumentStatus = 'C'
      return { order, created: false }
    }
    if (isTrue(data.ValidateFlag, true)) validateModel(fields, isTrue(data.IsVerifyBaseDataField, false))
    nextId += 1
    nextNumber += 1
    const created = now()
    const order: SimulatedSaleOrder = {
      FID: nextId,
      FBillNo: typeof billNo === 'string' && billNo !== '' ? billNo : `XSDD${String(nextNumber).padStart(6, '0')}`,
      FDocumentStatus: isTrue(data.IsAutoSubmitAndAudit, false) ? 'C' : 'A',
      FCloseStatus: 'A',
      FCancelStatus: 'A',
      FManualClose: false,
      FCreateDate: created,
      FModifyDate: created,
      model: fields,
      saves: 1,
    }
    orders.set(order.FID, order)
    return { order, created: true }
  }

  // ----- status operations -------------------------------------------------------------------

  type Transition = (order: SimulatedSaleOrder) => void
  function transition(body: Record<string, unknown>, name: string, apply: Transition) {
    const formId = formIdOf(body)
    if (formId !== saleOrderForm) throw refuse(4, `业务对象“${formId}”不支持${name}`)
    const keys = idsOf(dataOf(body))
    const errors: Message[] = []
    const done: { Id: number; Number: string }[] = []
    keys.forEach((key) => {
      const order = find(key)
      if (!order) {
        errors.push({ FieldName: null, Message: `单据“${label(key)}”不存在或已被删除`, DIndex: 0 })
        return
      }
      try {
        apply(order)
        order.FModifyDate = now()
        done.push({ Id: order.FID, Number: order.FBillNo })
      } catch (err) {
        if (!(err instanceof Refusal)) throw err
        errors.push(...err.errors)
      }
    })
    if (errors.length) throw new Refusal(errors.every((e) => e.Message.includes('不存在')) ? 10 : 11, errors)
    return done
  }

  const bill = (order: SimulatedSaleOrder) => `单据编号为“${order.FBillNo}”的销售订单`
  const operations: Record<string, (body: Record<string, unknown>) => { Id: number; Number: string }[]> = {
    submit: (body) =>
      transition(body, '提交', (o) => {
        if (o.FDocumentStatus !== 'A' && o.FDocumentStatus !== 'D' && o.FDocumentStatus !== 'Z') throw refuse(11, `${bill(o)}，单据不是创建或重新审核状态，不能提交！`)
        o.FDocumentStatus = 'B'
      }),
    audit: (body) =>
      transition(body, '审核', (o) => {
        if (o.FDocumentStatus === 'C') throw refuse(11, `${bill(o)}，单据已经审核！`)
        if (o.FDocumentStatus !== 'B') throw refuse(11, `${bill(o)}，单据未提交，不能审核！`)
        o.FDocumentStatus = 'C'
      }),
    unaudit: (body) =>
      transition(body, '反审核', (o) => {
        if (o.FDocumentStatus !== 'C') throw refuse(11, `${bill(o)}，单据不是已审核状态，不能反审核！`)
        if (o.FCloseStatus === 'B') throw refuse(11, `${bill(o)}，单据已关闭，不能反审核！`)
        o.FDocumentStatus = 'D'
      }),
    cancelassign: (body) =>
      transition(body, '撤销', (o) => {
        if (o.FDocumentStatus !== 'B') throw refuse(11, `${bill(o)}，单据不是审核中状态，不能撤销！`)
        o.FDocumentStatus = 'A'
      }),
    delete: (body) =>
      transition(body, '删除', (o) => {
        if (o.FDocumentStatus === 'B' || o.FDocumentStatus === 'C') throw refuse(11, `${bill(o)}，已提交或已审核的单据不允许删除！`)
        orders.delete(o.FID)
      }),
    excuteoperation: (body) => {
      const op = String(body.opNumber ?? body.opnumber ?? '')
      if (op.toLowerCase() !== 'billclose') throw refuse(3, `操作“${op}”不存在`)
      return transition(body, '整单关闭', (o) => {
        if (o.FCloseStatus === 'B') throw refuse(11, `${bill(o)}，单据已经关闭！`)
        if (o.FDocumentStatus !== 'C') throw refuse(11, `${bill(o)}，未审核的单据不能关闭！`)
        o.FCloseStatus = 'B'
        o.FManualClose = true
      })
    },
  }

  // ----- queries -----------------------------------------------------------------------------

  type Cell = TableValue | JsonNumber | undefined

  const entriesOf = (order: SimulatedSaleOrder): Record<string, unknown>[] =>
    Array.isArray(order.model.FSaleOrderEntry) ? order.model.FSaleOrderEntry.map((e) => asRecord(e) ?? {}) : []

  const modelValue = (record: Record<string, unknown> | undefined, head: string, sub: string | undefined): Cell => {
    const key = Object.keys(record ?? {}).find((k) => k.toLowerCase() === head)
    const value = key === undefined ? undefined : record![key]
    if (value === null || value === undefined) return null
    if (typeof value === 'object') return refNumber(value) || null
    if (sub !== undefined) return null
    return typeof value === 'number' ? new JsonNumber(String(value)) : (value as string | boolean)
  }

  /** Whether a SAL_SaleOrder field key exists, and whether it is one of the entry (one row per line). */
  function saleOrderFieldLevel(field: string): 'header' | 'entry' | undefined {
    const head = field.split('.')[0]!.toLowerCase()
    if (saleOrderEntryFields.has(head)) return 'entry'
    if (saleOrderHeaderFields.has(head) || saleOrderFinanceFields.has(head) || saleOrderStatusFields.has(head) || head.startsWith('f_')) return 'header'
    return undefined
  }

  /** A SAL_SaleOrder field of the order, or of one of its lines. Amounts and quantities answer as JSON numbers. */
  function saleOrderCell(order: SimulatedSaleOrder, entryIndex: number | undefined, field: string): Cell {
    const [rawHead, sub] = field.split('.') as [string, string | undefined]
    const head = rawHead.toLowerCase()
    switch (head) {
      case 'fid':
        return new JsonNumber(String(order.FID))
      case 'fbillno':
        return order.FBillNo
      case 'fdocumentstatus':
        return order.FDocumentStatus
      case 'fclosestatus':
        return order.FCloseStatus
      case 'fcancelstatus':
        return order.FCancelStatus
      case 'fmanualclose':
        return order.FManualClose
      case 'fcreatedate':
        return order.FCreateDate
      case 'fmodifydate':
        return order.FModifyDate
      case 'fbillallamount': {
        const cents = entriesOf(order).reduce((sum, entry) => sum + unitsAt(lineAmount(entry), 2), 0n)
        return new JsonNumber(kingdeeDecimal(unitsText(cents, 2)))
      }
    }
    if (saleOrderFinanceFields.has(head)) return modelValue(asRecord(order.model.FSaleOrderFinance), head, sub)
    if (saleOrderEntryFields.has(head)) {
      const entry = entryIndex === undefined ? undefined : entriesOf(order)[entryIndex]
      if (!entry) return null
      if (head === 'fsaleorderentry_fentryid') return new JsonNumber(String(order.FID * 100 + entryIndex! + 1))
      if (head === 'fallamount') return new JsonNumber(kingdeeDecimal(lineAmount(entry)))
      if (head === 'fqty' || head === 'fprice' || head === 'ftaxprice' || head === 'fentrytaxrate') {
        const number = numberOf(entry[Object.keys(entry).find((k) => k.toLowerCase() === head) ?? ''])
        return number === undefined ? null : new JsonNumber(kingdeeDecimal(number))
      }
      return modelValue(entry, head, sub)
    }
    return modelValue(order.model, head, sub)
  }

  function query(body: Record<string, unknown>): unknown[][] {
    const data = dataOf(body)
    const formId = String(data.FormId ?? data.formid ?? '')
    const fields = String(data.FieldKeys ?? '').split(',').map((f) => f.trim()).filter(Boolean)
    if (!formId) throw refuse(5, '业务对象表单Id不能为空')
    if (fields.length === 0) throw refuse(8, 'FieldKeys不能为空')
    const condition = parseFilter(data.FilterString)
    const orderBy = parseOrder(data.OrderString)
    const start = Number(data.StartRow ?? 0) || 0
    const limit = Number(data.Limit ?? 0) || 10_000
    const used = [...fields, ...fieldsOf(condition), ...orderBy.map((o) => o.field)]
    let rows: { get: (field: string) => Cell }[]
    if (formId.toLowerCase() === saleOrderForm.toLowerCase()) {
      for (const f of used) if (!saleOrderFieldLevel(f)) throw refuse(9, `元数据中标识为${f}的字段不存在`)
      // A query naming an entry field answers one row per line, the header repeated.
      const perLine = used.some((f) => saleOrderFieldLevel(f) === 'entry')
      rows = [...orders.values()].flatMap((o) =>
        (perLine ? entriesOf(o).map((_, i) => i) : [undefined]).map((i) => ({ get: (field: string) => saleOrderCell(o, i, field) })),
      )
    } else {
      const table = tables.get(formId.toLowerCase())
      if (!table) throw refuse(4, `业务对象“${formId}”不存在`)
      const columns = new Set(table.flatMap((row) => Object.keys(row).map((k) => k.toLowerCase())))
      for (const f of used) if (!columns.has(f.toLowerCase())) throw refuse(9, `元数据中标识为${f}的字段不存在`)
      rows = table.map((row) => ({
        get: (field: string): Cell => {
          const key = Object.keys(row).find((k) => k.toLowerCase() === field.toLowerCase())
          const value = key === undefined ? null : (row[key] ?? null)
          return value !== null && typeof value === 'object' ? new JsonNumber(value.number) : value
        },
      }))
    }
    const matching = rows.filter((row) => evaluate(condition, row.get))
    if (orderBy.length) {
      matching.sort((a, b) => {
        for (const { field, descending } of orderBy) {
          const c = order(textOf(a.get(field)), textOf(b.get(field)), true)
          if (c !== 0) return descending ? -c : c
        }
        return 0
      })
    }
    return matching.slice(start, start + limit).map((row) => fields.map((f) => row.get(f) ?? null))
  }

  function view(body: Record<string, unknown>) {
    const data = dataOf(body)
    const key = data.Id !== undefined && data.Id !== '' ? `id:${String(data.Id)}` : `no:${String(data.Number ?? '')}`
    const order = find(key)
    if (!order) throw refuse(10, `单据“${label(key)}”不存在`)
    return { Id: new JsonNumber(String(order.FID)), BillNo: order.FBillNo, DocumentStatus: order.FDocumentStatus, CloseStatus: order.FCloseStatus, ...order.model }
  }

  // ----- HTTP ---------------------------------------------------------------------------------

  const app = Fastify({ logger: false, forceCloseConnections: true, bodyLimit: 5 * 1024 * 1024 })
  app.addContentTypeParser(['text/plain', 'text/json'], { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, JSON.parse(String(body)))
    } catch (err) {
      done(err as Error, undefined)
    }
  })

  const send = (reply: FastifyReply, value: unknown) => reply.code(200).type('application/json; charset=utf-8').send(toJson(value))

  app.post('/k3cloud/:service', async (request: FastifyRequest<{ Params: { service: string } }>, reply) => {
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
    const match = /^Kingdee\.BOS\.WebApi\.ServicesStub\.(AuthService|DynamicFormService)\.([A-Za-z]+)\.common\.kdsvc$/i.exec(request.params.service)
    const sessionId = sessionIdOf(request)
    const service = match?.[2] ?? request.params.service
    log.push({ service, body: request.body, ...(sessionId !== undefined ? { sessionId } : {}) })
    if (!match) return reply.code(404).type('text/html').send('<html><body>404 - Not Found</body></html>')
    const body = asRecord(request.body) ?? {}
    const name = service.toLowerCase()

    if (match[1]!.toLowerCase() === 'authservice') {
      if (name !== 'loginbyappsecret') return reply.code(404).type('text/html').send('<html><body>404 - Not Found</body></html>')
      const [acctId, username, appId, appSecret, lcid] = Array.isArray(body.parameters) ? body.parameters : []
      if (acctId !== options.acctId) return send(reply, { Message: '数据中心不存在', MessageCode: null, LoginResultType: 0, Context: null, KDSVCSessionId: null, IsSuccessByAPI: false })
      if (appId !== options.appId || appSecret !== options.appSecret) {
        return send(reply, { Message: '第三方系统登录授权验证失败：应用ID或应用密钥错误', MessageCode: null, LoginResultType: 0, Context: null, KDSVCSessionId: null, IsSuccessByAPI: false })
      }
      if (username !== options.username) return send(reply, { Message: '用户名不存在', MessageCode: null, LoginResultType: 0, Context: null, KDSVCSessionId: null, IsSuccessByAPI: false })
      const sid = randomBytes(16).toString('hex')
      sessions.add(sid)
      loginCount += 1
      void reply.header('set-cookie', [`kdservice-sessionid=${sid}; path=/`, `ASP.NET_SessionId=${randomBytes(12).toString('hex')}; path=/; HttpOnly`])
      return send(reply, {
        Message: null,
        MessageCode: 'CheckPasswordPolicy',
        LoginResultType: 1,
        Context: { UserLocale: 'zh-CN', LogLocale: 'zh-CN', DBid: acctId, DatabaseType: 3, SessionId: sid, UserId: new JsonNumber('100008'), UserName: username },
        KDSVCSessionId: sid,
        FormId: null,
        RedirectFormParam: null,
        FormInputObject: null,
        ErrorStackTrace: null,
        Lcid: lcid ?? 2052,
        AccessToken: null,
        KdAccessResult: null,
        IsSuccessByAPI: true,
      })
    }

    const isQuery = name === 'executebillquery'
    const answerRefusal = (refusal: Refusal) => {
      const result = { Result: { ResponseStatus: responseStatus(false, { errors: refusal.errors, msgCode: refusal.msgCode }) } }
      return send(reply, isQuery ? [[result]] : result)
    }
    if (sessionId === undefined || !sessions.has(sessionId)) return answerRefusal(refuse(1, sessionLostMessage))

    const failure = failures.find((f) => f.service === undefined || f.service.toLowerCase() === name)
    if (failure) {
      failure.remaining -= 1
      if (failure.remaining <= 0) failures = failures.filter((f) => f !== failure)
      return reply.code(failure.status).headers(failure.headers).type('text/html').send(`<html><body>HTTP ${failure.status}</body></html>`)
    }
    const scripted = refusals.find((r) => r.service === undefined || r.service.toLowerCase() === name)
    if (scripted) {
      scripted.remaining -= 1
      if (scripted.remaining <= 0) refusals = refusals.filter((r) => r !== scripted)
      const { refusal } = scripted
      return answerRefusal(new Refusal(refusal.msgCode, [{ FieldName: refusal.fieldName ?? null, Message: refusal.message, DIndex: 0 }]))
    }

    try {
      if (name === 'save') {
        const { order, created } = save(body)
        if (created && drops > 0) {
          drops -= 1
          reply.hijack()
          request.raw.socket.destroy()
          return reply
        }
        const id = new JsonNumber(String(order.FID))
        return send(reply, {
          Result: { ResponseStatus: responseStatus(true, { entities: [{ Id: order.FID, Number: order.FBillNo }] }), Id: id, Number: order.FBillNo, NeedReturnData: [{}] },
        })
      }
      if (isQuery) return send(reply, query(body))
      if (name === 'view') return send(reply, { Result: { ResponseStatus: responseStatus(true), Result: view(body) } })
      const operation = operations[name]
      if (!operation) return answerRefusal(refuse(3, `操作“${service}”不存在`))
      const done = operation(body)
      const messages = done.map((d, i) => ({ FieldName: null, Message: `单据编号为“${d.Number}”的销售订单，操作成功！`, DIndex: i }))
      return send(reply, { Result: { ResponseStatus: responseStatus(true, { entities: done, messages }) } })
    } catch (err) {
      if (err instanceof Refusal) return answerRefusal(err)
      if (err instanceof SyntaxError) return answerRefusal(refuse(8, 'data不是有效的JSON'))
      throw err
    }
  })

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('Kingdee simulator is not listening on a TCP port')
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address

  const cloneOrder = (o: SimulatedSaleOrder): SimulatedSaleOrder => structuredClone(o)
  return {
    url: `http://${host}:${address.port}/k3cloud`,
    salesOrders: () => [...orders.values()].map(cloneOrder),
    requests: () => log.map((entry) => structuredClone(entry)),
    logins: () => loginCount,
    setRows: (formId, rows) => {
      tables.set(formId.toLowerCase(), structuredClone(rows))
    },
    patchSalesOrder(billNo, patch) {
      const found = [...orders.values()].find((o) => o.FBillNo === billNo)
      if (!found) throw new Error(`no sales order ${billNo}`)
      Object.assign(found, { FModifyDate: now() }, structuredClone(patch))
    },
    addReceivable(receivable) {
      nextReceivable += 1
      const id = nextReceivable
      const billNo = receivable.FBillNo ?? `AR${String(id - 200_000).padStart(8, '0')}`
      const paid = receivable.paid ?? '0'
      const written = receivable.writtenOff ?? (compareDecimalText(paid, '0') === 0 ? 'A' : compareDecimalText(paid, receivable.amount) >= 0 ? 'C' : 'B')
      const stamp = receivable.modifyDate ?? now()
      const header: TableRow = {
        FID: { number: String(id) },
        FBillNo: billNo,
        FDocumentStatus: receivable.documentStatus ?? 'C',
        FCancelStatus: receivable.cancelStatus ?? 'A',
        'FCUSTOMERID.FNumber': receivable.customer ?? 'CUST0001',
        'FCURRENCYID.FNumber': receivable.currency ?? 'PRE001',
        FALLAMOUNTFOR: { number: kingdeeDecimal(receivable.amount) },
        FRelateHadPayAmount: { number: kingdeeDecimal(paid) },
        FENDDATE_H: `${receivable.dueDate}T00:00:00`,
        FWRITTENOFFSTATUS: written,
        FCreateDate: stamp,
        FModifyDate: stamp,
      }
      const table = tables.get('ar_receivable') ?? []
      receivable.lines.forEach((line, i) => {
        table.push({
          ...header,
          FEntityDetail_FEntryID: { number: String(id * 100 + i + 1) },
          FORDERNUMBER: line.orderNumber ?? '',
          FSOURCEBILLNO: line.sourceBillNo ?? '',
          FSOURCETYPE: line.sourceBillNo ? 'SAL_OUTSTOCK' : '',
          FALLAMOUNTFOR_D: { number: kingdeeDecimal(line.amount ?? receivable.amount) },
        })
      })
      tables.set('ar_receivable', table)
      return { FID: id, FBillNo: billNo }
    },
    faults: {
      failNext(count, status, headers = {}, service) {
        if (count > 0) failures.push({ remaining: count, status, headers, ...(service !== undefined ? { service } : {}) })
      },
      refuseNext(count, refusal, service) {
        if (count > 0) refusals.push({ remaining: count, refusal, ...(service !== undefined ? { service } : {}) })
      },
      commitThenDrop(count) {
        drops += Math.max(0, count)
      },
      expireSessions() {
        sessions.clear()
      },
      delayMs(ms) {
        delay = Math.max(0, ms)
      },
      reset() {
        failures = []
        refusals = []
        drops = 0
        delay = 0
      },
    },
    close: () => app.close(),
  }
}
