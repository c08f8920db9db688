/**
 * How the SAP IDoc connector's failures are classified. SAP's SOAP IDoc inbound answers a refusal
 * with HTTP 500 and a SOAP 1.1 fault: `Client` when the message itself is wrong (not XML, unknown
 * segment or field, a receiver that is not this system), `Server` when SAP could not take it now.
 * Everything else is classified as the kit classifies HTTP errors. Pure: no I/O.
 */
import { AxiosError } from 'axios'
import { SyncFailure, classifyHttpError, parseXml, xmlChild, xmlText, type FailureKind, type XmlValue } from '../../src/connector-kit/index.ts'

export const sapIdocConnectorId = 'sap-idoc'

/**
 * An answer that cannot be read: not XML, XML with a DOCTYPE, no IDoc number where one was
 * expected. `mayHaveWritten` when it answered the IDoc's POST: SAP may have taken it.
 */
export class SapAnswerError extends Error {
  readonly mayHaveWritten: boolean
  constructor(message: string, mayHaveWritten: boolean, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SapAnswerError'
    this.mayHaveWritten = mayHaveWritten
  }
}

export interface SoapFault {
  /** The fault code without its prefix: `Client`, `Server`, or what the sender wrote. */
  code: string
  message: string
}

/** The SOAP fault in a body, if it is one. Never throws: an unreadable body has no fault. */
export function soapFaultOf(body: unknown): SoapFault | undefined {
  if (typeof body !== 'string' || !body.includes('Fault')) return undefined
  try {
    const envelope = parseXml(body)
    const fault: XmlValue | undefined = xmlChild(xmlChild(xmlChild(envelope, 'Envelope'), 'Body'), 'Fault')
    if (fault === undefined) return undefined
    const code = (xmlText(xmlChild(fault, 'faultcode')) ?? '').replace(/^.*:/, '')
    const message = xmlText(xmlChild(fault, 'faultstring')) ?? ''
    return { code, message: message.length > 500 ? `${message.slice(0, 497)}...` : message }
  } catch {
    return undefined
  }
}

const configText = /partner ?profile|partnervereinbarung|partnerprofil|\bport\b|logical system|logisches system|receiver partner|empfänger/i
const documentText = /syntax|segment|\bfield\b|feld|structure|struktur|qualifier|not a valid|invalid|ungültig|unknown/i

function faultKind(fault: SoapFault): FailureKind {
  if (/client|sender/i.test(fault.code)) return configText.test(fault.message) ? 'config' : 'data'
  if (configText.test(fault.message)) return 'config'
  if (documentText.test(fault.message)) return 'data'
  return 'transient'
}

/** The connector's classify(). */
export function classifySapIdocError(err: unknown, connectorId: string = sapIdocConnectorId): SyncFailure {
  if (err instanceof SyncFailure) return err
  if (err instanceof SapAnswerError) {
    return new SyncFailure(err.mayHaveWritten ? 'unknown_outcome' : 'transient', err.message, { connectorId }, { cause: err })
  }
  if (err instanceof AxiosError && err.response) {
    const status = err.response.status
    const fault = status === 401 || status === 403 || status === 429 ? undefined : soapFaultOf(err.response.data)
    if (fault) {
      const base = classifyHttpError(err, connectorId)
      return new SyncFailure(faultKind(fault), `SAP answered HTTP ${status} with a SOAP fault (${fault.code}): ${fault.message}`, base.details, { cause: err })
    }
  }
  return classifyHttpError(err, connectorId)
}
