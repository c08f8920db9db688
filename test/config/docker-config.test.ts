/**
 * The connections file shipped for Docker (docker/orderbridge.yaml) must keep loading as the code
 * changes, and must agree with docker/compose.yaml; a broken connections file must say where.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectors } from '../../connectors/index.ts'
import { ConfigError, loadConfigFile } from '../../src/config.ts'
import { createConnectionRegistry } from '../../src/connections/connection-registry.ts'
import { createFileCatalog, loadMappingSpecs } from '../../src/mapping/mapping-catalog.ts'
import { nodeFlags } from '../../src/shared/node-flags.ts'

const dockerDir = fileURLToPath(new URL('../../docker/', import.meta.url))
const dockerConfig = path.join(dockerDir, 'orderbridge.yaml')

const dockerEnv = {
  ORDERBRIDGE_DEMO_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  ORDERBRIDGE_DEMO_ERP_TOKEN: 'erp-token-from-env',
  ORDERBRIDGE_DEMO_WMS_TOKEN: 'wms-token-from-env',
}

const mappings = createFileCatalog(loadMappingSpecs())

function configErrorOf(run: () => unknown): ConfigError {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error('expected a ConfigError, but nothing was thrown')
}

describe('docker/orderbridge.yaml', () => {
  it('loads and binds every connection to its connector', () => {
    const config = loadConfigFile(dockerConfig, dockerEnv)
    const registry = createConnectionRegistry(config, connectors, mappings, dockerConfig)

    expect(registry.all().map((c) => [c.id, c.connector.manifest.id])).toEqual([
      ['demo-crm', 'demo-crm'],
      ['demo-wms', 'demo-wms'],
      ['demo-erp', 'generic-rest'],
    ])
    expect(registry.pipeline.erp.id).toBe('demo-erp')
    expect(registry.pipeline.inventory?.id).toBe('demo-wms')
    expect(registry.get('demo-erp')).toMatchObject({
      settings: { baseUrl: 'http://simulators:4103' },
      secrets: { apiToken: 'erp-token-from-env' },
      mappings: { salesOrder: 'canonical.to-demo-erp.sales-order' },
    })
    expect(registry.get('demo-wms')).toMatchObject({ settings: { baseUrl: 'http://simulators:4102' }, secrets: { apiToken: 'wms-token-from-env' } })
    expect(registry.get('demo-crm')).toMatchObject({
      secrets: { webhookSecret: dockerEnv.ORDERBRIDGE_DEMO_WEBHOOK_SECRET },
      mappings: { inbound: 'demo-crm.to-canonical.order' },
    })
  })

  it('gets every variable it names from the compose services that load it', () => {
    // From the values, not the text: comments may mention ${VAR} too.
    const strings = (value: unknown): string[] =>
      typeof value === 'string' ? [value] : value && typeof value === 'object' ? Object.values(value).flatMap(strings) : []
    const wanted = strings(parseYaml(readFileSync(dockerConfig, 'utf8'))).flatMap((s) => [...s.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!))
    expect(new Set(wanted)).toEqual(new Set(Object.keys(dockerEnv)))

    const compose = parseYaml(readFileSync(path.join(dockerDir, 'compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string>; volumes?: string[] }>
    }
    for (const name of ['api', 'worker']) {
      const service = compose.services[name]!
      expect(service.environment?.ORDERBRIDGE_CONFIG, name).toBe('/config/orderbridge.yaml')
      expect(service.volumes, name).toContain('./orderbridge.yaml:/config/orderbridge.yaml:ro')
      for (const variable of wanted) expect(service.environment?.[variable], `${name} ${variable}`).toContain(`\${${variable}`)
    }
    // The simulators check the same tokens the connections send.
    const simulators = compose.services.simulators!.environment!
    expect(simulators.ORDERBRIDGE_DEMO_ERP_TOKEN).toContain('${ORDERBRIDGE_DEMO_ERP_TOKEN')
    expect(simulators.ORDERBRIDGE_DEMO_WMS_TOKEN).toContain('${ORDERBRIDGE_DEMO_WMS_TOKEN')
  })
})

describe('a connections file with mistakes', () => {
  let dir: string
  const write = (name: string, text: string) => {
    const file = path.join(dir, name)
    writeFileSync(file, text)
    return file
  }

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'orderbridge-config-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('names each connection field the connector rejects, and the pipeline role it breaks', () => {
    const file = write(
      'bad-connections.yaml',
      `connections:
  - id: demo-crm
    connector: demo-crm
    secrets: { webhookSecret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw }
    mappings: { inbound: demo-crm.to-canonical.order }
  - id: demo-wms
    connector: demo-wms
    settings: { baseUrl: not-a-url }
    secrets: { apiToken: t }
  - id: demo-erp
    connector: generic-rest
    settings: { baseUrl: http://erp.example }
    secrets: { apiToken: t }
pipeline: { erp: demo-erp, inventory: demo-wms }
`,
    )
    const config = loadConfigFile(file, {})
    const error = configErrorOf(() => createConnectionRegistry(config, connectors, mappings, file))
    const paths = error.issues.map((i) => i.path)
    expect(paths).toContain('connections[1].settings.baseUrl')
    expect(paths).toContain('pipeline.erp')
    expect(error.issues.find((i) => i.path === 'pipeline.erp')?.message).toMatch(/mappings\.salesOrder/)
    // The message a user sees names the file and each path.
    expect(error.message).toContain(file)
    expect(error.message).toContain('connections[1].settings.baseUrl')
  })

  it('names a pipeline role that points at no connection', () => {
    const file = write(
      'bad-pipeline.json',
      JSON.stringify({
        connections: [{ id: 'demo-crm', connector: 'demo-crm', secrets: { webhookSecret: 'whsec_abc' }, mappings: { inbound: 'demo-crm.to-canonical.order' } }],
        pipeline: { erp: 'missing-erp' },
      }),
    )
    const error = configErrorOf(() => loadConfigFile(file, {}))
    expect(error.issues).toEqual([{ path: 'pipeline.erp', message: expect.stringContaining('"missing-erp"') }])
  })

  it('reports a ${VAR} that is not set with the path that uses it', () => {
    const { ORDERBRIDGE_DEMO_WMS_TOKEN: _, ...withoutWmsToken } = dockerEnv
    const error = configErrorOf(() => loadConfigFile(dockerConfig, withoutWmsToken))
    expect(error.issues).toEqual([{ path: 'connections[1].secrets.apiToken', message: expect.stringContaining('ORDERBRIDGE_DEMO_WMS_TOKEN') }])
  })
})

describe('the V8 flags processes run with', () => {
  it('are the same in npm start and the Docker image as the ones spawned processes get', () => {
    const packageJson = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { scripts: Record<string, string> }
    expect(packageJson.scripts.start).toBe(`node ${nodeFlags.join(' ')} bin/orderbridge.mjs all`)
    const entryPoint = /^ENTRYPOINT (.+)$/m.exec(readFileSync(path.join(dockerDir, 'Dockerfile'), 'utf8'))?.[1]
    expect(JSON.parse(entryPoint ?? 'null')).toEqual(['node', ...nodeFlags, 'bin/orderbridge.mjs'])
  })
})
