/**
 * The XML codec for connectors that speak SOAP or XML (Salesforce outbound messages, SAP IDoc
 * ORDERS05, any SOAP ERP): parse a body into plain objects, and build answers (SOAP envelopes,
 * acknowledgements, faults) with every text and attribute escaped.
 *
 * What it decides, so each connector does not have to:
 * - **No DTDs, no entity expansion.** A document with a DOCTYPE (or any other `<!…>` declaration
 *   outside comments and CDATA) is refused before it is parsed, so neither a billion-laughs bomb nor an
 *   external entity (`<!ENTITY x SYSTEM "file:///etc/passwd">`) can do anything. Only the five
 *   predefined entities (`&lt; &gt; &amp; &apos; &quot;`) and character references (`&#65;`, `&#x41;`)
 *   are decoded, in one pass; any other `&name;` is left as written.
 * - **Namespace prefixes are stripped** by default: `<soapenv:Envelope>` and `<S:Envelope>` both parse
 *   as `Envelope`, and `xmlns`/`xmlns:*` attributes are dropped, because senders choose prefixes
 *   freely. Attribute values are untouched (`xsi:type="sf:Opportunity"` becomes
 *   `'@type': 'sf:Opportunity'`). Pass `keepPrefixes: true` to keep names exactly as written.
 * - **Everything is a string.** Numbers, booleans and dates stay text (`"0012"`, `"19.90"`), so money
 *   never turns into a float and leading zeros survive; values are trimmed.
 * - **Shape:** an element is a string when it has only text (`''` when empty), otherwise an object:
 *   attributes under `'@name'`, text beside children under `'#text'`, children under their names. An
 *   element that occurs more than once under one parent becomes an array; name it in `arrays` (or
 *   read it through `asArray`) where it *can* repeat, so one occurrence does not change the shape.
 *
 * It does no I/O and knows no vendor. Body size is limited where bodies arrive (the ingest route,
 * the HTTP client), not here.
 */
import { XMLParser, XMLValidator, type EntityDecoderOptions } from 'fast-xml-parser'

/** Prefix of attribute keys in parsed and built nodes: `<order id="7">` ↔ `{ order: { '@id': '7' } }`. */
export const xmlAttributePrefix = '@'
/** Key of an element's text when it also has attributes or children. */
export const xmlTextKey = '#text'

/** A parsed element with attributes or children. */
export interface XmlNode {
  [name: string]: XmlValue
}
/** What a parsed element is: its text, a node, or (for a repeated element) a list of them. */
export type XmlValue = string | XmlNode | XmlValue[]

export interface ParseXmlOptions {
  /**
   * Elements that are always arrays, even when they occur once: a local name (`'Notification'`,
   * matched at any depth) or a dot path from the root (`'Envelope.Body.notifications.Notification'`).
   * With `keepPrefixes`, names include their prefix.
   */
  arrays?: readonly string[]
  /** Keep namespace prefixes and `xmlns` attributes instead of stripping them. Default false. */
  keepPrefixes?: boolean
}

export type XmlParseErrorCode = 'doctype' | 'malformed' | 'encoding'

/** A body that is not acceptable XML. The message is safe to show: it names a position, not content. */
export class XmlParseError extends Error {
  readonly code: XmlParseErrorCode
  constructor(code: XmlParseErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'XmlParseError'
    this.code = code
  }
}

const predefinedEntities: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' }
const referencePattern = /&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|apos|quot);/g

function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff)
}

/** One pass, so `&amp;lt;` is `&lt;` and never `<`. */
function decodeReferences(text: string): string {
  if (!text.includes('&')) return text
  return text.replace(referencePattern, (_match, name: string) => {
    const predefined = predefinedEntities[name]
    if (predefined !== undefined) return predefined
    const code = name.startsWith('#x') ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1))
    if (!isXmlChar(code)) throw new XmlParseError('malformed', `character reference &${name}; is not a legal XML character`)
    return String.fromCodePoint(code)
  })
}

// Replaces the parser's decoder: entities a DOCTYPE declares are ignored, should one ever get through.
const entityDecoder: EntityDecoderOptions = {
  setExternalEntities: () => {},
  addInputEntities: () => {},
  reset: () => {},
  setXmlVersion: () => {},
  decode: decodeReferences,
}

/**
 * Refuses `<!DOCTYPE`, `<!ENTITY` and every other markup declaration; comments and CDATA sections are
 * skipped so their content cannot trip it (and cannot hide a declaration either).
 */
function refuseDeclarations(xml: string): void {
  let at = xml.indexOf('<!')
  while (at !== -1) {
    let end: number
    if (xml.startsWith('<!--', at)) end = xml.indexOf('-->', at + 4)
    else if (xml.startsWith('<![CDATA[', at)) end = xml.indexOf(']]>', at + 9)
    else throw new XmlParseError('doctype', 'XML with a DOCTYPE or entity declaration is not accepted')
    if (end === -1) return // unterminated: the validator reports it
    at = xml.indexOf('<!', end + 3)
  }
}

