import type { FileConfig } from '../../src/config.ts'

/** The demo configuration with two tries 50 ms apart on demo-erp, so a dead letter comes quickly. */
export const quickRetries = (config: FileConfig): FileConfig => ({
  ...config,
  connections: config.connections.map((c) => (c.id === 'demo-erp' ? { ...c, retry: { attempts: 2, backoffMs: 50 } } : c)),
})
