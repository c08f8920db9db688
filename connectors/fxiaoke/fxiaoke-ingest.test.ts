/**
 * End to end at the edge: the simulator pushes signed (and encrypted) orders over HTTP to the real
 * ingest route (`POST /webhooks/:connection`, customWebhooks), which stores them in the inbox on
 * PGlite and answers `success`; a push and a poll of the same version are stored once.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConnectionRegistry } from '../../src/connections/connection-registry.ts'
import type { Logger } from '../../src/connector-kit/index.ts'
import { createInboxWriter, type InboxWriter } from '../../src/ingest/inbox-writer.ts'
import { ingestRoutes } from '../../src/ingest/ingest.routes.ts'
import { pollOnce } from '../../src/polling/poller.ts'
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts'
import { signCallback } from './callback.ts'
import { forgetTokens } from './client.ts'
import { fxiaoke, secretsSchema, settingsSchema } from './index.ts'
import { startFxiaokeSimulator, type FxiaokeSimulator } from './simulator.ts'

const log: Logger = { info: () => {}, warn: () => {}, error: () => {} }
const credentials = { appId: 'FSAID_ingest', appSecret: 'ingest-secret', permanentCode: 'INGESTPERMANENTCODE' }
const callbackToken = 'ingest-callback-token'
const encodingAesKey = 'Zyxwvutsrqponmlkjihgfedcba9876543210ABCDEFG'

describe('Fxiaoke pushes through the ingest route', () => {
  let test: TestDatabase
  let app: FastifyInstance
  let inbox: InboxWriter
  let sim: FxiaokeSimulator
  let url: string
  const since = Date.now() - 60_000
  const connection = {
    id: 'fxiaoke',
    connector: fxiaoke,
    settings: settingsSchema.parse({ currentOpenUserId: 'FSUID_INGEST', poll: { intervalMs: 60_000, settleMs: 0, since: new Date(since).toISOString() } }),
    secrets: secretsSchema.parse({ ...credentials, callbackToken, encodingAesKey }),
    mappings: { inbound: 'fxiaoke.to-canonical.order' },
  }

  beforeAll(async () => {
    test = await openTestDatabase('pglite')
    inbox = createInboxWriter(test.db, async () => {})
    const connections = { get: (id: string) => (id === connection.id ? connection : undefined), all: () => [connection] } as unknown as ConnectionRegistry
    app = Fastify({ logger: false, forceCloseConnections: true })
    await app.register(ingestRoutes, { db: test.db, connections, inbox, bodyLimit: 1_048_576 })
    url = await app.listen({ port: 0, host: '127.0.0.1' })
    sim = await startFxiaokeSimulator({ ...credentials, push: { url: `${url}/webhooks/fxiaoke`, token: callbackToken, encodingAesKey, appId: credentials.appId } })
    connection.settings = settingsSchema.parse({ ...connection.settings, baseUrl: sim.url })
  })
  afterAll(async () => {
    await sim?.close()
    await app?.close()
    await inbox?.drain()
    await test?.drop()
    forgetTokens()
  })

  const rows = () => test.db.query<{ event_id: string; event_type: string; external_id: string }>(`select event_id, event_type, external_id from inbox_events where connection_id = 'fxiaoke' order by id`)

  it('stores a pushed order and answers success; a redelivery is stored once', async () => {
    const id = String(sim.putOrder({ account_id: 'acc-1', order_amount: '226.00' }, [{ product_id: 'p-1', quantity: 2, sales_price: '113.00' }], { modifiedAt: since + 1_000 })._id)
    expect(await sim.pushOrder(id)).toMatchObject({ status: 200, body: 'success', attempts: 1 })
    expect(await sim.pushOrder(id)).toMatchObject({ status: 200, body: 'success' })
    expect(await rows()).toEqual([{ event_id: `${id}:${since + 1_000}`, event_type: 'order.created', external_id: id }])
  })

  it('stores a version once when it is both pushed and polled', async () => {
    const id = String(sim.putOrder({ account_id: 'acc-2' }, [{ product_id: 'p-2', quantity: 1, sales_price: '9.90' }], { modifiedAt: since + 2_000 })._id)
    await sim.pushOrder(id)
    const polled = await pollOnce({ db: test.db, inbox, log }, connection)
    // Both orders are read; neither adds a row.
    expect(polled).toMatchObject({ read: 2, written: 0 })
    expect((await rows()).map((r) => r.external_id).filter((x) => x === id)).toHaveLength(1)
  })

  it('refuses a bad signature with 401 and a JSON error, and records nothing', async () => {
    const before = (await rows()).length
    const body = signCallback({ token: 'not-the-token', content: '{}', encodingAesKey })
    const answer = await sim.pusher().send(body)
    expect(answer.status).toBe(401)
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'invalid_signature' } })
    expect((await rows()).length).toBe(before)
  })

  it('refuses an order without its id with 422, naming the field', async () => {
    const answer = await sim.pusher().push({ object_data: { last_modified_time: Date.now() }, details: {} })
    expect(answer.status).toBe(422)
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'invalid_order', details: [{ path: 'content.object_data._id' }] } })
  })

  it('answers 415 to a body that is not JSON by its content type', async () => {
    const response = await fetch(`${url}/webhooks/fxiaoke`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' })
    expect(response.status).toBe(415)
  })
})
