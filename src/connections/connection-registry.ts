/**
 * Connections in force: each configured connection bound to its connector, with its settings and
 * secrets validated against the connector's schemas. Secrets stay in memory, never in logs.
 */
import type { ConnectorDefinition } from '../connector-kit/index.ts'
import { circuitBreakerDefaults, ConfigError, retryDefaults, type CircuitBreakerSettings, type FileConfig, type RateLimit, type RetryPolicy } from '../config.ts'
import { issuesOf, type FieldIssue } from '../shared/field-issues.ts'
import type { MappingCatalog } from '../mapping/mapping-catalog.ts'

export interface Connection {
  id: string
  connector: ConnectorDefinition
  settings: unknown
  secrets: unknown
  mappings: Record<string, string>
  concurrency: number
  /** Sync steps per interval across all worker processes; none when unset. */
  rateLimit?: RateLimit
  circuitBreaker: CircuitBreakerSettings
  retry: RetryPolicy
  stockPolicy: 'hold' | 'partial' | 'reject'
  /** `crm`: its orders wait for the CRM's approval events instead of orderbridge's rules. */
  approvedBy: 'orderbridge' | 'crm'
}

export interface ConnectionRegistry {
  get(id: string): Connection | undefined
  all(): Connection[]
  /** The connection that plays `role` in the order pipeline. */
  pipeline: { erp: Connection; inventory?: Connection }
}

export function createConnectionRegistry(
  config: FileConfig,
  connectors: readonly ConnectorDefinition[],
  mappings: MappingCatalog,
  source = 'configuration',
): ConnectionRegistry {
  const byConnectorId = new Map(connectors.map((c) => [c.manifest.id, c]))
  const issues: FieldIssue[] = []
  const connections = config.connections.flatMap((c, i): Connection[] => {
    const at = ['connections', i]
    const connector = byConnectorId.get(c.connector)
    if (!connector) {
      issues.push({ path: `connections[${i}].connector`, message: `unknown connector "${c.connector}" (known: ${[...byConnectorId.keys()].join(', ')})` })
      return []
    }
    const settings = connector.manifest.settingsSchema.safeParse(c.settings)
    if (!settings.success) issues.push(...issuesOf(settings.error, [...at, 'settings']))
    // Secret values are never echoed in errors: zod's messages name the field, not the value.
    const secrets = connector.manifest.secretsSchema.safeParse(c.secrets)
    if (!secrets.success) issues.push(...issuesOf(secrets.error, [...at, 'secrets']))
    for (const [purpose, mappingId] of Object.entries(c.mappings)) {
      if (!mappings.has(mappingId)) issues.push({ path: `connections[${i}].mappings.${purpose}`, message: `no mapping with id "${mappingId}"` })
    }
    if (!settings.success || !secrets.success) return []
    return [
      {
        id: c.id,
        connector,
        settings: settings.data,
        secrets: secrets.data,
        mappings: c.mappings,
        concurrency: c.concurrency ?? connector.manifest.limits?.concurrency ?? 8,
        ...(c.rateLimit ? { rateLimit: c.rateLimit } : {}),
        circuitBreaker: breakerSettings(c.circuitBreaker),
        retry: { ...retryDefaults, ...c.retry, maxBackoffMs: c.retry?.maxBackoffMs ?? retryDefaults.maxBackoffMs },
        stockPolicy: c.stockPolicy ?? 'hold',
        approvedBy: c.approvedBy ?? 'orderbridge',
      },
    ]
  })
  const byId = new Map(connections.map((c) => [c.id, c]))
  const erp = byId.get(config.pipeline.erp)
  if (erp && !erp.connector.salesOrders) issues.push({ path: 'pipeline.erp', message: `connector "${erp.connector.manifest.id}" cannot create sales orders` })
  if (erp && !erp.mappings.salesOrder) issues.push({ path: 'pipeline.erp', message: `connection "${erp.id}" needs mappings.salesOrder` })
  for (const c of connections) {
    // Orders come in through a CRM's mapping; fulfilment events from a WMS or ERP need none.
    if ((c.connector.webhooks || c.connector.customWebhooks || c.connector.poll) && c.connector.manifest.roles.includes('crm') && !c.mappings.inbound) issues.push({ path: `connections[${config.connections.findIndex((x) => x.id === c.id)}].mappings.inbound`, message: 'a source connection needs an inbound mapping' })
  }
  const inventory = config.pipeline.inventory ? byId.get(config.pipeline.inventory) : undefined
  if (inventory && !inventory.connector.manifest.roles.includes('inventory')) {
    issues.push({ path: 'pipeline.inventory', message: `connector "${inventory.connector.manifest.id}" is not an inventory system` })
  }
  if (issues.length || !erp) throw new ConfigError(source, issues)
  return { get: (id) => byId.get(id), all: () => connections, pipeline: { erp, ...(inventory ? { inventory } : {}) } }
}

function breakerSettings(given: FileConfig['connections'][number]['circuitBreaker']): CircuitBreakerSettings {
  const d = circuitBreakerDefaults
  const cooldownMs = given?.cooldownMs ?? d.cooldownMs
  return {
    failureThreshold: given?.failureThreshold ?? d.failureThreshold,
    errorRate: given?.errorRate ?? d.errorRate,
    window: given?.window ?? d.window,
    cooldownMs,
    // Doubling never shortens the configured cooldown.
    maxCooldownMs: Math.max(given?.maxCooldownMs ?? d.maxCooldownMs, cooldownMs),
  }
}
