/**
 * Stands in for a webhook endpoint in tests: an HTTP server on loopback that records every delivery
 * (headers and raw body) and answers the scripted statuses first, then `answer` (204 by default).
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders
  body: Buffer
}

export interface WebhookReceiver {
  url: string
  received: ReceivedWebhook[]
  close(): Promise<void>
}

export async function startWebhookReceiver(options: { path?: string; statuses?: number[]; answer?: { status: number; json?: unknown } } = {}): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = []
  const scripted = [...(options.statuses ?? [])]
  const answer = options.answer ?? { status: 204 }
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks) })
      const status = scripted.shift()
      if (status !== undefined || answer.json === undefined) response.writeHead(status ?? answer.status).end()
      else response.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.json))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${options.path ?? '/webhooks'}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