function decodeBody(body: string | Uint8Array): string {
  if (typeof body === 'string') return body.charCodeAt(0) === 0xfeff ? body.slice(1) : body
  // The declared encoding (ASCII-compatible, so readable as latin1), else UTF-8; the BOM is dropped.
  const head = Buffer.from(body.subarray(0, 200)).toString('latin1')
  const declared = /^(?:\uFEFF|\xEF\xBB\xBF)?<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']/.exec(head)?.[1]
  try {
    return new TextDecoder(declared ?? 'utf-8', { fatal: true }).decode(body)
  } catch (err) {
    throw new XmlParseError('encoding', declared ? `the body is not valid ${declared} (or the encoding is not supported)` : 'the body is not valid UTF-8', { cause: err })
  }
}

const parsers = new Map<string, XMLParser>()

function parserFor(options: ParseXmlOptions): XMLParser {
  const arrays = options.arrays ?? []
  const cacheKey = `${options.keepPrefixes ? 1 : 0}\u0000${arrays.join('\u0000')}`
  let parser = parsers.get(cacheKey)
  if (parser) return parser
  const names = new Set(arrays.filter((name) => !name.includes('.')))
  const paths = new Set(arrays.filter((name) => name.includes('.')))
  parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: xmlAttributePrefix,
    textNodeName: xmlTextKey,
    removeNSPrefix: !options.keepPrefixes,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
    ignoreDeclaration: true,
    ignorePiTags: true,
    processEntities: true,
    htmlEntities: false,
    entityDecoder,
    isArray: (name, jPath, _isLeaf, isAttribute) => !isAttribute && (names.has(name) || paths.has(String(jPath))),
  })
  if (parsers.size >= 100) parsers.clear()
  parsers.set(cacheKey, parser)
  return parser
}

/**
 * Parses an XML body (a string, or bytes in UTF-8 or the encoding its declaration names) into a node
 * keyed by the root element's name. Throws `XmlParseError` for a DOCTYPE, malformed XML, several
 * root elements or bytes that do not decode.
 *
 * @example
 * const doc = parseXml(raw, { arrays: ['Notification'] })
 * const envelope = xmlChild(doc, 'Envelope')
 * for (const notification of asArray(xmlChild(xmlChild(xmlChild(envelope, 'Body'), 'notifications'), 'Notification'))) {
 *   const id = xmlText(xmlChild(notification, 'Id'))
 * }
 */
export function parseXml(body: string | Uint8Array, options: ParseXmlOptions = {}): XmlNode {
  const xml = decodeBody(body)
  refuseDeclarations(xml)
  const valid = XMLValidator.validate(xml)
  if (valid !== true) {
    const { msg, line, col } = valid.err
    throw new XmlParseError('malformed', `malformed XML at line ${line}${col !== undefined ? `, column ${col}` : ''}: ${msg}`)
  }
  try {
    return parserFor(options).parse(xml) as XmlNode
  } catch (err) {
    if (err instanceof XmlParseError) throw err
    throw new XmlParseError('malformed', 'malformed XML', { cause: err })
  }
}

/** A value as a list: `undefined` → `[]`, one value → `[value]`, a list as it is. */
export function asArray<T>(value: T | readonly T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? [...(value as readonly T[])] : [value as T]
}

/** The child element `name` of a node (not inherited properties); `undefined` for a text value or a missing child. */
export function xmlChild(value: XmlValue | undefined, name: string): XmlValue | undefined {
  if (value === undefined || typeof value === 'string' || Array.isArray(value)) return undefined
  return Object.hasOwn(value, name) ? value[name] : undefined
}

/**
 * The text of an element, whether it parsed as a string or as a node with attributes (`'#text'`);
 * `''` for an element without text; `undefined` when absent. Of a repeated element, the first.
 */
export function xmlText(value: XmlValue | undefined): string | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string') return value
  if (Array.isArray(value)) return xmlText(value[0])
  const text = Object.hasOwn(value, xmlTextKey) ? value[xmlTextKey] : undefined
  return typeof text === 'string' ? text : ''
}

/** An attribute of an element (`xmlAttr(node, 'id')` reads `'@id'`). */
export function xmlAttr(value: XmlValue | undefined, name: string): string | undefined {
  const attribute = xmlChild(value, `${xmlAttributePrefix}${name}`)
  return typeof attribute === 'string' ? attribute : undefined
}

// ---------------------------------------------------------------------------------------------
// Building

/** What the builder takes: parsed nodes, plus numbers, booleans and bigints as text. */
export type XmlBuildValue = string | number | bigint | boolean | null | undefined | XmlBuildNode | readonly XmlBuildValue[]
export interface XmlBuildNode {
  [name: string]: XmlBuildValue
}

export interface BuildXmlOptions {
  /** Starts with `<?xml version="1.0" encoding="UTF-8"?>`. Default true. */
  declaration?: boolean
}

