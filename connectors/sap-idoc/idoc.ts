/**
 * The ORDERS05 IDoc as this connector writes it: the segments the outbound mapping produces (JSON:
 * an object is a segment, a list a repeated segment, a string a field), checked against the basic
 * type's structure, put in the order the ORDERS05 definition gives segments and fields (not the
 * order of JSON keys), completed with the control record EDI_DC40, and serialized as IDoc XML
 * (`<ORDERS05><IDOC BEGIN="1">…`, every segment with `SEGMENT="1"`) or inside a SOAP envelope.
 *
 * Segment and field order follow SAP's ORDERS05 definition (as SAP's generated ORDERS05 schema
 * lists them; the sample IDoc in ../shared/fixtures agrees for the segments it has). Segments
 * outside the ones listed here are refused; a field this file does not list is written after the
 * listed ones. Pure: no I/O.
 */
import { createHash, randomInt } from 'node:crypto'
import { z } from 'zod'
import { buildXml, soapEnvelopeNamespace, type TargetField, type XmlBuildNode } from '../../src/connector-kit/index.ts'
import type { SapIdocSettings } from './settings.ts'

export const idocSoapNamespace = 'urn:sap-com:document:sap:idoc:soap:messages'

interface SegmentDefinition {
  fields: readonly string[]
  children?: readonly string[]
  /** Most occurrences under one parent. */
  max: number
}

const partnerFields = [
  'PARVW', 'PARTN', 'LIFNR', 'NAME1', 'NAME2', 'NAME3', 'NAME4', 'STRAS', 'STRS2', 'PFACH', 'ORT01', 'COUNC', 'PSTLZ', 'PSTL2', 'LAND1', 'ABLAD', 'PERNR',
  'PARNR', 'TELF1', 'TELF2', 'TELBX', 'TELFX', 'TELTX', 'TELX1', 'SPRAS', 'ANRED', 'ORT02', 'HAUSN', 'STOCK', 'REGIO', 'PARGE', 'ISOAL', 'ISONU', 'FCODE',
  'IHREZ', 'BNAME', 'PAORG', 'ORGTX', 'PAGRU', 'KNREF', 'ILNNR', 'PFORT', 'SPRAS_ISO', 'TITLE',
] as const
const conditionFields = ['ALCKZ', 'KSCHL', 'KOTXT', 'BETRG', 'KPERC', 'KRATE', 'UPRBS', 'MEAUN', 'KOBTR', 'MENGE', 'PREIS', 'MWSKZ', 'MSATZ', 'KOEIN', 'CURTP', 'KOBAS'] as const
const taxFields = ['MWSKZ', 'MSATZ', 'MWSBT', 'TXJCD', 'KTEXT'] as const

