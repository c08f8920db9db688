/**
 * The demo's systems, by choice: `orderbridge demo --crm <crm> --erp <erp> [--wms <wms>]`. One table
 * entry per connector starts that system's simulator on loopback (Tryton: the live server from
 * ../shared/tryton/setup.sh) and gives the connection that points at it with the shipped mappings;
 * a CRM entry also creates sample orders in its CRM and delivers them in the CRM's own inbound format.
 * Any CRM goes with any ERP and WMS: combinations are never written out. Starting orderbridge,
 * the order desk and the banner belong to the command (src/cli/demo-start.ts), not to this table.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { startCrmSimulator, type CrmSimulator } from '../../connectors/demo-crm/simulator.ts'
import { createDemoCrmSender, sampleOrder, type DemoCrmSender } from '../../connectors/demo-crm/sender.ts'
import { createFxiaokePusher, type FxiaokePusher } from '../../connectors/fxiaoke/pusher.ts'
import { startFxiaokeSimulator } from '../../connectors/fxiaoke/simulator.ts'
import { startKingdeeSimulator } from '../../connectors/kingdee/simulator.ts'
import { simulatorApiPrefix, startAcmeWmsSimulator } from '../../connectors/rest-wms/simulator.ts'
import { randomSalesforceId } from '../../connectors/salesforce/sender.ts'
import { startSalesforceSimulator, type SimOutboundMessaging } from '../../connectors/salesforce/simulator.ts'
import { startSapIdocSimulator } from '../../connectors/sap-idoc/simulator.ts'
import { prepareTrytonForDemo, readTrytonEnvFile, startTrytonDemoClerk, trytonDemoConnection, type TrytonEnvFile } from '../../connectors/tryton/demo.ts'
import { asArray, xmlChild, xmlText } from '../connector-kit/index.ts'
import { connectionSchema, type FileConfig } from '../config.ts'
import { addDecimals, multiplyDecimals } from '../shared/decimal.ts'
import { freePort } from '../shared/free-port.ts'
import type { DemoCredentials } from './demo-credentials.ts'
import { demoCrmConnection, demoErpConnection, demoWmsConnection, startDemoErp, startDemoWms } from './demo-environment.ts'

export const crmChoiceIds = ['demo', 'fxiaoke', 'salesforce'] as const
export const erpChoiceIds = ['generic-rest', 'kingdee', 'sap-idoc', 'tryton'] as const
export const wmsChoiceIds = ['demo-wms', 'rest-wms'] as const
export type CrmChoice = (typeof crmChoiceIds)[number]
export type ErpChoice = (typeof erpChoiceIds)[number]
export type WmsChoice = (typeof wmsChoiceIds)[number]

/** What runs: a CRM, an ERP and, unless the ERP is the inventory too (Tryton), a WMS. */
export interface DemoChoices {
  crm: CrmChoice
  erp: ErpChoice
  wms?: WmsChoice
}

export class DemoChoiceError extends Error {}

function pick<T extends string>(flag: string, given: string | undefined, valid: readonly T[], fallback: T): T {
  if (given === undefined) return fallback
  if ((valid as readonly string[]).includes(given)) return given as T
  throw new DemoChoiceError(`--${flag} must be one of ${valid.join(', ')}, not "${given}"`)
}

/** The choices from the command's flags; a missing one is the default demo's (demo CRM, generic REST ERP, demo WMS). */
export function parseDemoChoices(given: { crm?: string; erp?: string; wms?: string }): DemoChoices {
  const crm = pick('crm', given.crm, crmChoiceIds, 'demo')
  const erp = pick('erp', given.erp, erpChoiceIds, 'generic-rest')
  if (erpChoices[erp].inventory) {
    if (given.wms !== undefined) throw new DemoChoiceError(`--erp ${erp} is the inventory as well; --wms is for ${erpChoiceIds.filter((e) => !erpChoices[e].inventory).join(', ')}`)
    return { crm, erp }
  }
  return { crm, erp, wms: pick('wms', given.wms, wmsChoiceIds, 'demo-wms') }
}

type ConnectionInput = FileConfig['connections'][number]

/** What every system is given when it starts. */
export interface DemoContext {
  credentials: DemoCredentials
  /** Simulators behave like the real systems over time (the WMS ships, the demo ERP invoices). */
  lifelike: boolean
  /** For --erp tryton: setup.sh's env.json (default: TRYTON_ENV_JSON) and whether the demo clerk works in Tryton. */
  tryton: { envFile?: string; clerk: boolean }
}

