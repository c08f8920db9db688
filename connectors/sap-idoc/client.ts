/**
 * The HTTP client of the SAP IDoc connector: the only file that knows where IDocs go and how the
 * answers look. It posts one IDoc per call (HTTP Basic authentication, the sap-client parameter),
 * reads the IDoc number SAP assigned from the answer, and asks a configured status service which
 * IDocs SAP holds for a reference. It does not decide what to send and does not retry.
 */
import { SyncFailure, XmlParseError, asArray, createHttpClient, httpClientPerConnection, parseXml, secretValuesOf, xmlText, type ConnectorContext, type XmlNode, type XmlValue } from '../../src/connector-kit/index.ts'
import { SapAnswerError, sapIdocConnectorId } from './errors.ts'
import { controlRecord, idocSoapEnvelope, idocXml, newDocnum, type Orders05Document } from './idoc.ts'
import type { SapIdocSecrets, SapIdocSettings } from './settings.ts'

export type SapIdocContext = ConnectorContext<SapIdocSettings, SapIdocSecrets>

export interface SentIdoc {
  /** The DOCNUM we sent (SAP's transfer id for it). */
  docnum: string
  /** The IDoc number SAP assigned, when the answer says it. */
  idocNumber?: string
}

export interface IdocStatusEntry {
  idocNumber: string
  status?: string
  messageType?: string
  /** The sales order SAP made of (or changed with) the IDoc, when the service says. */
  salesOrder?: string
}

export interface SendOptions {
  /** The DOCNUM to send (default: a new one per call). */
  docnum?: string
  /** EDI_DC40 ARCKEY, the message id SAP's SOAP inbound receives exactly once. */
  messageId?: string
}

export interface SapIdocClient {
  /** Resolves when SAP (or the status service) takes our credentials. */
  check(): Promise<void>
  /** Posts the IDoc with the given message type, under a new DOCNUM unless `options.docnum` names one. */
  send(document: Orders05Document, messageType: string, options?: SendOptions): Promise<SentIdoc>
  /** The IDocs SAP holds for a reference (E1EDK02 BELNR); needs `statusLookup`. */
  lookup(belnr: string): Promise<IdocStatusEntry[]>
}

type HttpClient = ReturnType<typeof createHttpClient>
const httpClients = httpClientPerConnection((settings: SapIdocSettings, secrets: SapIdocSecrets) => {
  const basic = Buffer.from(`${secrets.username}:${secrets.password}`, 'utf8').toString('base64')
  return createHttpClient({ baseURL: settings.baseUrl, timeoutMs: settings.timeoutMs, headers: { Authorization: `Basic ${basic}` }, exchange: { secretValues: secretValuesOf(secrets) } })
})
const httpClientFor = (ctx: SapIdocContext): HttpClient => httpClients(ctx.settings, ctx.secrets)

/** The first element of that local name anywhere in the document, depth first. */
function findElement(value: XmlValue | undefined, name: string): XmlValue | undefined {
  if (value === undefined || typeof value === 'string') return undefined
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findElement(item, name)
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const [key, child] of Object.entries(value)) {
    if (key === name) return child
    const found = findElement(child, name)
    if (found !== undefined) return found
  }
  return undefined
}

/** IDoc numbers are NUMC 16: "427380" and "0000000000427380" are the same IDoc. */
export function normalizeIdocNumber(value: string): string | undefined {
  const trimmed = value.trim()
  return /^\d{1,16}$/.test(trimmed) ? trimmed.padStart(16, '0') : undefined
}

function headerValue(value: unknown): string | undefined {
  if (Array.isArray(value)) return headerValue(value[0])
  return typeof value === 'string' ? value : undefined
}

/** Entries of an OData v2 (`{d: {results}}`), OData v4 (`{value}`) or plain list answer. */
function entriesOf(data: unknown): Record<string, unknown>[] | undefined {
  const record = (value: unknown) => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined)
  const list = Array.isArray(data) ? data : (record(record(data)?.d)?.results ?? record(data)?.value ?? record(data)?.results ?? record(data)?.items)
  if (!Array.isArray(list)) return undefined
  return list.map((entry) => record(entry) ?? {})
}