const namePattern = /^[\p{L}_][\p{L}\p{N}_.-]*(?::[\p{L}_][\p{L}\p{N}_.-]*)?$/u
// Characters XML 1.0 cannot carry at all, even as references: replaced, never passed through.
const illegalChars = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

function checkedName(name: string): string {
  if (!namePattern.test(name)) throw new TypeError(`"${name}" is not a valid XML name`)
  return name
}

/** Escapes text content: `&`, `<`, `>` and CR (kept as `&#13;`); illegal characters become U+FFFD. */
export function escapeXmlText(text: string): string {
  return text.replace(illegalChars, '\uFFFD').replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'))
}

/** Escapes an attribute value (double-quoted), keeping tabs and line breaks as references. */
export function escapeXmlAttribute(text: string): string {
  return escapeXmlText(text).replace(/["'\n\t]/g, (c) => (c === '"' ? '&quot;' : c === "'" ? '&apos;' : c === '\n' ? '&#10;' : '&#9;'))
}

function scalarText(value: string | number | bigint | boolean): string {
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`${value} cannot be written as XML text`)
  return String(value)
}

function isScalar(value: XmlBuildValue): value is string | number | bigint | boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean'
}

function writeElement(out: string[], name: string, value: XmlBuildValue): void {
  if (value === undefined) return
  if (Array.isArray(value)) {
    for (const item of value as readonly XmlBuildValue[]) writeElement(out, name, item)
    return
  }
  const tag = checkedName(name)
  if (value === null) {
    out.push(`<${tag}/>`)
    return
  }
  if (isScalar(value)) {
    const text = scalarText(value)
    out.push(text === '' ? `<${tag}/>` : `<${tag}>${escapeXmlText(text)}</${tag}>`)
    return
  }
  const node = value as XmlBuildNode
  const open = [`<${tag}`]
  const inner: string[] = []
  for (const key of Object.keys(node)) {
    const child = node[key]
    if (child === undefined) continue
    if (key.startsWith(xmlAttributePrefix)) {
      if (child === null) continue
      if (!isScalar(child)) throw new TypeError(`attribute ${key} of <${tag}> must be a string, number or boolean`)
      open.push(` ${checkedName(key.slice(xmlAttributePrefix.length))}="${escapeXmlAttribute(scalarText(child))}"`)
    } else if (key === xmlTextKey) {
      if (child === null) continue
      if (!isScalar(child)) throw new TypeError(`the text of <${tag}> must be a string, number or boolean`)
      inner.push(escapeXmlText(scalarText(child)))
    } else {
      writeElement(inner, key, child)
    }
  }
  out.push(inner.length === 0 ? `${open.join('')}/>` : `${open.join('')}>${inner.join('')}</${tag}>`)
}

/**
 * Writes a document from a node with exactly one key, the root element, in the shape `parseXml`
 * returns: `'@name'` keys are attributes, `'#text'` is text, arrays repeat an element, `null` is an
 * empty element and `undefined` leaves the element out. Text and attribute values are escaped; names
 * are checked (a name that is not a valid XML name throws), so no value can inject markup. Prefixes
 * are written as given, and namespaces are declared with `'@xmlns:…'` attributes.
 *
 * @example
 * buildXml({ 'soapenv:Envelope': {
 *   '@xmlns:soapenv': 'http://schemas.xmlsoap.org/soap/envelope/',
 *   'soapenv:Body': { notificationsResponse: { '@xmlns': 'http://soap.sforce.com/2005/09/outbound', Ack: true } },
 * } })
 */
export function buildXml(root: XmlBuildNode, options: BuildXmlOptions = {}): string {
  const names = Object.keys(root).filter((key) => root[key] !== undefined)
  const [name] = names
  if (names.length !== 1 || name === undefined || name.startsWith(xmlAttributePrefix) || name === xmlTextKey || Array.isArray(root[name])) {
    throw new TypeError('an XML document has exactly one root element')
  }
  const out: string[] = options.declaration === false ? [] : ['<?xml version="1.0" encoding="UTF-8"?>']
  writeElement(out, name, root[name])
  return out.join('')
}

/** The SOAP 1.1 envelope namespace. */
export const soapEnvelopeNamespace = 'http://schemas.xmlsoap.org/soap/envelope/'

/**
 * A SOAP 1.1 envelope around one body element.
 *
 * @example
 * soapEnvelope({ notificationsResponse: { '@xmlns': 'http://soap.sforce.com/2005/09/outbound', Ack: true } })
 */
export function soapEnvelope(body: XmlBuildNode): string {
  return buildXml({ 'soapenv:Envelope': { '@xmlns:soapenv': soapEnvelopeNamespace, 'soapenv:Body': body } })
}

/**
 * A SOAP 1.1 fault: `Client` when the sender must change the message, `Server` when it may retry.
 * The message is escaped; keep it safe to show (no bodies, no secrets).
 */
export function soapFault(code: 'Client' | 'Server', message: string): string {
  return soapEnvelope({ 'soapenv:Fault': { faultcode: `soapenv:${code}`, faultstring: message } })
}
