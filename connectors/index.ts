/**
 * Every connector orderbridge ships, registered explicitly (nothing is autoloaded).
 */
import type { ConnectorDefinition } from '../src/connector-kit/index.ts'
import { demoCrm } from './demo-crm/index.ts'
import { demoWms } from './demo-wms/index.ts'
import { fxiaoke } from './fxiaoke/index.ts'
import { genericRest } from './generic-rest/index.ts'
import { kingdee } from './kingdee/index.ts'
import { restWms } from './rest-wms/index.ts'
import { salesforce } from './salesforce/index.ts'
import { sapIdoc } from './sap-idoc/index.ts'
import { tryton } from './tryton/index.ts'

export const connectors: readonly ConnectorDefinition[] = [demoCrm, demoWms, fxiaoke, genericRest, kingdee, restWms, salesforce, sapIdoc, tryton]
