/**
 * The settings and secrets of a REST WMS connection: where each endpoint is, how requests are built
 * and answers read (field maps: our field → the WMS's field path), how the WMS says "not enough
 * stock" and "already released", and how its webhooks name events. Everything a particular WMS does
 * differently is configured here, so the connector's code stays the same for every WMS. A setting
 * that cannot work (a path missing, list fields that do not line up, partial reservations without
 * a way to read what was reserved) is refused when the connection is loaded, with its field path.
 */
import { z } from 'zod'
import { failureKinds } from '../../src/connector-kit/index.ts'
import { fieldMapProblems, fieldPathProblem, listDepth, type FieldMap } from './field-paths.ts'

// ── building blocks ─────────────────────────────────────────────────────────────────────────────

const fieldPath = z.string().superRefine((path, ctx) => {
  const problem = fieldPathProblem(path)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})

/** A path to one value (no `[]`). */
const scalarPath = fieldPath.refine((path) => listDepth(path) === 0, 'must name one value, without []')
/** A path through one list (`items[].itemCode`). */
const listPath = fieldPath.refine((path) => listDepth(path) === 1, 'must go through one list with [], e.g. items[].itemCode')
/** A path into a request body, which is always a JSON object. */
const bodyPath = (inner: z.ZodType<string>) => inner.refine((path) => !path.startsWith('['), 'a request body is an object: must start with a field name')
/** Where an object sits in an answer: '' for the answer itself. */
const answerAt = z.union([z.literal(''), scalarPath])

const placeholderPattern = /\{([A-Za-z][A-Za-z0-9_]*)\}/g

/**
 * A path template relative to baseUrl. Only `/…` paths: `//host/x` or `https://host/x` would make
 * the HTTP client ignore baseUrl and send the credentials to another host.
 */
function pathTemplate(allowed: readonly string[], required: readonly string[] = []) {
  return z
    .string()
    .regex(/^\/(?!\/)/, 'must be a path that starts with a single "/"')
    .superRefine((template, ctx) => {
      const used = [...template.matchAll(placeholderPattern)].map((match) => match[1]!)
      for (const name of used) {
        if (!allowed.includes(name)) {
          ctx.addIssue({ code: 'custom', message: `unknown placeholder {${name}}; this path may use ${allowed.map((a) => `{${a}}`).join(', ') || 'none'}` })
        }
      }
      for (const name of required) {
        if (!used.includes(name)) ctx.addIssue({ code: 'custom', message: `must contain the {${name}} placeholder` })
      }
    })
}

const httpMethod = z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name such as Idempotency-Key')
const jsonScalar = z.union([z.string(), z.number(), z.boolean(), z.null()])
const constantsSchema = z
  .record(bodyPath(scalarPath), z.json())
  .default({})
  .describe('Values sent as they are in every request of this kind: their field path → a JSON value, e.g. { warehouse: "WH-1" }.')

/** Adds an issue for each unusable pair of a field map, at `path` + the our-field key. */
function checkFieldMap(map: FieldMap, ctx: z.RefinementCtx, path: (string | number)[] = []): void {
  for (const [ours, message] of fieldMapProblems(map)) ctx.addIssue({ code: 'custom', message, path: [...path, ours] })
}

/**
 * Matches a WMS answer by its HTTP status, a field's value, or both.
 *
 * @example
 * { status: 409, field: 'code', equals: 'INSUFFICIENT_STOCK' }
 */
const answerMatcherShape = {
  status: z
    .union([z.number().int().min(100).max(599), z.array(z.number().int().min(100).max(599)).min(1)])
    .optional()
    .describe('The HTTP status (or any of these statuses) of the answer. Leave out to match any status, 2xx included.'),
  field: scalarPath.optional().describe('A field of the answer body to look at, e.g. code or error.type.'),
  equals: z
    .union([jsonScalar, z.array(jsonScalar).min(1)])
    .optional()
    .describe('The value (or any of these values) the field must have.'),
}