/** The ORDERS05 segments this connector writes, with their fields and child segments in definition order. */
export const orders05Segments: Readonly<Record<string, SegmentDefinition>> = {
  E1EDK01: {
    max: 1,
    fields: [
      'ACTION', 'KZABS', 'CURCY', 'HWAER', 'WKURS', 'ZTERM', 'KUNDEUINR', 'EIGENUINR', 'BSART', 'BELNR', 'NTGEW', 'BRGEW', 'GEWEI', 'FKART_RL', 'ABLAD', 'BSTZD',
      'VSART', 'VSART_BEZ', 'RECIPNT_NO', 'KZAZU', 'AUTLF', 'AUGRU', 'AUGRU_BEZ', 'ABRVW', 'ABRVW_BEZ', 'FKTYP', 'LIFSK', 'LIFSK_BEZ', 'EMPST', 'ABTNR', 'DELCO', 'WKURS_M',
    ],
  },
  E1EDK14: { max: 12, fields: ['QUALF', 'ORGID'] },
  E1EDK03: { max: 10, fields: ['IDDAT', 'DATUM', 'UZEIT'] },
  E1EDK04: { max: 10, fields: taxFields },
  E1EDK05: { max: 16, fields: conditionFields },
  E1EDKA1: { max: 99, fields: partnerFields, children: ['E1EDKA3'] },
  E1EDKA3: { max: 99, fields: ['QUALP', 'STDPN'] },
  E1EDK02: { max: 10, fields: ['QUALF', 'BELNR', 'POSNR', 'DATUM', 'UZEIT'] },
  E1EDK17: { max: 5, fields: ['QUALF', 'LKOND', 'LKTEXT'] },
  E1EDK18: { max: 3, fields: ['QUALF', 'TAGE', 'PRZNT', 'ZTERM_TXT'] },
  E1EDKT1: { max: 99, fields: ['TDID', 'TSSPRAS', 'TSSPRAS_ISO', 'TDOBJECT', 'TDOBNAME'], children: ['E1EDKT2'] },
  E1EDKT2: { max: 99, fields: ['TDLINE', 'TDFORMAT'] },
  E1EDP01: {
    max: 999_999,
    fields: [
      'POSEX', 'ACTION', 'PSTYP', 'KZABS', 'MENGE', 'MENEE', 'BMNG2', 'PMENE', 'ABFTZ', 'VPREI', 'PEINH', 'NETWR', 'ANETW', 'SKFBP', 'NTGEW', 'GEWEI', 'EINKZ',
      'CURCY', 'PREIS', 'MATKL', 'UEPOS', 'GRKOR', 'EVERS', 'BPUMN', 'BPUMZ', 'ABGRU', 'ABGRT', 'ANTLF', 'FIXMG', 'KZAZU', 'BRGEW', 'PSTYV', 'EMPST', 'ABTNR',
      'ABRVW', 'WERKS', 'LPRIO', 'LPRIO_BEZ', 'ROUTE', 'ROUTE_BEZ', 'LGORT', 'VSTEL', 'DELCO', 'MATNR', 'VALTG', 'HIPOS', 'HIEVW', 'POSGUID',
    ],
    children: ['E1EDP02', 'E1EDP03', 'E1EDP04', 'E1EDP05', 'E1EDP20', 'E1EDPA1', 'E1EDP19', 'E1EDPT1'],
  },
  E1EDP02: { max: 20, fields: ['QUALF', 'BELNR', 'ZEILE', 'DATUM', 'UZEIT', 'BSARK', 'IHREZ'] },
  E1EDP03: { max: 99, fields: ['IDDAT', 'DATUM', 'UZEIT'] },
  E1EDP04: { max: 99, fields: taxFields },
  E1EDP05: { max: 99, fields: conditionFields },
  E1EDP20: { max: 99, fields: ['WMENG', 'AMENG', 'EDATU', 'EZEIT', 'EDATU_OLD', 'EZEIT_OLD', 'ACTION'] },
  E1EDPA1: { max: 99, fields: partnerFields, children: ['E1EDPA3'] },
  E1EDPA3: { max: 99, fields: ['QUALP', 'STDPN'] },
  E1EDP19: { max: 99, fields: ['QUALF', 'IDTNR', 'KTEXT', 'MFRPN', 'MFRNR'] },
  E1EDPT1: { max: 99, fields: ['TDID', 'TSSPRAS', 'TSSPRAS_ISO'], children: ['E1EDPT2'] },
  E1EDPT2: { max: 99, fields: ['TDLINE', 'TDFORMAT'] },
  E1EDS01: { max: 5, fields: ['SUMID', 'SUMME', 'SUNIT', 'WAERQ'] },
}

/** The segments directly under IDOC, in definition order (after EDI_DC40). */
export const orders05TopSegments = ['E1EDK01', 'E1EDK14', 'E1EDK03', 'E1EDK04', 'E1EDK05', 'E1EDKA1', 'E1EDK02', 'E1EDK17', 'E1EDK18', 'E1EDKT1', 'E1EDP01', 'E1EDS01'] as const

/** The control record's fields in definition order. */
export const ediDc40Fields = [
  'TABNAM', 'MANDT', 'DOCNUM', 'DOCREL', 'STATUS', 'DIRECT', 'OUTMOD', 'EXPRSS', 'TEST', 'IDOCTYP', 'CIMTYP', 'MESTYP', 'MESCOD', 'MESFCT', 'STD', 'STDVRS', 'STDMES',
  'SNDPOR', 'SNDPRT', 'SNDPFC', 'SNDPRN', 'SNDSAD', 'SNDLAD', 'RCVPOR', 'RCVPRT', 'RCVPFC', 'RCVPRN', 'RCVSAD', 'RCVLAD', 'CREDAT', 'CRETIM', 'REFINT', 'REFGRP',
  'REFMES', 'ARCKEY', 'SERIAL',
] as const

/** Quantity and amount fields: decimal strings, never JSON numbers. */
export const decimalFields: ReadonlySet<string> = new Set(['MENGE', 'BMNG2', 'VPREI', 'PEINH', 'NETWR', 'ANETW', 'SKFBP', 'NTGEW', 'BRGEW', 'PREIS', 'SUMME', 'BETRG', 'KPERC', 'KRATE', 'KOBTR', 'MWSBT', 'MSATZ', 'WKURS', 'WMENG', 'AMENG', 'KOBAS'])
const fieldNamePattern = /^[A-Z][A-Z0-9_]{0,29}$/
const decimalPattern = /^-?\d+(\.\d+)?$/
/** The longest text a field of the segments here holds (CHAR 70: KTEXT, TDLINE); most hold 35 or fewer. */
const maxFieldLength = 70

