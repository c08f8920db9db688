/**
 * The demo's credentials: taken from the environment when set, otherwise generated once and kept
 * in the data folder (mode 0600), so restarts and the CLI use the same ones.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { generateKey } from '../auth/api-keys.ts'
import type { Env } from '../config.ts'

const credentialsSchema = z.object({
  adminKey: z.string(),
  demoWebhookSecret: z.string(),
  demoErpToken: z.string(),
  demoWmsToken: z.string(),
})
export type DemoCredentials = z.infer<typeof credentialsSchema>

export const credentialsFile = (dataDir: string) => path.resolve(dataDir, 'credentials.json')

export function readStoredCredentials(dataDir: string): DemoCredentials | undefined {
  const file = credentialsFile(dataDir)
  return existsSync(file) ? credentialsSchema.parse(JSON.parse(readFileSync(file, 'utf8'))) : undefined
}

export function loadOrCreateCredentials(env: Env): DemoCredentials {
  const stored = readStoredCredentials(env.ORDERBRIDGE_DATA_DIR)
  const credentials: DemoCredentials = stored ?? {
    adminKey: generateKey(),
    demoWebhookSecret: `whsec_${randomBytes(24).toString('base64')}`,
    demoErpToken: randomBytes(18).toString('base64url'),
    demoWmsToken: randomBytes(18).toString('base64url'),
  }
  if (!stored) {
    mkdirSync(env.ORDERBRIDGE_DATA_DIR, { recursive: true })
    writeFileSync(credentialsFile(env.ORDERBRIDGE_DATA_DIR), JSON.stringify(credentials, null, 2), { mode: 0o600 })
  }
  return {
    ...credentials,
    adminKey: env.ORDERBRIDGE_ADMIN_KEY ?? credentials.adminKey,
    demoWebhookSecret: env.ORDERBRIDGE_DEMO_WEBHOOK_SECRET ?? credentials.demoWebhookSecret,
    demoErpToken: env.ORDERBRIDGE_DEMO_ERP_TOKEN ?? credentials.demoErpToken,
    demoWmsToken: env.ORDERBRIDGE_DEMO_WMS_TOKEN ?? credentials.demoWmsToken,
  }
}