function checkMatcher(matcher: { status?: unknown; field?: unknown; equals?: unknown }, ctx: z.RefinementCtx): void {
  if (matcher.status === undefined && matcher.field === undefined) ctx.addIssue({ code: 'custom', message: 'needs a status, a field, or both', path: ['status'] })
  if ((matcher.field === undefined) !== (matcher.equals === undefined)) ctx.addIssue({ code: 'custom', message: 'field and equals go together', path: [matcher.field === undefined ? 'field' : 'equals'] })
}

/**
 * Matches a WMS answer by its HTTP status, a field's value, or both.
 *
 * @example
 * { status: 409, field: 'code', equals: 'INSUFFICIENT_STOCK' }
 */
export const answerMatcherSchema = z.object(answerMatcherShape).strict().superRefine(checkMatcher)
export type AnswerMatcher = z.infer<typeof answerMatcherSchema>

// ── authentication ────────────────────────────────────────────────────────────────────────────

export const authSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('bearer').describe('Authorization: Bearer <secret token>.') }).strict(),
    z
      .object({
        type: z.literal('basic').describe('Authorization: Basic base64(username:<secret password>).'),
        username: z.string().min(1).describe('The user name; the password is the secret `password`.'),
      })
      .strict(),
    z
      .object({
        type: z.literal('apiKey').describe('The secret `apiKey` in a header of its own.'),
        header: headerName.default('X-API-Key').describe('The header that carries the key, e.g. X-Api-Key.'),
        prefix: z.string().min(1).optional().describe('Put before the key with a space, e.g. "ApiKey" for `Authorization: ApiKey <key>`.'),
      })
      .strict(),
    z.object({ type: z.literal('none').describe('No credentials (a WMS behind a private network or mTLS proxy).') }).strict(),
  ])
  .default({ type: 'bearer' })
  .describe('How requests are authenticated; the secret itself is in the connection secrets (token, password or apiKey).')

// ── stock ─────────────────────────────────────────────────────────────────────────────────────

export const stockSchema = z
  .object({
    method: httpMethod.default('GET').describe('GET (SKUs in the path or query) or POST (SKUs in the body).'),
    path: pathTemplate(['skus']).describe('e.g. /api/stock?skus={skus}; {skus} is the batch of SKUs, each URL-encoded, joined by skuSeparator.'),
    skuSeparator: z.string().min(1).default(',').describe('What joins the SKUs in {skus}: "," gives A,B; "&sku=" with ?sku={skus} gives sku=A&sku=B.'),
    maxBatchSize: z.number().int().min(1).max(1000).default(50).describe('At most this many SKUs per request; more are asked in batches, one after another.'),
    body: z
      .object({
        fields: z.object({ skus: bodyPath(scalarPath).describe('Where the list of SKUs goes, e.g. itemCodes.') }).strict(),
        constants: constantsSchema,
      })
      .strict()
      .optional()
      .describe('For a POST stock query: the request body.'),
    answer: z
      .object({
        'levels[].sku': listPath.describe('Where each level\'s SKU is, e.g. data[].itemCode ([].sku when the answer is a list).'),
        'levels[].available': listPath.describe('What can still be reserved, e.g. data[].available. Below zero counts as 0.'),
        'levels[].onHand': listPath.optional().describe('What is physically there, e.g. data[].onHand.'),
        'levels[].warehouse': listPath.optional().describe('The warehouse of the level, when the WMS answers per warehouse.'),
      })
      .strict()
      .superRefine((map, ctx) => checkFieldMap(map, ctx))
      .describe('Where the stock levels are in the answer.'),
  })
  .strict()
  .superRefine((stock, ctx) => {
    if (!stock.path.includes('{skus}') && !stock.body) {
      ctx.addIssue({ code: 'custom', message: 'put {skus} in the path or configure body.fields.skus', path: ['path'] })
    }
    if (stock.body && stock.method === 'GET') ctx.addIssue({ code: 'custom', message: 'a GET has no body: use POST or put {skus} in the path', path: ['method'] })
  })
  .describe('How stock levels are read (inventory.getStock).')