export function sapIdocClient(ctx: SapIdocContext): SapIdocClient {
  const { settings } = ctx
  const http = httpClientFor(ctx)
  const params = settings.sapClient ? { 'sap-client': settings.sapClient } : undefined
  const soap = settings.transport === 'soap'
  const rootName = settings.controlRecord.extension ? settings.controlRecord.extension.replaceAll('/', '_-') : 'ORDERS05'

  async function lookup(belnr: string): Promise<IdocStatusEntry[]> {
    const statusLookup = settings.statusLookup
    if (!statusLookup) throw new SyncFailure('config', 'this SAP IDoc connection has no statusLookup: the IDocs sent for an order cannot be looked up', { connectorId: sapIdocConnectorId })
    // An OData string literal doubles its quotes; the whole value is URL-encoded.
    const path = statusLookup.path.replace('{reference}', encodeURIComponent(belnr.replaceAll("'", "''"))).replaceAll(' ', '%20')
    const response = await http.get<unknown>(path, { params, headers: { Accept: 'application/json' } })
    const entries = entriesOf(response.data)
    if (!entries) throw new SyncFailure('config', 'the IDoc status service did not answer {d:{results:[…]}}, {value:[…]} or a list', { connectorId: sapIdocConnectorId, httpStatus: response.status })
    const found: IdocStatusEntry[] = []
    for (const entry of entries) {
      const idocNumber = normalizeIdocNumber(String(entry[statusLookup.idocNumberField] ?? ''))
      if (!idocNumber) continue
      const status = entry[statusLookup.statusField]
      const messageType = entry[statusLookup.messageTypeField]
      const salesOrder = entry[statusLookup.salesOrderField]
      found.push({
        idocNumber,
        ...(typeof status === 'string' ? { status } : {}),
        ...(typeof messageType === 'string' ? { messageType } : {}),
        ...(typeof salesOrder === 'string' && salesOrder.trim() !== '' ? { salesOrder: salesOrder.trim() } : {}),
      })
    }
    return found
  }

  return {
    async check() {
      if (settings.statusLookup) {
        await lookup('ORDERBRIDGECHECK')
        return
      }
      // The inbound service answers GET with a page or 405; a wrong password is 401 either way.
      await http.get(settings.path, { params, responseType: 'text', transformResponse: [(d: unknown) => d], validateStatus: (s) => (s >= 200 && s < 300) || s === 405 })
    },

    async send(document, messageType, options = {}) {
      const docnum = options.docnum ?? newDocnum()
      const control = controlRecord(settings, { docnum, messageType, now: new Date(), ...(options.messageId ? { messageId: options.messageId } : {}) })
      const body = soap ? idocSoapEnvelope(document, control, rootName) : idocXml(document, control, rootName)
      const response = await http.post<string>(settings.path, body, {
        params,
        headers: soap ? { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '"http://sap.com/xi/WebService/soap1.1"' } : { 'Content-Type': 'application/xml; charset=utf-8' },
        responseType: 'text',
        transformResponse: [(d: unknown) => d],
      })
      const fromHeader = headerValue(response.headers[settings.answer.idocNumberHeader.toLowerCase()])
      let fromBody: string | undefined
      const text = typeof response.data === 'string' ? response.data.trim() : ''
      if (text.startsWith('<')) {
        let answer: XmlNode
        try {
          answer = parseXml(text)
        } catch (err) {
          const reason = err instanceof XmlParseError ? err.message : 'unreadable XML'
          throw new SapAnswerError(`SAP answered the IDoc with XML that cannot be read (${reason})`, true, { cause: err })
        }
        fromBody = xmlText(asArray(findElement(answer, settings.answer.idocNumberElement))[0])
      }
      const given = fromHeader ?? fromBody
      if (given === undefined || given === '') return { docnum }
      const idocNumber = normalizeIdocNumber(given)
      if (!idocNumber) throw new SapAnswerError(`SAP answered the IDoc with "${given.slice(0, 40)}" where an IDoc number belongs`, true)
      return { docnum, idocNumber }
    },

    lookup,
  }
}
