/**
 * The mapping admin API through real HTTP: versions, preview, golden examples at activation,
 * rollback, the audit log, shadow runs, replay with a chosen version, and who may do what.
 * The version lifecycle runs on PGlite and PostgreSQL; the rest on PGlite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sampleOrder } from '../../connectors/demo-crm/sender.ts'
import type { DemoCrmOrder } from '../../connectors/demo-crm/index.ts'
import { engines } from '../support/test-database.ts'
import { startTestStack, type TestStack } from '../support/test-orderbridge.ts'

const inbound = 'demo-crm.to-canonical.order'
const outbound = 'canonical.to-demo-erp.sales-order'

interface Field {
  to: string
  [k: string]: unknown
}
interface Spec {
  id: string
  fields: Field[]
  [k: string]: unknown
}

/** The spec with the field for `to` changed (or removed, with `null`). */
function withField(spec: Spec, to: string, change: Partial<Field> | null): Spec {
  const fields = change === null ? spec.fields.filter((f) => f.to !== to) : spec.fields.map((f) => (f.to === to ? { ...f, ...change } : f))
  if (fields.length === spec.fields.length && change === null) throw new Error(`no field ${to}`)
  return { ...spec, fields }
}

/** A legacy sales-rep code renamed: changes nothing for the golden examples or ordinary orders. */
const renameLegacyRep = (spec: Spec) => withField(spec, 'owner', { map: { 'rep-legacy-9': 'rep-9' }, fallback: 'keep' })

async function activeSpec(stack: TestStack, id: string): Promise<Spec> {
  const { status, body } = await stack.api(`/api/v1/mappings/${id}`)
  expect(status).toBe(200)
  return body.spec
}

function helpers(get: () => TestStack) {
  const findOrder = async (externalId: string) => {
    const { body } = await get().api(`/api/v1/orders?connection=demo-crm&externalId=${externalId}`)
    return body.orders[0]
  }
  return {
    findOrder,
    /** Waits until the order's ERP sales order is synced (its other links are the stock reservation and the CRM status). */
    syncedOrder: (externalId: string) =>
      get().waitFor(async () => {
        const order = await findOrder(externalId)
        return order?.links.find((l: { operation: string }) => l.operation === 'salesOrders.upsert')?.status === 'synced' && order
      }, `${externalId} synced`),
    /** Sends the order and waits until its event has been handled; answers the event. */
    async sendAndSettle(order: DemoCrmOrder) {
      const answer = await get().crm.send('order.created', order)
      expect(answer.status).toBe(202)
      return settled(get(), (answer.body as { eventId: string }).eventId)
    },
  }
}

function settled(stack: TestStack, eventId: string) {
  return stack.waitFor(async () => {
    const { body } = await stack.api(`/api/v1/events/${eventId}`)
    return body.status !== 'pending' && body
  }, `event ${eventId} to be handled`)
}