// ── reservations ──────────────────────────────────────────────────────────────────────────────

export const reservationFieldsSchema = z
  .object({
    externalId: scalarPath.describe('The reservation\'s id in the WMS, e.g. id; a string or a number.'),
    reference: scalarPath.optional().describe('Where the WMS keeps our reference, e.g. clientRef: lookups skip reservations of other orders.'),
    status: scalarPath.optional().describe('The reservation\'s status, compared with statusValues.'),
    'lines[].sku': listPath.optional().describe('Each line\'s SKU, e.g. items[].itemCode. Without lines, a reservation counts as holding what was asked.'),
    'lines[].reserved': listPath.optional().describe('What each line holds, e.g. items[].allocated. Needed for partial reservations.'),
    'lines[].requested': listPath.optional().describe('What each line asked for, e.g. items[].qty (read when a reservation is found by reference).'),
    'lines[].lineId': listPath.optional().describe('Our line id, when the WMS echoes it (e.g. items[].lineRef); else lines are matched by order and SKU.'),
    statusValues: z
      .object({
        released: z.array(jsonScalar).default([]).describe('Statuses of a released or cancelled reservation: lookups ignore it.'),
        closed: z.array(jsonScalar).default([]).describe('Statuses of a reservation that can no longer change (shipped, delivered): a retry adopts it as it is.'),
      })
      .strict()
      .prefault({})
      .describe('Which values of status mean what; any other value is an open reservation.'),
  })
  .strict()
  .superRefine((map, ctx) => {
    const { statusValues: _, ...fields } = map
    checkFieldMap(fields, ctx)
    const lineFields = ['lines[].reserved', 'lines[].requested', 'lines[].lineId'] as const
    if (lineFields.some((field) => map[field] !== undefined) && map['lines[].sku'] === undefined) {
      ctx.addIssue({ code: 'custom', message: 'the other lines[] fields need lines[].sku', path: ['lines[].sku'] })
    }
  })
  .describe('How the WMS shows a reservation (relative to the reservation object; each endpoint says where that object is in its answer).')

const reservationBodySchema = z
  .object({
    fields: z
      .object({
        reference: bodyPath(scalarPath).optional().describe('Where our order reference goes, e.g. clientRef. Needed for lookups by reference.'),
        idempotencyKey: bodyPath(scalarPath).optional().describe('For a WMS that takes the idempotency key in the body rather than a header.'),
        'lines[].sku': bodyPath(listPath).describe('Each line\'s SKU, e.g. items[].itemCode.'),
        'lines[].quantity': bodyPath(listPath).describe('Each line\'s quantity, e.g. items[].qty (format: quantities).'),
        'lines[].lineId': bodyPath(listPath).optional().describe('Our line id, e.g. items[].lineRef, for a WMS that stores and echoes it.'),
      })
      .strict()
      .superRefine((map, ctx) => checkFieldMap(map, ctx))
      .describe('Our field → their field path.'),
    constants: constantsSchema,
  })
  .strict()

export const partialSchema = z
  .union([
    z.literal('unsupported').describe('The WMS reserves all or nothing: a reservation that allows partial lines is refused (config).'),
    z
      .object({
        field: bodyPath(scalarPath).describe('The body field that allows partial lines, e.g. allowBackorder.'),
        allowed: jsonScalar.default(true).describe('Its value when partial lines are allowed.'),
        notAllowed: jsonScalar.optional().describe('Its value when they are not; left out of the body when unset.'),
      })
      .strict(),
  ])
  .default('unsupported')
  .describe('How the WMS is told that partial lines are acceptable (the connection\'s stockPolicy: partial).')