/** One connector's part in the running demo. */
export interface DemoSystem {
  /** The connections-file entry that points at its simulator. */
  connection: ConnectionInput
  /** Where its simulator (or server) listens, for the banner. */
  url: string
  /** Lookup tables its mapping reads; merged into the database at start. */
  lookups?: Record<string, Record<string, string>>
  /** Called once orderbridge listens at `apiUrl`: where the system's events (or pushes) go. */
  listening?(apiUrl: string): Promise<void> | void
  close(): Promise<void>
}

/** Sample order `n` (sampleOrder in connectors/demo-crm/sender.ts), shown in the CRM as `name` where it has an order number. */
export interface DemoOrderRequest {
  n: number
  name: string
}

export interface DeliveredOrder {
  n: number
  /** The CRM's id of the order, as orderbridge's `externalId`. */
  externalId: string
  /** The delivery was stored by orderbridge (202/200, an Ack, `success`). */
  accepted: boolean
  status: number
}

export interface DemoCrm extends DemoSystem {
  /** The customer ids its orders carry (an ERP that checks customers is given them). */
  customers: readonly string[]
  /** What the CRM sends and how, for the banner. */
  format: string
  /** Creates the sample orders in the CRM and delivers each through the CRM's own inbound format. */
  deliver(orders: readonly DemoOrderRequest[]): Promise<DeliveredOrder[]>
}

/** A sales order as the ERP's simulator holds it: our order id and the total. */
export interface HeldOrder {
  reference: string
  total: string
}

export interface DemoErp extends DemoSystem {
  /**
   * Its credit check decides finance approval (demoApprovalPolicy) on its own. Otherwise the demo's
   * clerk (demo-approver.ts) approves what waits for a person.
   */
  creditCheck: boolean
  /** It invoices and the customer pays, so orders reach `completed`. */
  completes: boolean
  /** What its simulator holds (tests); empty for a live ERP. */
  heldOrders(): HeldOrder[]
}

interface CrmEntry {
  start(context: DemoContext): Promise<DemoCrm>
}
interface ErpEntry {
  /** The ERP is the inventory as well: no WMS. */
  inventory: boolean
  start(context: DemoContext, customers: readonly string[]): Promise<DemoErp>
}
interface WmsEntry {
  start(context: DemoContext): Promise<DemoSystem>
}

// The sample orders' customers and products (connectors/demo-crm/sender.ts), which every CRM's orders carry.
const samples = Array.from({ length: 100 }, (_, n) => sampleOrder(n))
const demoAccounts = [...new Map(samples.map((s) => [s.account.id, s.account])).values()]
const demoSkus = [...new Set(samples.flatMap((s) => s.items.map((i) => i.product_code)))].sort()
const demoOwners = [...new Set(samples.map((s) => s.owner).filter((o): o is string => o !== undefined))]
const secret = (bytes = 18) => randomBytes(bytes).toString('base64url')
const lineTotal = (qty: number | string, price: string) => multiplyDecimals(String(qty), price)

/** Delivers sample orders as the demo CRM does: signed Standard Webhooks, `order.created`, our name as the order id. */
export function deliverDemoCrmOrders(sender: DemoCrmSender, orders: readonly DemoOrderRequest[]): Promise<DeliveredOrder[]> {
  return Promise.all(
    orders.map(async ({ n, name }) => {
      const answer = await sender.send('order.created', sampleOrder(n, name))
      return { n, externalId: name, accepted: answer.status === 202 || answer.status === 200, status: answer.status }
    }),
  )
}

// Fxiaoke record ids are 24 hex digits; the demo's are derived from the sample's own ids.
const fxiaokeAccountId = (accountId: string) => `5e1d7a2b8c3f4a0001a1${accountId.replace(/\D/g, '').padStart(4, '0').slice(-4)}`
const fxiaokeProductId = (sku: string) => `6017a0c18c3207000154${sku.replace(/\D/g, '').padStart(4, '0').slice(-4)}`
const fxiaokeUser = (owner: string) => `FSUID_DEMO${owner.replace(/\W/g, '').toUpperCase()}`