/** A segment as the mapping writes it: fields are strings, children are segments or lists of them. */
export type IdocSegment = { [name: string]: string | IdocSegment | IdocSegment[] }
export type Orders05Document = { IDOC: IdocSegment }

function isSegmentValue(value: unknown): value is IdocSegment {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function occurrences(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined ? [] : [value]
}

type Issue = { path: (string | number)[]; message: string }

function checkSegment(name: string, value: unknown, path: (string | number)[], issues: Issue[]): void {
  const definition = orders05Segments[name]!
  if (!isSegmentValue(value)) {
    issues.push({ path, message: `segment ${name} must be an object of fields` })
    return
  }
  for (const [key, child] of Object.entries(value)) {
    if (orders05Segments[key] !== undefined || /^E1|^Z1|^_-/.test(key)) {
      if (!definition.children?.includes(key)) {
        issues.push({ path: [...path, key], message: `${key} is not a child segment of ${name} in ORDERS05 (or not one this connector writes)` })
        continue
      }
      const items = occurrences(child)
      const max = orders05Segments[key]!.max
      if (items.length > max) issues.push({ path: [...path, key], message: `${key} occurs at most ${max} times under ${name}` })
      items.forEach((item, index) => checkSegment(key, item, Array.isArray(child) ? [...path, key, index] : [...path, key], issues))
      continue
    }
    if (!fieldNamePattern.test(key)) {
      issues.push({ path: [...path, key], message: `"${key}" is not an IDoc field name` })
      continue
    }
    if (typeof child !== 'string') {
      issues.push({ path: [...path, key], message: typeof child === 'number' ? 'is a JSON number; IDoc fields are text (send amounts and quantities as decimal strings)' : 'must be a string' })
      continue
    }
    if (child.length > maxFieldLength) issues.push({ path: [...path, key], message: `is longer than ${maxFieldLength} characters` })
    if (decimalFields.has(key) && child !== '' && !decimalPattern.test(child)) issues.push({ path: [...path, key], message: `"${child}" is not a decimal` })
  }
}

/** What the outbound mapping must produce: the ORDERS05 segments under IDOC, without EDI_DC40. */
export const orders05InputSchema = z
  .object({ IDOC: z.record(z.string(), z.unknown()) })
  .superRefine((document, ctx) => {
    const issues: Issue[] = []
    const idoc = document.IDOC
    for (const [name, value] of Object.entries(idoc)) {
      if (name === 'EDI_DC40') {
        issues.push({ path: ['IDOC', name], message: 'the control record belongs to the connection; the connector writes it' })
        continue
      }
      if (!(orders05TopSegments as readonly string[]).includes(name)) {
        issues.push({ path: ['IDOC', name], message: `${name} is not a segment of ORDERS05 this connector writes` })
        continue
      }
      const items = occurrences(value)
      const max = orders05Segments[name]!.max
      if (items.length > max) issues.push({ path: ['IDOC', name], message: `${name} occurs at most ${max} times` })
      items.forEach((item, index) => checkSegment(name, item, Array.isArray(value) ? ['IDOC', name, index] : ['IDOC', name], issues))
    }
    if (occurrences(idoc.E1EDK01).length !== 1) issues.push({ path: ['IDOC', 'E1EDK01'], message: 'the header segment E1EDK01 is required' })
    const soldTo = occurrences(idoc.E1EDKA1).filter((p) => isSegmentValue(p) && p.PARVW === 'AG')
    if (soldTo.length !== 1 || !isSegmentValue(soldTo[0]) || !soldTo[0].PARTN) issues.push({ path: ['IDOC', 'E1EDKA1'], message: 'exactly one sold-to party (E1EDKA1 with PARVW AG and PARTN) is required' })
    const items = occurrences(idoc.E1EDP01)
    if (items.length === 0) issues.push({ path: ['IDOC', 'E1EDP01'], message: 'a sales order needs at least one item (E1EDP01)' })
    items.forEach((item, index) => {
      if (!isSegmentValue(item)) return
      const path = Array.isArray(idoc.E1EDP01) ? ['IDOC', 'E1EDP01', index] : ['IDOC', 'E1EDP01']
      if (!item.MENGE) issues.push({ path: [...path, 'MENGE'], message: 'the quantity is required' })
      const material = occurrences(item.E1EDP19).some((id) => isSegmentValue(id) && typeof id.IDTNR === 'string' && id.IDTNR !== '')
      if (!material && !item.MATNR) issues.push({ path: [...path, 'E1EDP19'], message: 'the material is required (E1EDP19 IDTNR, or MATNR)' })
    })
    for (const issue of issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message })
  })
  .transform((document) => document as Orders05Document)