describe.each(engines)('mapping versions through the API (%s)', (engine) => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack(engine)
  })
  afterAll(() => stack?.close())
  const { syncedOrder } = helpers(() => stack)

  it('lists the shipped mappings, loaded from their files as version 1 and active', async () => {
    const { status, body } = await stack.api('/api/v1/mappings')
    expect(status).toBe(200)
    expect(body.mappings).toContainEqual({
      id: inbound,
      activeVersion: 1,
      latestVersion: 1,
      description: expect.any(String),
      updatedAt: expect.any(String),
      usedBy: [{ connection: 'demo-crm', purpose: 'inbound' }],
    })
    expect(body.mappings.find((m: { id: string }) => m.id === outbound)).toMatchObject({ activeVersion: 1, usedBy: [{ connection: 'demo-erp', purpose: 'salesOrder' }] })

    const { body: active } = await stack.api(`/api/v1/mappings/${inbound}`)
    expect(active).toMatchObject({ id: inbound, version: 1, origin: 'file', createdBy: `file:${inbound}.yaml`, createdAt: expect.any(String), spec: { id: inbound } })
    expect(active.spec.fields.map((f: Field) => f.to)).toContain('customer.name')

    const { body: versions } = await stack.api(`/api/v1/mappings/${inbound}/versions`)
    expect(versions).toEqual({ id: inbound, activeVersion: 1, versions: [expect.objectContaining({ version: 1, origin: 'file', active: true })] })
    expect(versions.versions[0].spec).toBeUndefined()

    const missing = await stack.api('/api/v1/mappings/no-such-mapping')
    expect(missing).toEqual({ status: 404, body: { error: { code: 'not_found', message: 'no mapping "no-such-mapping"' } } })
    expect((await stack.api(`/api/v1/mappings/${inbound}/versions/9`)).status).toBe(404)
  })

  it('refuses an invalid spec, naming the path of every problem, and saves nothing', async () => {
    const spec = await activeSpec(stack, inbound)
    const broken = { ...spec, fields: spec.fields.map((f, i) => (i === 2 ? { ...f, to: 'not a path' } : i === 3 ? { ...f, type: 'money' } : f)) }
    const invalid = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: broken } })
    expect(invalid.status).toBe(422)
    expect(invalid.body.error.code).toBe('validation_failed')
    expect(invalid.body.error.details.map((d: { path: string }) => d.path)).toEqual(['spec.fields[2].to', 'spec.fields[3].type'])

    // Valid field by field, but two fields write the same target: the compiler says which.
    const clash = { ...spec, fields: [...spec.fields, { to: 'owner', constant: 'x' }] }
    const uncompilable = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: clash } })
    expect(uncompilable.status).toBe(422)
    expect(uncompilable.body.error.details).toEqual([{ path: `spec.fields[${spec.fields.length}].to`, message: expect.stringContaining('clashes with owner') }])

    const otherId = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: { ...spec, id: outbound } } })
    expect(otherId.status).toBe(422)
    expect(otherId.body.error.details).toEqual([{ path: 'spec.id', message: expect.stringContaining(inbound) }])

    const { body: versions } = await stack.api(`/api/v1/mappings/${inbound}/versions`)
    expect(versions.versions).toHaveLength(1)
  })

  it('saves a valid spec as a new version without activating it; the same spec again changes nothing', async () => {
    const { id: _id, ...spec } = renameLegacyRep(await activeSpec(stack, inbound))
    const saved = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec, comment: 'rename the legacy rep code' } })
    expect(saved).toEqual({ status: 201, body: { id: inbound, version: 2, active: false, created: true } })
    const again = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec } })
    expect(again).toEqual({ status: 200, body: { id: inbound, version: 2, active: false, created: false } })

    expect((await stack.api(`/api/v1/mappings/${inbound}`)).body.version).toBe(1)
    const { body: v2 } = await stack.api(`/api/v1/mappings/${inbound}/versions/2`)
    expect(v2).toMatchObject({ id: inbound, version: 2, active: false, latestShadowRun: null, origin: 'api', createdBy: expect.stringMatching(/^bootstrap admin \(key .+\)$/), comment: 'rename the legacy rep code' })
    expect(v2.spec.fields.find((f: Field) => f.to === 'owner')).toMatchObject({ map: { 'rep-legacy-9': 'rep-9' }, fallback: 'keep' })
    const { body: list } = await stack.api('/api/v1/mappings')
    expect(list.mappings.find((m: { id: string }) => m.id === inbound)).toMatchObject({ activeVersion: 1, latestVersion: 2 })
  })

  it('previews a version on a document with the difference from the active version', async () => {
    const document = { ...sampleOrder(3), owner: 'rep-legacy-9' }
    const { status, body } = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document, version: 2 } })
    expect(status).toBe(200)
    expect(body).toMatchObject({ id: inbound, version: 2, activeVersion: 1, errors: [], fieldErrors: [], activeErrors: [] })
    expect(body.output).toMatchObject({ externalId: 'SO-1003', owner: 'rep-9' })
    expect(body.activeOutput).toMatchObject({ externalId: 'SO-1003', owner: 'rep-legacy-9' })
    expect(body.diff).toEqual([{ path: 'owner', kind: 'changed', before: 'rep-legacy-9', after: 'rep-9' }])

    // Without a version it previews the active one; errors come as lines and as fields.
    const { order_id: _gone, ...withoutId } = sampleOrder(3)
    const { body: failed } = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document: { ...withoutId, items: [{ product_code: 'SKU-1', qty: 'two', price: '1.00' }] } } })
    expect(failed).toMatchObject({ version: 1, activeVersion: 1, output: null, diff: null })
    expect(failed.errors).toEqual(['externalId: is required (from order_id)', 'lines[0].quantity: "two" is not a decimal (from items[0].qty)'])
    expect(failed.fieldErrors[1]).toEqual({ target: 'lines[0].quantity', source: 'items[0].qty', value: 'two', message: 'is not a decimal' })

    // Output the pipeline would refuse is an error too, as normalize would report it.
    const { body: refused } = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document: { ...sampleOrder(3), currency: 'cny' } } })
    expect(refused.output).toMatchObject({ currency: 'cny' })
    expect(refused.errors).toEqual(['currency: must be an ISO 4217 code such as CNY (checked by the canonical order)'])

    // An unsaved edit previews too, and is checked as a save would be.
    const edited = withField(await activeSpec(stack, inbound), 'customer.name', { transform: ['upper'] })
    const { body: draft } = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document, spec: edited } })
    expect(draft).toMatchObject({ version: null, diff: [{ path: 'customer.name', kind: 'changed', after: sampleOrder(3).account.name!.toUpperCase() }] })
    const badDraft = await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document, spec: { fields: [{ to: 'x' }] } } })
    expect(badDraft.status).toBe(422)
    expect(badDraft.body.error.details[0].path).toBe('spec.fields[0]')
    expect((await stack.api(`/api/v1/mappings/${inbound}/preview`, { method: 'POST', body: { document, version: 7 } })).status).toBe(404)
  })

  it('refuses to activate a version whose golden examples fail, and says where', async () => {
    const spec = withField(await activeSpec(stack, inbound), 'customer.name', null)
    const saved = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec } })
    expect(saved.body.version).toBe(3)
    const refused = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 3 } })
    expect(refused.status).toBe(422)
    expect(refused.body.error).toMatchObject({ code: 'examples_failed', message: expect.stringContaining('fail with version 3') })
    expect(refused.body.error.details).toContainEqual({ path: 'sample: customer.name', message: 'expected "Shenzhen Lanhai Electronics", got nothing' })
    expect(refused.body.error.examples).toContainEqual({ name: 'sample', passed: false, differences: [{ path: 'customer.name', kind: 'removed', before: 'Shenzhen Lanhai Electronics' }] })
    expect((await stack.api(`/api/v1/mappings/${inbound}`)).body.version).toBe(1)
  })

  it('activates a version so that new orders map with it at once; rollback is activating the older one', async () => {
    const activated = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 2 } })
    expect(activated).toEqual({ status: 200, body: { id: inbound, version: 2, previousVersion: 1, changed: true, examples: { run: 1, passed: 1 } } })
    await stack.crm.send('order.created', { ...sampleOrder(11, 'SO-2001'), owner: 'rep-legacy-9' })
    const withV2 = await syncedOrder('SO-2001')
    expect(withV2.document.owner).toBe('rep-9')
    expect(stack.erp.salesOrders().find((o) => o.reference === withV2.id)).toMatchObject({ salesRep: 'rep-9' })

    const rolledBack = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 1 } })
    expect(rolledBack.body).toMatchObject({ version: 1, previousVersion: 2, changed: true })
    await stack.crm.send('order.created', { ...sampleOrder(12, 'SO-2002'), owner: 'rep-legacy-9' })
    expect((await syncedOrder('SO-2002')).document.owner).toBe('rep-legacy-9')

    const same = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 1 } })
    expect(same.body).toMatchObject({ version: 1, previousVersion: 1, changed: false })
    const { body: versions } = await stack.api(`/api/v1/mappings/${inbound}/versions`)
    expect(versions.versions.map((v: { version: number; active: boolean }) => [v.version, v.active])).toEqual([[3, false], [2, false], [1, true]])
  })

  it('creates a mapping with a new id active at version 1: there is nothing else to run', async () => {
    const spec = { description: 'made through the API', fields: [{ to: 'code', from: 'id', type: 'string', required: true }] }
    const created = await stack.api('/api/v1/mappings/api-made.to-canonical.note', { method: 'PUT', body: { spec } })
    expect(created).toEqual({ status: 201, body: { id: 'api-made.to-canonical.note', version: 1, active: true, created: true } })
    const { body } = await stack.api('/api/v1/mappings/api-made.to-canonical.note/preview', { method: 'POST', body: { document: { id: 42 } } })
    expect(body).toMatchObject({ version: 1, activeVersion: 1, output: { code: '42' }, diff: [] })
    const { body: list } = await stack.api('/api/v1/mappings')
    expect(list.mappings).toContainEqual(expect.objectContaining({ id: 'api-made.to-canonical.note', activeVersion: 1, description: 'made through the API', usedBy: [] }))
  })

  it('keeps every change in the audit log: who, when, the old and the new version', async () => {
    const { status, body } = await stack.api(`/api/v1/audit?subject=mapping:${inbound}`)
    expect(status).toBe(200)
    const admin = expect.stringMatching(/^bootstrap admin \(key .+\)$/)
    expect(body.entries.map((e: Record<string, unknown>) => ({ action: e.action, actor: e.actor, before: e.before, after: e.after }))).toEqual([
      { action: 'mapping.activated', actor: admin, before: { version: 2 }, after: { version: 1 } },
      { action: 'mapping.activated', actor: admin, before: { version: 1 }, after: { version: 2 } },
      { action: 'mapping.version_created', actor: admin, before: { version: 2 }, after: { version: 3, activated: false } },
      { action: 'mapping.version_created', actor: admin, before: { version: 1 }, after: { version: 2, activated: false } },
      { action: 'mapping.version_created', actor: `file:${inbound}.yaml`, before: null, after: { version: 1, activated: true } },
    ])
    expect(body.entries[0]).toMatchObject({ subject: `mapping:${inbound}`, at: expect.any(String), id: expect.any(Number) })
    expect(body.next).toBeNull()

    const { body: page } = await stack.api(`/api/v1/audit?subject=mapping:${inbound}&limit=2`)
    expect(page.entries).toHaveLength(2)
    const { body: rest } = await stack.api(`/api/v1/audit?subject=mapping:${inbound}&limit=50&before=${page.next}`)
    expect(rest.entries.map((e: { action: string }) => e.action)).toEqual(['mapping.version_created', 'mapping.version_created', 'mapping.version_created'])
    expect((await stack.api('/api/v1/audit?limit=0')).status).toBe(400)
  })
})