export const reserveSchema = z
  .object({
    method: httpMethod.default('POST'),
    path: pathTemplate(['reference']).describe('Where a reservation is created, e.g. /reservations; may use {reference}.'),
    body: reservationBodySchema.describe('The request body.'),
    idempotencyHeader: z
      .union([z.literal('none'), headerName])
      .default('Idempotency-Key')
      .describe('The header that carries our idempotency key (the same for every retry of one reservation), or none.'),
    partial: partialSchema,
    answerAt: answerAt.default('').describe('Where the reservation is in the answer, e.g. data for { data: { id } }; "" for the answer itself.'),
  })
  .strict()
  .describe('How a reservation is created (inventory.reserve without an existing reservation).')

export const updateSchema = z
  .union([
    z.literal('none').describe('The WMS cannot change a reservation: a changed order needs attention.'),
    z
      .object({
        method: httpMethod.default('PUT'),
        path: pathTemplate(['externalId', 'reference'], ['externalId']).describe('e.g. /reservations/{externalId}; {externalId} is URL-encoded.'),
        body: reservationBodySchema.describe('The request body: the new lines replace the old ones.'),
        idempotencyHeader: z
          .union([z.literal('none'), headerName])
          .default('none')
          .describe('A header for an idempotency key on updates (sent as <key>.update), or none: an update that sets quantities is safe to repeat.'),
        answerAt: z
          .union([answerAt, z.literal('none')])
          .default('')
          .describe('Where the changed reservation is in the answer, or none when the answer has no body worth reading.'),
      })
      .strict(),
  ])
  .default('none')
  .describe('How an existing reservation is adjusted to new quantities (inventory.reserve with existing).')

export const findSchema = z
  .union([
    z.literal('none').describe('The WMS cannot list reservations by our reference; the idempotency key alone protects retries.'),
    z
      .object({
        method: httpMethod.default('GET'),
        path: pathTemplate(['reference'], ['reference']).describe('e.g. /reservations?clientRef={reference}; {reference} is URL-encoded.'),
        listAt: answerAt.default('').describe('Where the list of reservations is in the answer, e.g. data; "" when the answer is the list.'),
        order: z.enum(['oldest-first', 'newest-first']).default('oldest-first').describe('How the WMS orders the list; the newest open reservation is used.'),
      })
      .strict(),
  ])
  .default('none')
  .describe('How a reservation is found by our reference (inventory.findReservation, and retries after a lost answer).')

export const releaseSchema = z
  .object({
    method: httpMethod.default('POST'),
    path: pathTemplate(['externalId', 'reference'], ['externalId']).describe('e.g. /reservations/{externalId}/release or (DELETE) /reservations/{externalId}.'),
    constants: constantsSchema.describe('A body to send, e.g. { reason: "order cancelled" }; none when empty.'),
    alreadyReleased: z
      .array(answerMatcherSchema)
      .default([{ status: [404, 410] }])
      .describe('Answers that mean the reservation is gone already, so releasing again succeeds (default: 404 and 410).'),
  })
  .strict()
  .describe('How a reservation is released (inventory.release). Releasing twice must succeed.')

export const insufficientStockSchema = z
  .object({
    when: z
      .array(answerMatcherSchema)
      .min(1)
      .default([{ status: 409 }])
      .describe('Answers to a create or an update that mean "not enough stock", e.g. [{ status: 409, field: code, equals: INSUFFICIENT_STOCK }].'),
    'shortages[].sku': listPath.optional().describe('Each short item\'s SKU in that answer, e.g. shortages[].itemCode.'),
    'shortages[].available': listPath.optional().describe('What is available of it, e.g. shortages[].available. Without it the stock endpoint is asked.'),
    'shortages[].lineId': listPath.optional().describe('Our line id, when the WMS reports shortages per line.'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const { when: _, ...fields } = config
    checkFieldMap(fields, ctx)
    if ((fields['shortages[].sku'] === undefined) !== (fields['shortages[].available'] === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'shortages[].sku and shortages[].available go together', path: [fields['shortages[].sku'] === undefined ? 'shortages[].sku' : 'shortages[].available'] })
    }
  })
  .prefault({})
  .describe('How the WMS says there is not enough stock, and where the available quantity per item is.')

