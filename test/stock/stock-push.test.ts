/**
 * Stock levels pushed on to the CRM, through the demo simulators on PostgreSQL: the WMS reports
 * receipts (`stock.changed`), the demo CRM records the levels it is sent. Changes within the
 * debounce window go out as one push; a change during a push, or after a push failed for good, is
 * still pushed, well before the sweep (its schedule here is a minute) would find it. Two CRMs that
 * take stock each hear of every level.
 */
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCrmSimulator, type CrmSimulator } from '../../connectors/demo-crm/simulator.ts'
import { stockPushDebounceMs, stockPushJobId, stockPushQueueName } from '../../src/stock/stock-push.ts'
import { startTestStack, testCredentials, type TestStack } from '../support/test-orderbridge.ts'
import { redisUrl } from '../support/test-redis.ts'

const pushJobId = stockPushJobId({ crmConnectionId: 'demo-crm', inventoryConnectionId: 'demo-wms' })

describe('stock levels pushed to the CRM', () => {
  let stack: TestStack
  let redis: Redis
  let pushes: Queue
  beforeAll(async () => {
    stack = await startTestStack('postgres', { wms: { stock: { 'SKU-100': 1000 } } })
    redis = new Redis(redisUrl, { maxRetriesPerRequest: null })
    pushes = new Queue(stockPushQueueName, { connection: redis, prefix: `{${stack.env.ORDERBRIDGE_QUEUE_PREFIX}}` })
  })
  afterAll(async () => {
    await pushes?.close()
    redis?.disconnect()
    await stack?.close()
  })

  const crmLevel = (sku: string) => stack.crmSimulator.stock().find((l) => l.product_code === sku)
  const crmShows = (sku: string, available: string, timeoutMs = 8_000) =>
    stack.waitFor(async () => (crmLevel(sku)?.available === available ? crmLevel(sku) : undefined), () => `the CRM to show ${sku} at ${available} (it shows ${crmLevel(sku)?.available})`, timeoutMs)

  it('sends changes within the debounce window in one push', async () => {
    stack.wms.receive('PUSH-A', 3)
    stack.wms.receive('PUSH-B', 4)
    stack.wms.receive('PUSH-A', 2)
    await stack.wms.flushWebhooks()
    // Nothing goes out before the window ends…
    await new Promise((r) => setTimeout(r, stockPushDebounceMs / 2))
    expect(crmLevel('PUSH-A')).toBeUndefined()
    expect(crmLevel('PUSH-B')).toBeUndefined()
    // …then every level at once, as it is by then: one request stamps them alike.
    const a = await crmShows('PUSH-A', '5')
    const b = await crmShows('PUSH-B', '4')
    expect(b.updated_at).toBe(a.updated_at)
    // And nothing is sent again once they are out.
    await new Promise((r) => setTimeout(r, stockPushDebounceMs + 1_000))
    expect([crmLevel('PUSH-A')?.updated_at, crmLevel('PUSH-B')?.updated_at]).toEqual([a.updated_at, a.updated_at])
  })

  it('pushes a change that came while a push was running, right after it', async () => {
    stack.crmSimulator.faults.delayMs(1_500) // the CRM takes the levels at once but answers late
    try {
      stack.wms.receive('PUSH-C', 1)
      await crmShows('PUSH-C', '1')
      // The push is still waiting for its answer when the next receipt comes.
      stack.wms.receive('PUSH-C', 1)
      await crmShows('PUSH-C', '2')
    } finally {
      stack.crmSimulator.faults.reset()
    }
  })

  it('still pushes a later change after a push failed for good', async () => {
    stack.crmSimulator.faults.failNext(1, 422) // refused: trying the same push again would not help
    stack.wms.receive('PUSH-D', 1)
    await stack.waitFor(async () => (await (await pushes.getJob(pushJobId))?.getState()) === 'failed', 'the push to fail for good')
    expect(crmLevel('PUSH-D')).toBeUndefined()

    stack.wms.receive('PUSH-D', 2)
    await crmShows('PUSH-D', '3')
  })
})

describe('stock levels pushed to two CRMs', () => {
  let stack: TestStack
  let second: CrmSimulator
  beforeAll(async () => {
    second = await startCrmSimulator({ webhookUrl: 'http://127.0.0.1:9/unused', secret: testCredentials.demoWebhookSecret, retries: 0 })
    stack = await startTestStack('postgres', {
      configure: (config) => ({
        ...config,
        connections: [
          ...config.connections,
          { id: 'crm-two', connector: 'demo-crm', settings: { baseUrl: second.url }, secrets: { webhookSecret: testCredentials.demoWebhookSecret }, mappings: { inbound: 'demo-crm.to-canonical.order' } },
        ],
      }),
    })
  })
  afterAll(async () => {
    await stack?.close()
    await second?.close()
  })

  it('tells each of them every level, even one that heard later than the other', async () => {
    // The first CRM is down for its first push; the second takes the levels meanwhile.
    stack.crmSimulator.faults.failNext(1, 503)
    stack.wms.receive('TWO-A', 7)
    const shows = (crm: CrmSimulator, name: string) =>
      stack.waitFor(async () => crm.stock().find((l) => l.product_code === 'TWO-A' && l.available === '7'), `${name} to show TWO-A at 7`, 15_000)
    await shows(second, 'crm-two')
    // Its retry still finds the level unpushed: what one CRM was told says nothing of the other.
    await shows(stack.crmSimulator, 'demo-crm')
  })
})