describe('shadow runs over real documents (pglite)', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite')
  })
  afterAll(() => stack?.close())
  const { sendAndSettle, syncedOrder } = helpers(() => stack)
  const eventIds: string[] = []

  it('reports the fields a draft would remove, by field and by document, and is not clean', async () => {
    for (const n of [21, 22, 23]) eventIds.push((await sendAndSettle(sampleOrder(n, `SO-30${n}`))).eventId)
    const spec = withField(await activeSpec(stack, inbound), 'customer.name', null)
    const { body: saved } = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec } })

    const { status, body } = await stack.api(`/api/v1/mappings/${inbound}/shadow`, { method: 'POST', body: { version: saved.version, last: 10 } })
    expect(status).toBe(200)
    expect(body).toMatchObject({
      id: inbound,
      version: saved.version,
      activeVersion: 1,
      source: { kind: 'inbox', connections: ['demo-crm'] },
      documents: 3,
      changedDocuments: 3,
      clean: false,
      summary: { changed: 0, emptied: 0, typeChanged: 0, added: 0, removed: 3, newErrors: 0, fixedErrors: 0 },
      fields: [{ path: 'customer.name', kind: 'removed', documents: 3 }],
      runId: expect.any(Number),
    })
    expect(body.samples.map((s: { ref: string }) => s.ref).sort()).toEqual([...eventIds].sort())
    expect(body.samples[0]).toEqual({ ref: expect.any(String), changes: [{ path: 'customer.name', kind: 'removed', before: expect.any(String) }], newErrors: [] })

    const refused = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: saved.version, requireCleanShadow: true } })
    expect(refused.status).toBe(409)
    expect(refused.body.error).toMatchObject({ code: 'shadow_required', message: expect.stringContaining('is not clean'), shadowRun: { id: body.runId, clean: false } })
  })

  it('reports new errors a draft would cause', async () => {
    const spec = withField(await activeSpec(stack, inbound), 'owner', { type: 'integer' })
    const { body: saved } = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec } })
    const { body } = await stack.api(`/api/v1/mappings/${inbound}/shadow`, { method: 'POST', body: { version: saved.version } })
    expect(body).toMatchObject({ documents: 3, clean: false, summary: { newErrors: 3 } })
    expect(body.samples[0].newErrors).toEqual([expect.stringMatching(/^owner: "rep-\d" is not an integer \(from owner\)$/)])
  })

  it('lets a version with a clean shadow run be activated when one is required, against the version active now', async () => {
    const v1 = await activeSpec(stack, inbound)
    const { body: renamed } = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: renameLegacyRep(v1) } })
    const unshadowed = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: renamed.version, requireCleanShadow: true } })
    expect(unshadowed.status).toBe(409)
    expect(unshadowed.body.error.message).toContain('has no shadow run')

    const twoRenames = withField(v1, 'owner', { map: { 'rep-legacy-8': 'rep-8', 'rep-legacy-9': 'rep-9' }, fallback: 'keep' })
    const { body: other } = await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec: twoRenames } })
    for (const version of [renamed.version, other.version]) {
      const { body: shadow } = await stack.api(`/api/v1/mappings/${inbound}/shadow`, { method: 'POST', body: { version } })
      expect(shadow).toMatchObject({ version, activeVersion: 1, documents: 3, changedDocuments: 0, clean: true, samples: [] })
    }
    const activated = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: renamed.version, requireCleanShadow: true } })
    expect(activated.body).toMatchObject({ version: renamed.version, previousVersion: 1, changed: true })

    // The other clean run compared its version with version 1, which is no longer the active one.
    const { body: otherVersion } = await stack.api(`/api/v1/mappings/${inbound}/versions/${other.version}`)
    expect(otherVersion.latestShadowRun).toMatchObject({ activeVersion: 1, documents: 3, clean: true, summary: { removed: 0, newErrors: 0 } })
    const stale = await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: other.version, requireCleanShadow: true } })
    expect(stale.status).toBe(409)
    expect(stale.body.error.message).toContain(`compared it with version 1, but version ${renamed.version} is active now`)
    expect((await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 1 } })).body.changed).toBe(true)
  })

  it('runs an outbound draft over recent orders', async () => {
    const orderIds = await Promise.all(['SO-3021', 'SO-3022', 'SO-3023'].map(async (id) => (await syncedOrder(id)).id))
    const spec = withField(await activeSpec(stack, outbound), 'customerCode', { type: 'integer' })
    const { body: saved } = await stack.api(`/api/v1/mappings/${outbound}`, { method: 'PUT', body: { spec } })
    const { body } = await stack.api(`/api/v1/mappings/${outbound}/shadow`, { method: 'POST', body: { version: saved.version, last: 3 } })
    expect(body).toMatchObject({ source: { kind: 'orders', connections: ['demo-erp'] }, documents: 3, clean: false })
    expect(body.samples.map((s: { ref: string }) => s.ref).sort()).toEqual(orderIds.sort())
    // Account ids are no integers: new errors, one per order.
    expect(body.summary.newErrors).toBe(3)
    expect(body.samples[0].newErrors).toEqual([expect.stringMatching(/^customerCode: "ACC-\d+" is not an integer \(from customer.externalId\)$/)])
    expect((await stack.api(`/api/v1/mappings/${outbound}/shadow`, { method: 'POST', body: { version: saved.version, last: 1001 } })).status).toBe(422)
  })
})