export const errorOverrideSchema = z
  .object({
    ...answerMatcherShape,
    kind: z.enum(failureKinds).describe('The failure kind for such an answer, e.g. data for a 409 that no retry can fix.'),
    message: z.string().min(1).max(200).optional().describe('A message safe to show in the dashboard.'),
  })
  .strict()
  .superRefine(checkMatcher)
export type ErrorOverride = z.infer<typeof errorOverrideSchema>

// ── webhooks ──────────────────────────────────────────────────────────────────────────────────

const eventTypeValues = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)])

export const webhookMappingSchema = z
  .object({
    eventType: scalarPath.describe('Where the event type is, e.g. eventType or type.'),
    types: z
      .object({
        shipped: eventTypeValues.optional().describe('Type value(s) of a shipment → order.shipped.'),
        delivered: eventTypeValues.optional().describe('Type value(s) of a delivery → order.delivered.'),
        stockChanged: eventTypeValues.optional().describe('Type value(s) of a stock change → stock.changed.'),
      })
      .strict()
      .describe('Which event type values mean what.'),
    unknownTypes: z
      .enum(['refuse', 'ignore'])
      .default('refuse')
      .describe('Another type: refuse it (422, recorded as a refused delivery) or acknowledge it and store nothing.'),
    reservationId: scalarPath.optional().describe('The WMS reservation id (what our link holds), e.g. payload.reservationId.'),
    reference: scalarPath.optional().describe('Our order reference, e.g. payload.clientRef; used (as ref:<reference>) when there is no reservation id.'),
    carrier: scalarPath.optional().describe('Shipments: the carrier.'),
    trackingNumber: scalarPath.optional().describe('Shipments: the tracking number.'),
    deliveredAt: scalarPath.optional().describe('Deliveries: when.'),
    'lines[].sku': listPath.optional().describe('Shipments: each shipped line\'s SKU, e.g. payload.items[].itemCode.'),
    'lines[].quantity': listPath.optional().describe('Shipments: each shipped line\'s quantity.'),
    'levels[].sku': listPath.optional().describe('Stock changes: each SKU, e.g. payload.items[].itemCode.'),
    'levels[].available': listPath.optional().describe('Stock changes: what is available of it.'),
    sequence: scalarPath.optional().describe('A number that grows with every event (e.g. seq): an older stock picture never replaces a newer one.'),
  })
  .strict()
  .superRefine((mapping, ctx) => {
    const { types, ...rest } = mapping
    if (!types.shipped && !types.delivered && !types.stockChanged) ctx.addIssue({ code: 'custom', message: 'map at least one event type', path: ['types'] })
    if ((types.shipped || types.delivered) && !rest.reservationId && !rest.reference) {
      ctx.addIssue({ code: 'custom', message: 'shipment events need reservationId or reference', path: ['reservationId'] })
    }
    if (types.stockChanged && (!rest['levels[].sku'] || !rest['levels[].available'])) {
      ctx.addIssue({ code: 'custom', message: 'stock events need levels[].sku and levels[].available', path: [rest['levels[].sku'] ? 'levels[].available' : 'levels[].sku'] })
    }
    if ((rest['lines[].sku'] === undefined) !== (rest['lines[].quantity'] === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'lines[].sku and lines[].quantity go together', path: [rest['lines[].sku'] ? 'lines[].quantity' : 'lines[].sku'] })
    }
    checkFieldMap({ 'lines[].sku': rest['lines[].sku'], 'lines[].quantity': rest['lines[].quantity'] }, ctx)
    checkFieldMap({ 'levels[].sku': rest['levels[].sku'], 'levels[].available': rest['levels[].available'] }, ctx)
  })
  .describe('How the WMS\'s webhook bodies name events and where their fields are.')

