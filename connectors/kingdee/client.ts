/**
 * The HTTP client of the Kingdee K3 Cloud connector: the only file that knows the WebAPI's URLs and
 * request envelopes. It logs in with LoginByAppSecret, keeps the session (the `kdservice-sessionid`
 * cookie) in the kit's per-process session cache, and logs in again once when Kingdee says the
 * session was lost. It turns answers into plain values and refusals into `KingdeeError`; it does
 * not decide create-or-update and does not retry otherwise (the queue does).
 *
 * JSON numbers in answers are kept as their source text ("1130.50"), never turned into floats.
 */
import type { AxiosResponse } from 'axios'
import { SessionCache, createHttpClient, httpClientPerConnection, secretValuesOf, sessionKey, withSession, type ConnectorContext, type SessionGrant } from '../../src/connector-kit/index.ts'
import { KingdeeAnswerError, KingdeeError, KingdeeLoginError, isSessionLost, isSessionLostMessage, kingdeeConnectorId, type KingdeeMessage, type KingdeeStatus } from './errors.ts'
import type { KingdeeSecrets, KingdeeSettings } from './settings.ts'

export type KingdeeContext = ConnectorContext<KingdeeSettings, KingdeeSecrets>

/** The WebAPI services, relative to the site URL (`…/k3cloud/`). */
export const kingdeeServices = {
  login: 'Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret.common.kdsvc',
  save: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Save.common.kdsvc',
  submit: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Submit.common.kdsvc',
  audit: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Audit.common.kdsvc',
  unAudit: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.UnAudit.common.kdsvc',
  cancelAssign: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.CancelAssign.common.kdsvc',
  delete: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Delete.common.kdsvc',
  executeOperation: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExcuteOperation.common.kdsvc',
  executeBillQuery: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc',
  view: 'Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.View.common.kdsvc',
} as const

export const sessionCookieName = 'kdservice-sessionid'

export interface KingdeeSession {
  /** The `Cookie` header to send: every cookie the login set, `kdservice-sessionid` among them. */
  cookie: string
}

/** The options of a Save besides its Model, in the WebAPI's names and string booleans. */
export interface SaveOptions {
  needUpdateFields: readonly string[]
  isDeleteEntry: boolean
  verifyBaseData: boolean
  interactionFlags: readonly string[]
  ignoreInteraction: boolean
  autoSubmitAndAudit: boolean
}

export interface SavedBill {
  /** The internal id (FID), as text. */
  id: string
  /** The bill number (FBillNo). */
  number: string
}

/** One row of ExecuteBillQuery, in the order of the field keys; numbers as their source text. */
export type QueryRow = (string | boolean | null)[]

export interface KingdeeClient {
  /** Opens (or reuses) the session; used by the connection check. */
  login(): Promise<void>
  save(formId: string, model: Record<string, unknown>, options: SaveOptions): Promise<SavedBill>
  submit(formId: string, ids: readonly string[]): Promise<void>
  audit(formId: string, ids: readonly string[], options: { interactionFlags: readonly string[]; ignoreInteraction: boolean }): Promise<void>
  unAudit(formId: string, ids: readonly string[], options: { interactionFlags: readonly string[]; ignoreInteraction: boolean }): Promise<void>
  /** 撤销: takes a submitted (审核中) bill back to created. */
  cancelAssign(formId: string, ids: readonly string[]): Promise<void>
  delete(formId: string, ids: readonly string[]): Promise<void>
  /** ExcuteOperation, e.g. `BillClose` (整单关闭). */
  executeOperation(formId: string, opNumber: string, ids: readonly string[]): Promise<void>
  /**
   * ExecuteBillQuery: every row matching `filter` (at most `maxRows`), in `orderString` order
   * (e.g. `FModifyDate ASC, FID ASC`), paged `pageSize` rows at a time (StartRow/Limit).
   */
  query(formId: string, fieldKeys: readonly string[], filter: string, options?: { pageSize?: number; maxRows?: number; orderString?: string }): Promise<QueryRow[]>
}