describe('replaying an event with a chosen mapping version (pglite)', () => {
  let stack: TestStack
  beforeAll(async () => {
    stack = await startTestStack('pglite')
  })
  afterAll(() => stack?.close())
  const { sendAndSettle, syncedOrder } = helpers(() => stack)
  const withoutName = (n: number, id: string): DemoCrmOrder => ({ ...sampleOrder(n, id), account: { id: 'ACC-7' } })
  let strict: number
  let first: { eventId: string }
  let second: { eventId: string }

  it('sends a document the active version cannot map to "needs attention"', async () => {
    // Customer names become required: the golden example has one, the next two orders do not.
    const spec = withField(await activeSpec(stack, inbound), 'customer.name', { required: true })
    strict = (await stack.api(`/api/v1/mappings/${inbound}`, { method: 'PUT', body: { spec } })).body.version
    expect((await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: strict } })).status).toBe(200)

    first = await sendAndSettle(withoutName(31, 'SO-4001'))
    second = await sendAndSettle(withoutName(32, 'SO-4002'))
    for (const event of [first, second]) expect(event).toMatchObject({ status: 'needs_attention', errors: ['customer.name: is required (from account.name)'] })
    expect((await stack.api(`/api/v1/mappings/${inbound}/activate`, { method: 'POST', body: { version: 1 } })).status).toBe(200)
  })

  it('replays with the active version: the order is created and synced', async () => {
    const replayed = await stack.api(`/api/v1/events/${first.eventId}/replay`, { method: 'POST', body: { mappingVersion: 'active' } })
    expect(replayed).toEqual({ status: 202, body: { eventId: first.eventId, status: 'pending', mappingVersion: 'active' } })
    expect(await settled(stack, first.eventId)).toMatchObject({ status: 'processed', errors: null })
    const order = await syncedOrder('SO-4001')
    expect(order.document.customer).toEqual({ externalId: 'ACC-7' })

    const again = await stack.api(`/api/v1/events/${first.eventId}/replay`, { method: 'POST', body: {} })
    expect(again.status).toBe(409)
    expect(again.body.error.code).toBe('not_replayable')
  })

  it('replays with the original version: it needs attention again; then with a chosen version', async () => {
    const replayed = await stack.api(`/api/v1/events/${second.eventId}/replay`, { method: 'POST', body: { mappingVersion: 'original' } })
    expect(replayed.body).toEqual({ eventId: second.eventId, status: 'pending', mappingVersion: strict })
    expect(await settled(stack, second.eventId)).toMatchObject({ status: 'needs_attention', errors: ['customer.name: is required (from account.name)'] })

    const unknown = await stack.api(`/api/v1/events/${second.eventId}/replay`, { method: 'POST', body: { mappingVersion: 99 } })
    expect(unknown.status).toBe(422)
    expect(unknown.body.error.details).toEqual([{ path: 'mappingVersion', message: `mapping "${inbound}" has no version 99` }])
    expect((await stack.api(`/api/v1/events/${second.eventId}/replay`, { method: 'POST', body: { mappingVersion: 'latest' } })).status).toBe(422)

    const chosen = await stack.api(`/api/v1/events/${second.eventId}/replay`, { method: 'POST', body: { mappingVersion: 1 } })
    expect(chosen.body.mappingVersion).toBe(1)
    expect(await settled(stack, second.eventId)).toMatchObject({ status: 'processed' })
    await syncedOrder('SO-4002')
    expect((await stack.api('/api/v1/events/999999/replay', { method: 'POST', body: {} })).status).toBe(404)
  })

  it('audits each replay with the version before and after', async () => {
    const { body } = await stack.api(`/api/v1/audit?subject=event:${second.eventId}`)
    expect(body.entries.map((e: { action: string; before: { mappingVersion: number }; after: { mappingVersion: number | null } }) => [e.action, e.before.mappingVersion, e.after.mappingVersion])).toEqual([
      ['event.replayed', strict, 1],
      ['event.replayed', strict, strict],
    ])
  })
})