// ── the whole ─────────────────────────────────────────────────────────────────────────────────

export const settingsSchema = z
  .object({
    baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the WMS API, with any path prefix, e.g. https://wms.example.com/api/v2.'),
    timeoutMs: z.number().int().positive().default(10_000).describe('How long one request may take before it is abandoned, in milliseconds.'),
    authentication: authSchema,
    headers: z
      .record(headerName, z.string())
      .default({})
      .describe('Headers sent with every request, e.g. { X-Tenant: acme }. Not for secrets: those belong in the secrets.'),
    quantities: z
      .enum(['integer', 'number', 'string'])
      .default('integer')
      .describe('How quantities are sent: integer (whole units as JSON numbers; "2.5" is refused), number (a JSON number) or string ("2.5").'),
    health: z
      .object({ method: httpMethod.default('GET'), path: pathTemplate([]).describe('e.g. /ping; any 2xx means up.') })
      .strict()
      .optional()
      .describe('The connection check; without it the check only looks at the configuration.'),
    stock: stockSchema,
    reservation: reservationFieldsSchema,
    reserve: reserveSchema,
    update: updateSchema,
    find: findSchema,
    release: releaseSchema,
    insufficientStock: insufficientStockSchema,
    errors: z
      .array(errorOverrideSchema)
      .default([])
      .describe('Answers classified otherwise than the HTTP table, first match wins, e.g. { status: 409, field: code, equals: RESERVATION_SHIPPED, kind: data }. A match with a field also applies to a 2xx answer.'),
    webhooks: webhookMappingSchema.optional().describe('How the WMS\'s shipment and stock webhooks read; without it, deliveries are refused.'),
  })
  .strict()
  .superRefine((settings, ctx) => {
    const keyInBody = settings.reserve.body.fields.idempotencyKey !== undefined
    if (settings.find === 'none' && settings.reserve.idempotencyHeader === 'none' && !keyInBody) {
      ctx.addIssue({
        code: 'custom',
        message: 'a WMS with neither an idempotency key nor a lookup by reference could reserve twice when an answer is lost: configure one',
        path: ['reserve', 'idempotencyHeader'],
      })
    }
    if (settings.find !== 'none' && settings.reserve.body.fields.reference === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a lookup by reference needs our reference in the reservation: set it', path: ['reserve', 'body', 'fields', 'reference'] })
    }
    if (settings.find !== 'none' && settings.reservation.reference === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a lookup by reference needs to see the reference, so it never adopts another order\'s reservation', path: ['reservation', 'reference'] })
    }
    if (settings.reserve.partial !== 'unsupported' && settings.reservation['lines[].reserved'] === undefined) {
      ctx.addIssue({ code: 'custom', message: 'partial reservations need to read what each line holds', path: ['reservation', 'lines[].reserved'] })
    }
    if (settings.reserve.partial !== 'unsupported' && settings.update !== 'none' && settings.update.answerAt === 'none') {
      ctx.addIssue({ code: 'custom', message: 'partial reservations need to read what a changed reservation holds', path: ['update', 'answerAt'] })
    }
  })

export const secretsSchema = z.object({
  token: z.string().min(1).optional().describe('authentication.type bearer: the token, sent as `Authorization: Bearer <token>`.'),
  password: z.string().min(1).optional().describe('authentication.type basic: the password.'),
  apiKey: z.string().min(1).optional().describe('authentication.type apiKey: the key, sent in authentication.header.'),
  webhookSecret: z
    .string()
    .startsWith('whsec_')
    .optional()
    .describe('Standard Webhooks secret (whsec_…) the WMS signs its events with; needed to receive them.'),
})

export type RestWmsSettings = z.infer<typeof settingsSchema>
export type RestWmsSecrets = z.infer<typeof secretsSchema>
export type ReservationFields = RestWmsSettings['reservation']
export type WebhookMapping = z.infer<typeof webhookMappingSchema>