type HttpClient = ReturnType<typeof createHttpClient>

const httpClientFor = httpClientPerConnection((settings: KingdeeSettings, secrets: KingdeeSecrets) =>
  createHttpClient({
    baseURL: settings.baseUrl.endsWith('/') ? settings.baseUrl : `${settings.baseUrl}/`,
    timeoutMs: settings.timeoutMs,
    headers: { 'Content-Type': 'application/json; charset=utf-8', Accept: 'application/json' },
    // LoginByAppSecret sends the app secret positionally (parameters[3]): mask it by value in exchange logs.
    exchange: { secretValues: secretValuesOf(secrets) },
  }),
)

// Kingdee's own session timeout is configurable (20 minutes by default); a session refused earlier
// is caught by the session-lost answer and replaced, so this only bounds how long one is reused.
const sessions = new SessionCache<KingdeeSession>({ defaultTtlMs: 15 * 60_000 })

/** Forgets every cached session (tests; a connection whose users changed). */
export function forgetKingdeeSessions(): void {
  sessions.clear()
}

/** JSON.parse that keeps every number as the text it was written as (Node 24's reviver context). */
export function parseKingdeeJson(text: string): unknown {
  return JSON.parse(text, function (this: unknown, _key: string, value: unknown, context?: { source?: string }) {
    return typeof value === 'number' && context?.source !== undefined ? context.source : value
  } as (this: unknown, key: string, value: unknown) => unknown)
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

function text(value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return ''
}

function truthy(value: unknown): boolean {
  return value === true || (typeof value === 'string' && value.toLowerCase() === 'true')
}

function readMessages(value: unknown): KingdeeMessage[] {
  if (!Array.isArray(value)) return []
  return value.map((entry) => {
    const record = asRecord(entry) ?? {}
    const dIndex = Number(text(record.DIndex))
    return { fieldName: text(record.FieldName), message: text(record.Message), ...(Number.isInteger(dIndex) ? { dIndex } : {}) }
  })
}

/** Reads `ResponseStatus` (IsSuccess and MsgCode may be booleans/numbers or their text). */
export function readStatus(value: unknown): KingdeeStatus | undefined {
  const status = asRecord(value)
  if (!status || !('IsSuccess' in status)) return undefined
  const msgCode = Number(text(status.MsgCode))
  const errorCode = text(status.ErrorCode)
  return {
    isSuccess: truthy(status.IsSuccess),
    ...(errorCode ? { errorCode } : {}),
    ...(text(status.MsgCode) !== '' && Number.isInteger(msgCode) ? { msgCode } : {}),
    errors: readMessages(status.Errors),
    successEntities: (Array.isArray(status.SuccessEntitys) ? status.SuccessEntitys : []).map((entry) => {
      const record = asRecord(entry) ?? {}
      const dIndex = Number(text(record.DIndex))
      return { id: text(record.Id), number: text(record.Number), ...(Number.isInteger(dIndex) ? { dIndex } : {}) }
    }),
  }
}

/** The ResponseStatus of an answer, wherever the service puts it: `{Result: {ResponseStatus}}` or `[[{Result: …}]]`. */
export function statusOf(answer: unknown): KingdeeStatus | undefined {
  let node = answer
  while (Array.isArray(node) && node.length === 1) node = node[0]
  const result = asRecord(asRecord(node)?.Result)
  return readStatus(result?.ResponseStatus)
}

/** `{"Message": "会话已超时,请重新登录"}`: the answer to a call that carried no live session. */
function bareSessionLost(answer: unknown): KingdeeStatus | undefined {
  const record = asRecord(answer)
  const message = text(record?.Message)
  if (!record || 'Result' in record || !isSessionLostMessage(message)) return undefined
  return { isSuccess: false, msgCode: 1, errors: [{ fieldName: '', message }], successEntities: [] }
}

function cookiesOf(response: AxiosResponse): Map<string, string> {
  const header = response.headers['set-cookie'] as string[] | string | undefined
  const cookies = new Map<string, string>()
  for (const line of Array.isArray(header) ? header : header ? [header] : []) {
    const pair = line.split(';', 1)[0] ?? ''
    const at = pair.indexOf('=')
    if (at > 0) cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim())
  }
  return cookies
}