export const crmChoices: Record<CrmChoice, CrmEntry> = {
  demo: {
    async start({ credentials }) {
      const port = await freePort()
      const url = `http://127.0.0.1:${port}`
      let simulator: CrmSimulator | undefined
      let sender: DemoCrmSender | undefined
      return {
        connection: demoCrmConnection(credentials, url),
        url,
        customers: demoAccounts.map((a) => a.id),
        format: 'Standard Webhooks (order.created, signed with the demo webhook secret)',
        async listening(apiUrl) {
          const webhookUrl = `${apiUrl}/webhooks/demo-crm`
          simulator = await startCrmSimulator({ webhookUrl, secret: credentials.demoWebhookSecret, port })
          sender = createDemoCrmSender({ webhookUrl, secret: credentials.demoWebhookSecret })
        },
        deliver: (orders) => deliverDemoCrmOrders(sender!, orders),
        close: async () => simulator?.close(),
      }
    },
  },
  fxiaoke: {
    async start() {
      const appId = `FSAID_demo${secret(6)}`
      const secrets = { appId, appSecret: secret(), permanentCode: secret(), callbackToken: secret(), encodingAesKey: randomBytes(32).toString('base64').slice(0, 43) }
      const sim = await startFxiaokeSimulator({ appId, appSecret: secrets.appSecret, permanentCode: secrets.permanentCode })
      let pusher: FxiaokePusher | undefined
      return {
        connection: {
          id: 'fxiaoke',
          connector: 'fxiaoke',
          settings: {
            baseUrl: sim.url,
            currentOpenUserId: fxiaokeUser('orderbridge'),
            writeback: { fields: { state: 'field_sync_state__c', paymentState: 'field_payment_state__c', erpOrderNumber: 'field_erp_no__c', invoiceNumber: 'field_invoice_no__c', carrier: 'field_carrier__c', trackingNumber: 'field_tracking_no__c', paidAmount: 'field_paid_amount__c', comment: 'field_sync_comment__c' } },
            notes: { objectApiName: 'object_order_note__c', orderField: 'field_order__c', bodyField: 'field_text__c', keyField: 'field_key__c' },
          },
          secrets,
          mappings: { inbound: 'fxiaoke.to-canonical.order' },
        },
        url: sim.url,
        lookups: { 'fxiaoke-products-to-skus': Object.fromEntries(demoSkus.map((sku) => [fxiaokeProductId(sku), sku])) },
        customers: demoAccounts.map((a) => fxiaokeAccountId(a.id)),
        format: 'signed, AES-encrypted pushes (the open platform\'s {nonce, timeStamp, content, sig})',
        listening(apiUrl) {
          pusher = createFxiaokePusher({ url: `${apiUrl}/webhooks/fxiaoke`, token: secrets.callbackToken, encodingAesKey: secrets.encodingAesKey, appId })
        },
        deliver: (orders) =>
          Promise.all(
            orders.map(async ({ n, name }) => {
              const sample = sampleOrder(n, name)
              const lines = sample.items.map((item) => ({ product_id: fxiaokeProductId(item.product_code), quantity: item.qty, sales_price: item.price, subtotal: lineTotal(item.qty, item.price) }))
              const order = sim.putOrder(
                {
                  name,
                  account_id: fxiaokeAccountId(sample.account.id),
                  account_id__r: sample.account.name,
                  mc_currency: sample.currency,
                  order_time: Date.parse(sample.created_at ?? new Date().toISOString()),
                  order_amount: addDecimals(lines.map((l) => l.subtotal)),
                  owner: [fxiaokeUser(sample.owner ?? 'rep')],
                },
                lines,
              )
              const id = String(order._id)
              // As a CRM function on the order's workflow pushes it: the record and its lines as the CRM holds them.
              const result = await pusher!.push({ event: 'created', object_data: sim.order(id), details: { SalesOrderProductObj: sim.lines(id) } })
              return { n, externalId: id, accepted: result.status === 200 && result.body === 'success', status: result.status }
            }),
          ),
        close: () => sim.close(),
      }
    },
  },
  salesforce: {
    async start() {
      const secrets = { clientId: `3MVG9demo${secret(12)}`, clientSecret: secret() }
      const fields = { state: 'Orderbridge_State__c', paymentState: 'Orderbridge_Payment__c', erpOrderNumber: 'ERP_Order_Number__c', invoiceNumber: 'Invoice_Number__c', carrier: 'Carrier__c', trackingNumber: 'Tracking_Number__c', paidAmount: 'Paid_Amount__c', currency: 'Paid_Currency__c', comment: 'Orderbridge_Comment__c' }
      const notes = { object: 'Task', externalIdField: 'Orderbridge_Key__c' }
      const sim = await startSalesforceSimulator({ ...secrets, customOrderFields: Object.values(fields), taskExternalIdField: notes.externalIdField })
      const accounts = new Map(demoAccounts.map((a) => [a.id, sim.createAccount({ Name: a.name ?? a.id }).Id!]))
      const users = new Map(demoOwners.map((o) => [o, randomSalesforceId('005')]))
      let messaging: SimOutboundMessaging | undefined
      return {
        connection: {
          id: 'salesforce',
          connector: 'salesforce',
          settings: { organizationId: sim.organizationId, myDomainUrl: sim.url, fields, notes },
          secrets,
          mappings: { inbound: 'salesforce.to-canonical.order' },
        },
        url: sim.url,
        customers: [...accounts.values()],
        format: 'outbound messages (SOAP notifications on Order, up to 100 a message; lines read back with SOQL)',
        listening(apiUrl) {
          messaging = sim.outboundMessaging(`${apiUrl}/webhooks/salesforce`)
        },
        async deliver(orders) {
          // As a user does in Salesforce: the Order, then its products; the flow then sends the message.
          const created = orders.map(({ n, name }) => {
            const sample = sampleOrder(n, name)
            const order = sim.createOrder({ Name: name, AccountId: accounts.get(sample.account.id)!, CurrencyIsoCode: sample.currency, OwnerId: users.get(sample.owner ?? '') ?? randomSalesforceId('005'), EffectiveDate: (sample.created_at ?? new Date().toISOString()).slice(0, 10) })
            sim.addOrderItems(order.Id!, sample.items.map((item) => ({ ProductCode: item.product_code, Quantity: `${item.qty}.0`, UnitPrice: item.price })))
            return { n, externalId: order.Id! }
          })
          const messages = await messaging!.notify(created.map((c) => c.externalId), { retries: 3 })
          return created.map((c, i) => {
            const message = messages[Math.floor(i / 100)]!
            return { ...c, accepted: message.ack, status: message.status }
          })
        },
        close: () => sim.close(),
      }
    },
  },
}