/** The segments and fields the mapping may write, as the mapping editor offers them. */
export function orders05Fields(): TargetField[] {
  const fields: TargetField[] = [{ path: 'IDOC', type: 'object', required: true, description: 'the ORDERS05 segments; EDI_DC40 is written by the connector' }]
  const required = new Set(['IDOC.E1EDK01', 'IDOC.E1EDKA1', 'IDOC.E1EDP01', 'IDOC.E1EDP01[].MENGE'])
  const visit = (name: string, path: string) => {
    const definition = orders05Segments[name]!
    const list = definition.max > 1
    fields.push({ path, type: list ? 'array' : 'object', required: required.has(path), description: `segment ${name}${list ? `, at most ${definition.max}` : ''}` })
    const inner = list ? `${path}[]` : path
    for (const field of definition.fields) {
      const fieldPath = `${inner}.${field}`
      fields.push({ path: fieldPath, type: decimalFields.has(field) ? 'decimal' : 'string', required: required.has(fieldPath) })
    }
    for (const child of definition.children ?? []) visit(child, `${inner}.${child}`)
  }
  for (const name of orders05TopSegments) visit(name, `IDOC.${name}`)
  return fields
}

// ---------------------------------------------------------------------------------------------

/** Our reference as an IDoc document number: CHAR 35, so a UUID goes without its hyphens. */
export function belnrOf(reference: string): string {
  const belnr = reference.replaceAll('-', '')
  if (belnr.length === 0 || belnr.length > 35) throw new RangeError(`reference ${reference} does not fit an IDoc document number`)
  return belnr
}

/** A DOCNUM for one attempt: 16 digits, seconds then random digits, so no two attempts share one. */
export function newDocnum(now: Date = new Date()): string {
  const seconds = String(Math.floor(now.getTime() / 1000)).slice(-10).padStart(10, '0')
  return `${seconds}${String(randomInt(0, 1_000_000)).padStart(6, '0')}`
}

function orderedSegment(name: string, segment: IdocSegment): XmlBuildNode {
  const definition = orders05Segments[name]!
  const node: XmlBuildNode = { '@SEGMENT': '1' }
  for (const field of definition.fields) {
    const value = segment[field]
    if (typeof value === 'string' && value !== '') node[field] = value
  }
  // Fields this file does not list keep their place after the listed ones.
  for (const [key, value] of Object.entries(segment)) {
    if (typeof value === 'string' && value !== '' && !definition.fields.includes(key) && orders05Segments[key] === undefined) node[key] = value
  }
  for (const child of definition.children ?? []) {
    const items = occurrences(segment[child]).filter(isSegmentValue)
    if (items.length) node[child] = items.map((item) => orderedSegment(child, item))
  }
  return node
}

/**
 * A DOCNUM that is the same on every retry of one write: 16 digits from a hash of the idempotency
 * key, so SAP (WE02) shows one transfer id for a cancel however often it is sent.
 */
export function docnumFor(idempotencyKey: string): string {
  const digest = createHash('sha256').update(`docnum:${idempotencyKey}`).digest()
  return (digest.readBigUInt64BE(0) % 10_000_000_000_000_000n).toString().padStart(16, '0')
}

/** SAP's SOAP IDoc inbound takes an IDoc "exactly once" per message id in EDI_DC40 ARCKEY (prefix urn:sap.com:msgid=). */
export const messageIdPrefix = 'urn:sap.com:msgid='