const bool = (value: boolean) => (value ? 'true' : 'false')

export function kingdeeClient(ctx: KingdeeContext): KingdeeClient {
  const { settings, secrets } = ctx
  const http = httpClientFor(settings, secrets)
  const key = sessionKey(ctx.connectionId, { baseUrl: settings.baseUrl, acctId: settings.acctId, username: settings.username, lcid: settings.lcid, secrets })

  async function postText(service: string, body: unknown, cookie: string | undefined): Promise<AxiosResponse<string>> {
    return http.post<string>(service, body, {
      headers: cookie ? { Cookie: cookie } : {},
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
    })
  }

  function parse(operation: string, response: AxiosResponse<string>, write: boolean): unknown {
    try {
      return parseKingdeeJson(typeof response.data === 'string' ? response.data : String(response.data))
    } catch (err) {
      throw new KingdeeAnswerError(operation, `Kingdee answered ${operation} with something that is not JSON (HTTP ${response.status})`, write, { cause: err })
    }
  }

  async function login(): Promise<SessionGrant<KingdeeSession>> {
    const response = await postText(kingdeeServices.login, { parameters: [settings.acctId, settings.username, secrets.appId, secrets.appSecret, settings.lcid] }, undefined)
    const answer = asRecord(parse('LoginByAppSecret', response, false))
    const resultType = text(answer?.LoginResultType)
    if (!answer || resultType !== '1') {
      const reason = text(answer?.Message) || `LoginResultType ${resultType || 'missing'}`
      throw new KingdeeLoginError(resultType || undefined, `Kingdee refused the login of ${settings.username} to account set ${settings.acctId}: ${reason}`)
    }
    const cookies = cookiesOf(response)
    const sessionId = cookies.get(sessionCookieName) ?? text(answer.KDSVCSessionId)
    if (!sessionId) throw new KingdeeAnswerError('LoginByAppSecret', 'Kingdee accepted the login but sent no session id', false)
    cookies.set(sessionCookieName, sessionId)
    return { value: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') } }
  }

  /** Posts with the session; a session-lost answer becomes a KingdeeError that withSession retries once. */
  async function call(operation: string, service: string, body: unknown, write: boolean): Promise<unknown> {
    return withSession(
      sessions,
      key,
      login,
      async (session) => {
        const answer = parse(operation, await postText(service, body, session.cookie), write)
        const status = bareSessionLost(answer) ?? statusOf(answer)
        if (status && !status.isSuccess && isSessionLost(status)) throw new KingdeeError(operation, status)
        return answer
      },
      { isExpired: (err) => err instanceof KingdeeError && err.sessionLost, connectorId: kingdeeConnectorId },
    )
  }

  /** An operation answering `{Result: {ResponseStatus}}`: resolves on IsSuccess, else throws KingdeeError. */
  async function operation(operationName: string, service: string, body: unknown, write: boolean): Promise<{ answer: unknown; status: KingdeeStatus }> {
    const answer = await call(operationName, service, body, write)
    const status = statusOf(answer)
    if (!status) throw new KingdeeAnswerError(operationName, `Kingdee answered ${operationName} without a ResponseStatus`, write)
    if (!status.isSuccess) throw new KingdeeError(operationName, status)
    return { answer, status }
  }

  const idsOf = (ids: readonly string[]) => ids.join(',')

  return {
    async login() {
      await sessions.get(key, login)
    },

    async save(formId, model, options) {
      const body = {
        formid: formId,
        data: {
          NeedUpDateFields: [...options.needUpdateFields],
          NeedReturnFields: [],
          IsDeleteEntry: bool(options.isDeleteEntry),
          SubSystemId: '',
          IsVerifyBaseDataField: bool(options.verifyBaseData),
          IsEntryBatchFill: 'true',
          ValidateFlag: 'true',
          NumberSearch: 'true',
          InterationFlags: options.interactionFlags.join(';'),
          IgnoreInterationFlag: bool(options.ignoreInteraction),
          IsAutoSubmitAndAudit: bool(options.autoSubmitAndAudit),
          Model: model,
        },
      }
      const { answer, status } = await operation('Save', kingdeeServices.save, body, true)
      const result = asRecord(asRecord(answer)?.Result)
      const entity = status.successEntities[0]
      const id = text(result?.Id) || entity?.id || ''
      const number = text(result?.Number) || entity?.number || ''
      if (!id || !number || id === '0') {
        // Saved, but we cannot tell which bill: the retry finds it by our reference.
        throw new KingdeeAnswerError('Save', 'Kingdee saved the sales order but its answer has no Id and Number', true)
      }
      return { id, number }
    },

    async submit(formId, ids) {
      await operation('Submit', kingdeeServices.submit, { formid: formId, data: { CreateOrgId: 0, Numbers: [], Ids: idsOf(ids), IgnoreInterationFlag: 'true' } }, true)
    },

    async audit(formId, ids, options) {
      const data = { CreateOrgId: 0, Numbers: [], Ids: idsOf(ids), InterationFlags: options.interactionFlags.join(';'), IgnoreInterationFlag: bool(options.ignoreInteraction), IsVerifyProcInst: 'true' }
      await operation('Audit', kingdeeServices.audit, { formid: formId, data }, true)
    },

    async unAudit(formId, ids, options) {
      const data = { CreateOrgId: 0, Numbers: [], Ids: idsOf(ids), InterationFlags: options.interactionFlags.join(';'), IgnoreInterationFlag: bool(options.ignoreInteraction), IsVerifyProcInst: 'true' }
      await operation('UnAudit', kingdeeServices.unAudit, { formid: formId, data }, true)
    },

    async cancelAssign(formId, ids) {
      await operation('CancelAssign', kingdeeServices.cancelAssign, { formid: formId, data: { CreateOrgId: 0, Numbers: [], Ids: idsOf(ids) } }, true)
    },

    async delete(formId, ids) {
      await operation('Delete', kingdeeServices.delete, { formid: formId, data: { CreateOrgId: 0, Numbers: [], Ids: idsOf(ids), NetworkCtrl: '' } }, true)
    },

    async executeOperation(formId, opNumber, ids) {
      const body = { formid: formId, opNumber, data: { CreateOrgId: 0, Numbers: [], Ids: idsOf(ids), PkEntryIds: [], NetworkCtrl: '', IgnoreInterationFlag: 'true' } }
      await operation(opNumber, kingdeeServices.executeOperation, body, true)
    },

    async query(formId, fieldKeys, filter, options = {}) {
      const pageSize = options.pageSize ?? 2000
      const maxRows = options.maxRows ?? 100_000
      const rows: QueryRow[] = []
      for (let startRow = 0; ; startRow += pageSize) {
        const body = {
          data: { FormId: formId, FieldKeys: fieldKeys.join(','), FilterString: filter, OrderString: options.orderString ?? '', TopRowCount: 0, StartRow: startRow, Limit: pageSize, SubSystemId: '' },
        }
        const answer = await call('ExecuteBillQuery', kingdeeServices.executeBillQuery, body, false)
        const status = statusOf(answer)
        if (status && !status.isSuccess) throw new KingdeeError(`ExecuteBillQuery on ${formId}`, status)
        if (!Array.isArray(answer) || !answer.every(Array.isArray)) {
          throw new KingdeeAnswerError('ExecuteBillQuery', `Kingdee answered ExecuteBillQuery on ${formId} with something that is not a list of rows`, false)
        }
        for (const row of answer as unknown[][]) {
          rows.push(row.map((cell) => (cell === null || typeof cell === 'string' || typeof cell === 'boolean' ? cell : JSON.stringify(cell))))
        }
        if (answer.length < pageSize || rows.length >= maxRows) return rows.slice(0, maxRows)
      }
    },
  }
}