/** SAP stores our id without hyphens (an IDoc document number); the demo shows it as our id again. */
const fromBelnr = (belnr: string) => belnr.replace(/^(\w{8})(\w{4})(\w{4})(\w{4})(\w{12})$/, '$1-$2-$3-$4-$5')

function trytonTarget(envFile: string | undefined): TrytonEnvFile {
  try {
    return readTrytonEnvFile(envFile)
  } catch (err) {
    throw new DemoChoiceError(`--erp tryton needs a running Tryton: start it with ../shared/tryton/setup.sh, or name its env.json with --tryton-env or TRYTON_ENV_JSON (${(err as Error).message})`)
  }
}

export const erpChoices: Record<ErpChoice, ErpEntry> = {
  'generic-rest': {
    inventory: false,
    async start({ credentials, lifelike }) {
      const erp = await startDemoErp(credentials, { lifelike })
      return {
        connection: demoErpConnection(credentials, erp.url),
        url: erp.url,
        creditCheck: true,
        completes: true,
        listening: (apiUrl) => erp.setWebhookTarget({ url: `${apiUrl}/webhooks/demo-erp`, secret: credentials.demoWebhookSecret }),
        heldOrders: () => erp.salesOrders().filter((o) => o.status !== 'cancelled').map((o) => ({ reference: o.reference, total: String(o.total) })),
        close: () => erp.close(),
      }
    },
  },
  kingdee: {
    inventory: false,
    async start(_context, customers) {
      const login = { acctId: 'demo-account-set', username: 'orderbridge', appId: `orderbridge_${secret(6)}`, appSecret: secret() }
      // Credit limits on the customer (BD_Customer) and receivables written off in full (none open), so the
      // credit check approves finance on its own.
      const settled = (customer: string) => ({ 'FCUSTOMERID.FNumber': customer, 'FCURRENCYID.FNumber': 'PRE001', FALLAMOUNTFOR: { number: '1200.00' }, FENDDATE_H: '2026-01-31T00:00:00', FDocumentStatus: 'C', FWRITTENOFFSTATUS: 'C' })
      const sim = await startKingdeeSimulator({
        ...login,
        customers,
        materials: demoSkus,
        tables: { BD_Customer: customers.map((c) => ({ FNumber: c, F_PAEZ_CreditLimit: { number: '500000.00' } })), AR_receivable: customers.map(settled) },
      })
      return {
        connection: {
          id: 'kingdee',
          connector: 'kingdee',
          settings: { baseUrl: sim.url, acctId: login.acctId, username: login.username, credit: { limit: { formId: 'BD_Customer', customerField: 'FNumber', limitField: 'F_PAEZ_CreditLimit' } } },
          secrets: { appId: login.appId, appSecret: login.appSecret },
          mappings: { salesOrder: 'canonical.to-kingdee.sales-order' },
        },
        url: sim.url,
        creditCheck: true,
        completes: false,
        heldOrders: () =>
          sim.salesOrders().map((o) => {
            const lines = (o.model.FSaleOrderEntry ?? []) as { FQty: string; FTaxPrice: string }[]
            return { reference: String(o.model.FNetOrderBillNo), total: addDecimals(lines.map((l) => lineTotal(l.FQty, l.FTaxPrice))) }
          }),
        close: () => sim.close(),
      }
    },
  },
  'sap-idoc': {
    inventory: false,
    async start() {
      const login = { username: 'ORDERBRIDGE', password: secret() }
      const system = { logicalSystem: 'DEMCLNT100', receiverPort: 'SAPDEM' }
      const sim = await startSapIdocSimulator({ ...login, ...system, partnerProfiles: ['ORDERBRIDG'] })
      return {
        connection: {
          id: 'sap',
          connector: 'sap-idoc',
          settings: {
            baseUrl: sim.url,
            sapClient: '100',
            controlRecord: { senderPort: 'ORDERBRIDG', senderPartner: 'ORDERBRIDG', receiverPort: system.receiverPort, receiverPartner: system.logicalSystem },
            statusLookup: { path: sim.statusPath },
          },
          secrets: login,
          mappings: { salesOrder: 'canonical.to-sap.orders05' },
        },
        url: sim.url,
        // IDoc inbound reports no credit.
        creditCheck: false,
        completes: false,
        heldOrders: () =>
          sim
            .idocs()
            .filter((idoc) => idoc.status === '53' && idoc.messageType === 'ORDERS')
            .map((idoc) => ({ reference: fromBelnr(idoc.belnr), total: xmlText(xmlChild(asArray(xmlChild(idoc.idoc, 'E1EDS01'))[0], 'SUMME')) ?? '' })),
        close: () => sim.close(),
      }
    },
  },
  tryton: {
    inventory: true,
    async start({ tryton }) {
      const target = trytonTarget(tryton.envFile)
      await prepareTrytonForDemo(target)
      let clerk: { close(): Promise<void> } | undefined
      return {
        connection: trytonDemoConnection(target),
        url: `${target.url}${target.database}`,
        // Tryton reports credit in the company's currency (USD), the demo's orders are in CNY.
        creditCheck: false,
        completes: tryton.clerk,
        listening() {
          // A clerk ships, invoices and pays in Tryton every few seconds, as people would.
          if (tryton.clerk) clerk = startTrytonDemoClerk(target, { intervalMs: 3_000 })
        },
        heldOrders: () => [],
        close: async () => clerk?.close(),
      }
    },
  },
}

