/**
 * Shared by the REST WMS connector's tests: the sample configuration (sample-connection.yaml, the
 * same as in README.md) pointed at a simulator, operation contexts, and a webhook receiver on
 * loopback. Test code only; nothing in the connector imports it.
 */
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import type { Logger, OperationContext } from '../../src/connector-kit/index.ts'
import { secretsSchema, settingsSchema, type RestWmsSecrets, type RestWmsSettings } from './settings.ts'

export const testApiKey = 'acme-test-key'
export const testWebhookSecret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
export const noopLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} }

// Settings as written in YAML, before parsing: tests change them the way an admin would.
export type RawSettings = Record<string, any>

export const sampleConnection = parse(readFileSync(new URL('./sample-connection.yaml', import.meta.url), 'utf8')) as {
  id: string
  connector: string
  settings: RawSettings
  secrets: Record<string, string>
}

/** The sample settings pointed at `serverUrl` (a simulator), after `change` edits the raw YAML values. */
export function sampleSettings(serverUrl: string, change?: (raw: RawSettings) => void): RestWmsSettings {
  const raw = structuredClone(sampleConnection.settings)
  raw.baseUrl = `${serverUrl}/api/v2`
  change?.(raw)
  return settingsSchema.parse(raw)
}

export function sampleSecrets(overrides: Partial<RestWmsSecrets> = {}): RestWmsSecrets {
  return secretsSchema.parse({ apiKey: testApiKey, webhookSecret: testWebhookSecret, ...overrides })
}

let sequence = 0

export function operationContext(
  settings: RestWmsSettings,
  overrides: Partial<OperationContext<RestWmsSettings, RestWmsSecrets>> = {},
): OperationContext<RestWmsSettings, RestWmsSecrets> {
  sequence += 1
  return {
    connectionId: 'acme-wms',
    settings,
    secrets: sampleSecrets(),
    log: noopLogger,
    idempotencyKey: `order-${sequence}.acme-wms.inventory.reserve.v1`,
    reference: `ORD-rest-${sequence}`,
    mayHaveWritten: false,
    ...overrides,
  }
}

export async function waitFor(probe: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!probe()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
