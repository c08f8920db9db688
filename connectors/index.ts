/**
 * Every connector orderbridge ships, registered explicitly (nothing is autoloaded).
 */
import type { ConnectorDefinition } from '../src/connector-kit/index.ts'
import { demoCrm } from './demo-crm/index.ts'
import { demoWms } from './demo-wms/index.ts'
import { genericRest } from './generic-rest/index.ts'

export const connectors: readonly ConnectorDefinition[] = [demoCrm, demoWms, genericRest]
