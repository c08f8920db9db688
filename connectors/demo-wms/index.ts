/**
 * Demo WMS connector: the demo inventory system. For now it only checks the connection and
 * classifies errors; stock reservation in the pipeline comes with a later issue.
 */
import { z } from 'zod'
import { classifyHttpError, createHttpClient, defineConnector, type ConnectorContext } from '../../src/connector-kit/index.ts'

export const demoWmsConnectorId = 'demo-wms'

export const settingsSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/ }).describe('Base URL of the demo WMS API, e.g. http://127.0.0.1:4104.'),
})

export const secretsSchema = z.object({
  apiToken: z.string().min(1).describe('API token, sent as `Authorization: Bearer <token>`.'),
})

export type DemoWmsSettings = z.infer<typeof settingsSchema>
export type DemoWmsSecrets = z.infer<typeof secretsSchema>

const requestTimeoutMs = 10_000

async function check(ctx: ConnectorContext<DemoWmsSettings, DemoWmsSecrets>): Promise<void> {
  const http = createHttpClient({
    baseURL: ctx.settings.baseUrl,
    timeoutMs: requestTimeoutMs,
    headers: { Authorization: `Bearer ${ctx.secrets.apiToken}`, Accept: 'application/json' },
  })
  await http.get('/health')
}

export const demoWms = defineConnector({
  manifest: {
    id: demoWmsConnectorId,
    version: '0.1.0',
    displayName: 'Demo WMS',
    roles: ['inventory'],
    settingsSchema,
    secretsSchema,
  },
  check,
  classify: (err) => classifyHttpError(err, demoWmsConnectorId),
})