describe('who may use the mapping API (pglite)', () => {
  let stack: TestStack
  const keys: Record<string, string> = {}
  beforeAll(async () => {
    stack = await startTestStack('pglite')
    for (const [role, scope] of [['viewer'], ['ops'], ['integration', 'demo-crm']] as const) {
      const { body } = await stack.api('/api/v1/keys', { method: 'POST', body: { name: `${role} key`, role, ...(scope ? { connection: scope } : {}) } })
      keys[role] = body.key
    }
  })
  afterAll(() => stack?.close())

  it('lets ops read and preview, and only admins change', async () => {
    const spec = await activeSpec(stack, inbound)
    const calls: [string, string, unknown][] = [
      ['GET', '/api/v1/mappings', undefined],
      ['GET', `/api/v1/mappings/${inbound}`, undefined],
      ['GET', `/api/v1/mappings/${inbound}/versions`, undefined],
      ['POST', `/api/v1/mappings/${inbound}/preview`, { document: sampleOrder(1) }],
      ['PUT', `/api/v1/mappings/${inbound}`, { spec }],
      ['POST', `/api/v1/mappings/${inbound}/activate`, { version: 1 }],
      ['POST', `/api/v1/mappings/${inbound}/shadow`, { version: 1 }],
      ['POST', '/api/v1/events/1/replay', {}],
      ['GET', '/api/v1/audit', undefined],
    ]
    const statuses = async (key: string) => Promise.all(calls.map(async ([method, path, body]) => (await stack.api(path, { method, body, key })).status))
    expect(await statuses(keys.viewer!)).toEqual([403, 403, 403, 403, 403, 403, 403, 403, 403])
    expect(await statuses(keys.integration!)).toEqual([403, 403, 403, 403, 403, 403, 403, 403, 403])
    // ops: reads and preview; replay reaches the route (no such event needs attention: 404).
    expect(await statuses(keys.ops!)).toEqual([200, 200, 200, 200, 403, 403, 403, 404, 200])
    expect((await stack.api('/api/v1/mappings', { key: 'obk_not_a_key' })).status).toBe(401)
  })
})
