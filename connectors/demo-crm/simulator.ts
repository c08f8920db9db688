/**
 * The demo CRM as a running system: a small HTTP server on loopback where a person (or a script)
 * creates sales orders, which the CRM then pushes to orderbridge as signed Standard Webhooks.
 * State lives in memory and dies with the server. It does not log.
 */
import Fastify from 'fastify'
import { z } from 'zod'
import { createDemoCrmSender, sampleOrder, type DeliveryResult } from './sender.ts'
import type { DemoCrmOrder } from './index.ts'

export interface CrmSimulator {
  url: string
  orders(): { order: DemoCrmOrder; delivery: DeliveryResult }[]
  close(): Promise<void>
}

const createBody = z.object({ count: z.number().int().min(1).max(1000).default(1) })

export async function startCrmSimulator(options: { webhookUrl: string; secret: string; port?: number; host?: string }): Promise<CrmSimulator> {
  const sender = createDemoCrmSender({ webhookUrl: options.webhookUrl, secret: options.secret })
  const orders: { order: DemoCrmOrder; delivery: DeliveryResult }[] = []
  const app = Fastify({ logger: false })

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/orders', async () => orders)
  // Creates sample orders in the CRM; each is delivered to orderbridge before this answers.
  app.post('/orders', async (req, reply) => {
    const body = createBody.safeParse(req.body ?? {})
    if (!body.success) return reply.code(422).send({ error: { code: 'validation', message: body.error.issues[0]?.message } })
    const created = []
    for (let i = 0; i < body.data.count; i++) {
      const order = sampleOrder(orders.length + 1, `SO-${1001 + orders.length}`)
      const delivery = await sender.send('order.created', order)
      orders.push({ order, delivery })
      created.push({ orderId: order.order_id, delivery })
    }
    return reply.code(201).send(created)
  })

  const address = await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' })
  return { url: address, orders: () => orders, close: () => app.close() }
}