/** The exactly-once message id of one write: a UUID-shaped hash of the idempotency key, the same on every retry. */
export function messageIdFor(idempotencyKey: string): string {
  const hex = createHash('sha256').update(`msgid:${idempotencyKey}`).digest('hex')
  return `${messageIdPrefix}${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

export interface ControlRecordInput {
  docnum: string
  messageType: string
  now: Date
  /** ARCKEY: the message id SAP's SOAP inbound receives exactly once. */
  messageId?: string
}

function wallClock(now: Date, timezone: string): { date: string; time: string } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
      .formatToParts(now)
      .map((part) => [part.type, part.value]),
  )
  return { date: `${parts.year}${parts.month}${parts.day}`, time: `${parts.hour}${parts.minute}${parts.second}` }
}

/** EDI_DC40 of an inbound IDoc (DIRECT 2) from the connection's partner settings. */
export function controlRecord(settings: SapIdocSettings, input: ControlRecordInput): XmlBuildNode {
  const cr = settings.controlRecord
  const { date, time } = wallClock(input.now, settings.timezone)
  const values: Record<string, string | undefined> = {
    TABNAM: 'EDI_DC40',
    MANDT: cr.client,
    DOCNUM: input.docnum,
    DIRECT: '2',
    TEST: cr.test ? 'X' : undefined,
    IDOCTYP: 'ORDERS05',
    CIMTYP: cr.extension,
    MESTYP: input.messageType,
    SNDPOR: cr.senderPort,
    SNDPRT: cr.senderPartnerType,
    SNDPRN: cr.senderPartner,
    RCVPOR: cr.receiverPort,
    RCVPRT: cr.receiverPartnerType,
    RCVPRN: cr.receiverPartner,
    CREDAT: date,
    CRETIM: time,
    ARCKEY: input.messageId,
  }
  const node: XmlBuildNode = { '@SEGMENT': '1' }
  for (const field of ediDc40Fields) if (values[field] !== undefined) node[field] = values[field]
  return node
}

/** The IDOC element: control record, then the segments in definition order. */
export function idocNode(document: Orders05Document, control: XmlBuildNode): XmlBuildNode {
  const node: XmlBuildNode = { '@BEGIN': '1', EDI_DC40: control }
  for (const name of orders05TopSegments) {
    const items = occurrences(document.IDOC[name]).filter(isSegmentValue)
    if (items.length) node[name] = items.map((item) => orderedSegment(name, item))
  }
  return node
}

/** The IDoc as IDoc XML: `<ORDERS05><IDOC BEGIN="1">…</IDOC></ORDERS05>` (the extension's name as the root when there is one). */
export function idocXml(document: Orders05Document, control: XmlBuildNode, rootName = 'ORDERS05'): string {
  return buildXml({ [rootName]: { IDOC: idocNode(document, control) } })
}

/** The IDoc inside a SOAP 1.1 envelope, as SAP's SOAP IDoc inbound (/sap/bc/srt/idoc) takes it. */
export function idocSoapEnvelope(document: Orders05Document, control: XmlBuildNode, rootName = 'ORDERS05'): string {
  return buildXml({
    'soapenv:Envelope': {
      '@xmlns:soapenv': soapEnvelopeNamespace,
      '@xmlns:urn': idocSoapNamespace,
      'soapenv:Header': null,
      'soapenv:Body': { [`urn:${rootName}`]: { IDOC: idocNode(document, control) } },
    },
  })
}

/**
 * The document with our reference as the customer's purchase order number (E1EDK02 qualifier 001),
 * replacing whatever the mapping wrote there; for a change, header and items flagged as changes.
 */
export function withReference(document: Orders05Document, reference: string, change: boolean): { document: Orders05Document; replaced: boolean } {
  const belnr = belnrOf(reference)
  const idoc: IdocSegment = { ...document.IDOC }
  const references = occurrences(idoc.E1EDK02).filter(isSegmentValue)
  const existing = references.find((r) => r.QUALF === '001')
  const replaced = existing !== undefined && existing.BELNR !== undefined && existing.BELNR !== belnr
  idoc.E1EDK02 = existing ? references.map((r) => (r === existing ? { ...r, BELNR: belnr } : r)) : [{ QUALF: '001', BELNR: belnr }, ...references]
  if (change) {
    const header = occurrences(idoc.E1EDK01).filter(isSegmentValue)[0] ?? {}
    idoc.E1EDK01 = { ...header, ACTION: typeof header.ACTION === 'string' && header.ACTION !== '' ? header.ACTION : '002' }
    idoc.E1EDP01 = occurrences(idoc.E1EDP01)
      .filter(isSegmentValue)
      .map((item) => ({ ...item, ACTION: typeof item.ACTION === 'string' && item.ACTION !== '' ? item.ACTION : '002' }))
  }
  return { document: { IDOC: idoc }, replaced }
}

/**
 * The order change IDoc that deletes the sales order (what IDOC_INPUT_ORDCHG does with header action
 * 003): E1EDK01 ACTION 003, our purchase order number (E1EDK02 qualifier 001) and, when known,
 * SAP's sales order number (qualifier 002), by which SAP then finds the order directly. No items:
 * the header action applies to the whole document.
 */
export function cancellationDocument(reference: string, salesOrder?: string): Orders05Document {
  const references: IdocSegment[] = [{ QUALF: '001', BELNR: belnrOf(reference) }]
  if (salesOrder) references.push({ QUALF: '002', BELNR: salesOrder })
  return { IDOC: { E1EDK01: { ACTION: '003' }, E1EDK02: references } }
}