// The connector's documented sample for its simulator's WMS (connectors/rest-wms/README.md).
const restWmsSample = new URL('../../connectors/rest-wms/sample-connection.yaml', import.meta.url)

export const wmsChoices: Record<WmsChoice, WmsEntry> = {
  'demo-wms': {
    async start({ credentials, lifelike }) {
      const wms = await startDemoWms(credentials, { lifelike })
      return {
        connection: demoWmsConnection(credentials, wms.url),
        url: wms.url,
        listening: (apiUrl) => wms.setWebhookTarget({ url: `${apiUrl}/webhooks/demo-wms`, secret: credentials.demoWebhookSecret }),
        close: () => wms.close(),
      }
    },
  },
  'rest-wms': {
    async start({ credentials, lifelike }) {
      const apiKey = secret()
      const wms = await startAcmeWmsSimulator({ apiKey, ...(lifelike ? { autoShipAfterMs: 3_000, autoDeliverAfterMs: 5_000 } : {}) })
      const sample = connectionSchema.parse(parseYaml(readFileSync(restWmsSample, 'utf8')))
      return {
        connection: { ...sample, id: 'rest-wms', settings: { ...sample.settings, baseUrl: `${wms.url}${simulatorApiPrefix}` }, secrets: { apiKey, webhookSecret: credentials.demoWebhookSecret } },
        url: wms.url,
        listening: (apiUrl) => wms.setWebhookTarget({ url: `${apiUrl}/webhooks/rest-wms`, secret: credentials.demoWebhookSecret }),
        close: () => wms.close(),
      }
    },
  },
}
