/**
 * Just enough SOQL for the Salesforce simulator: one SELECT of fields and parent paths
 * (`Account.Name`), parent-to-child subqueries (`(SELECT … FROM OrderItems ORDER BY …)`), one
 * `WHERE field = 'literal'`, `ORDER BY` and `LIMIT`. What it cannot read is refused as Salesforce
 * refuses it: MALFORMED_QUERY, with the query, a caret under the offending token and its position.
 * Which objects and fields exist is the simulator's business (INVALID_FIELD, INVALID_TYPE).
 */

export interface SoqlSubquery {
  fields: SoqlField[]
  from: SoqlName
  orderBy?: { field: SoqlName; descending: boolean }
  limit?: number
}

export interface SoqlQuery extends SoqlSubquery {
  subqueries: SoqlSubquery[]
  where?: { field: SoqlName; value: string }
}

/** A name as written, with where it starts in the query (for the caret of an error). */
export interface SoqlName {
  text: string
  at: number
}
export type SoqlField = SoqlName

/** A query Salesforce would refuse; `errorCode` and `message` as its REST answer carries them. */
export class SoqlError extends Error {
  readonly errorCode: string
  constructor(errorCode: string, message: string) {
    super(message)
    this.name = 'SoqlError'
    this.errorCode = errorCode
  }
}

/** Salesforce's message layout: the query, a caret under the position, the row and column, the reason. */
export function soqlErrorMessage(soql: string, at: number, reason: string): string {
  return `\n${soql}\n${' '.repeat(Math.max(0, at))}^\nERROR at Row:1:Column:${at + 1}\n${reason}`
}

type Token = { kind: 'word' | 'string' | 'number' | 'punct' | 'end'; text: string; value: string; at: number }

const wordPattern = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/y
const numberPattern = /\d+/y

function tokenize(soql: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  const malformed = (at: number, reason: string) => new SoqlError('MALFORMED_QUERY', soqlErrorMessage(soql, at, reason))
  while (i < soql.length) {
    const c = soql[i]!
    if (/\s/.test(c)) {
      i++
      continue
    }
    if ('(),='.includes(c)) {
      tokens.push({ kind: 'punct', text: c, value: c, at: i })
      i++
      continue
    }
    if (c === "'") {
      let value = ''
      let j = i + 1
      for (; j < soql.length && soql[j] !== "'"; j++) {
        if (soql[j] === '\\' && j + 1 < soql.length) j++
        value += soql[j]
      }
      if (j >= soql.length) throw malformed(i, `line 1:${i} mismatched character '<EOF>' expecting '''`)
      tokens.push({ kind: 'string', text: soql.slice(i, j + 1), value, at: i })
      i = j + 1
      continue
    }
    wordPattern.lastIndex = i
    const word = wordPattern.exec(soql)
    if (word) {
      tokens.push({ kind: 'word', text: word[0], value: word[0], at: i })
      i += word[0].length
      continue
    }
    numberPattern.lastIndex = i
    const number = numberPattern.exec(soql)
    if (number) {
      tokens.push({ kind: 'number', text: number[0], value: number[0], at: i })
      i += number[0].length
      continue
    }
    throw malformed(i, `line 1:${i} no viable alternative at character '${c}'`)
  }
  tokens.push({ kind: 'end', text: '<EOF>', value: '', at: soql.length })
  return tokens
}

// Words that cannot be a name. ORDER can (it is the Order object): SOQL tells them apart by position.
const keywords = new Set(['SELECT', 'FROM', 'WHERE', 'BY', 'LIMIT', 'AND', 'OR', 'NOT', 'GROUP', 'HAVING', 'OFFSET', 'WITH'])

export function parseSoql(soql: string): SoqlQuery {
  const tokens = tokenize(soql)
  let pos = 0
  const peek = () => tokens[pos]!
  const unexpected = (token: Token) => new SoqlError('MALFORMED_QUERY', soqlErrorMessage(soql, token.at, `unexpected token: ${token.kind === 'end' ? '<EOF>' : token.text}`))
  const isKeyword = (token: Token, word: string) => token.kind === 'word' && token.value.toUpperCase() === word
  const expectKeyword = (word: string) => {
    const token = tokens[pos]!
    if (!isKeyword(token, word)) throw unexpected(token)
    pos++
  }
  const expectPunct = (p: string) => {
    const token = tokens[pos]!
    if (token.kind !== 'punct' || token.value !== p) throw unexpected(token)
    pos++
  }
  const name = (): SoqlName => {
    const token = tokens[pos]!
    if (token.kind !== 'word' || keywords.has(token.value.toUpperCase())) throw unexpected(token)
    pos++
    return { text: token.value, at: token.at }
  }
  const orderByAndLimit = (query: SoqlSubquery) => {
    if (isKeyword(peek(), 'ORDER')) {
      pos++
      expectKeyword('BY')
      const field = name()
      let descending = false
      if (isKeyword(peek(), 'ASC')) pos++
      else if (isKeyword(peek(), 'DESC')) {
        pos++
        descending = true
      }
      query.orderBy = { field, descending }
    }
    if (isKeyword(peek(), 'LIMIT')) {
      pos++
      const token = tokens[pos]!
      if (token.kind !== 'number') throw unexpected(token)
      pos++
      query.limit = Number(token.value)
    }
  }

  const select = (nested: boolean): SoqlQuery => {
    expectKeyword('SELECT')
    const fields: SoqlField[] = []
    const subqueries: SoqlSubquery[] = []
    for (;;) {
      const token = peek()
      if (token.kind === 'punct' && token.value === '(') {
        if (nested) throw unexpected(token)
        pos++
        const sub = select(true)
        expectPunct(')')
        subqueries.push({ fields: sub.fields, from: sub.from, ...(sub.orderBy ? { orderBy: sub.orderBy } : {}), ...(sub.limit !== undefined ? { limit: sub.limit } : {}) })
      } else fields.push(name())
      if (peek().kind === 'punct' && peek().value === ',') {
        pos++
        continue
      }
      break
    }
    expectKeyword('FROM')
    const query: SoqlQuery = { fields, subqueries, from: name() }
    if (!nested && isKeyword(peek(), 'WHERE')) {
      pos++
      const field = name()
      expectPunct('=')
      const token = tokens[pos]!
      if (token.kind !== 'string') throw unexpected(token)
      pos++
      query.where = { field, value: token.value }
    }
    orderByAndLimit(query)
    return query
  }

  const query = select(false)
  if (peek().kind !== 'end') throw unexpected(peek())
  return query
}
