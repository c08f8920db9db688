import { z } from 'zod'

// A path is relative to baseUrl: `//host/x` or `https://host/x` would send the password elsewhere.
const pathSchema = z.string().regex(/^\/(?!\/)/, 'must be a path that starts with a single "/"')
// EDI_DC40 partner and port fields are CHAR 10 in SAP; upper case is what WE20/WE21 store.
const partnerField = z.string().regex(/^[A-Z0-9_/-]{1,10}$/, 'must be 1–10 upper-case letters or digits, as in WE20/WE21')

export const controlRecordSchema = z.object({
  senderPort: partnerField.describe('SNDPOR: the port SAP knows us by (an XML-HTTP port in WE21, or the middleware\'s).'),
  senderPartnerType: z.string().regex(/^[A-Z]{2}$/).default('LS').describe('SNDPRT: partner type of the sender, LS (logical system) or KU (customer).'),
  senderPartner: partnerField.describe('SNDPRN: our partner number, with an inbound partner profile for ORDERS in WE20.'),
  receiverPort: partnerField.describe('RCVPOR: SAP\'s own port, usually SAP<SID>.'),
  receiverPartnerType: z.string().regex(/^[A-Z]{2}$/).default('LS').describe('RCVPRT: partner type of the receiver.'),
  receiverPartner: partnerField.describe('RCVPRN: the logical system of the SAP client (e.g. S4HCLNT100).'),
  client: z.string().regex(/^\d{3}$/).optional().describe('MANDT: the SAP client; SAP fills it in when left out.'),
  messageType: z.string().regex(/^[A-Z0-9_/]{1,30}$/).default('ORDERS').describe('MESTYP of a new order.'),
  changeMessageType: z.string().regex(/^[A-Z0-9_/]{1,30}$/).default('ORDCHG').describe('MESTYP of a change to an order sent before.'),
  extension: z.string().regex(/^[A-Z0-9_/]{1,30}$/).optional().describe('CIMTYP: the IDoc extension, when the partner profile uses one.'),
  test: z.boolean().default(false).describe('TEST: mark IDocs as test IDocs.'),
})

/** The message types read from SAP; ORDRSP is checked and acknowledged, DESADV and INVOIC become events. */
export const inboundMessageTypes = ['ORDRSP', 'DESADV', 'INVOIC'] as const
export type InboundMessageType = (typeof inboundMessageTypes)[number]

export const inboundSchema = z.object({
  messageTypes: z
    .array(z.enum(inboundMessageTypes))
    .min(1)
    .default(['DESADV', 'INVOIC'])
    .describe('MESTYP values accepted; an IDoc of another message type is refused (422). ORDRSP is only checked and acknowledged: orderbridge has no event for an order confirmation.'),
  authentication: z
    .enum(['basic', 'header'])
    .default('basic')
    .describe('basic: HTTP Basic with the secrets inboundUsername / inboundPassword (what an SAP HTTP port or a PI/CPI receiver channel sends); header: the secret inboundToken in the header named by `header`.'),
  header: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an HTTP header name')
    .default('X-Orderbridge-Token')
    .describe('The header that carries inboundToken when authentication is header.'),
  trackingNumberField: z
    .enum(['BOLNR', 'TRAID', 'LIFEX', 'EXIDV'])
    .default('BOLNR')
    .describe('Where a DESADV carries the tracking number: E1EDL20 BOLNR (bill of lading), TRAID (means of transport), LIFEX (external delivery id), or EXIDV of the first handling unit (E1EDL37).'),
  carrierPartnerFunction: z
    .string()
    .regex(/^[A-Z0-9]{1,3}$/)
    .default('SP')
    .describe('The E1ADRM1 PARTNER_Q of the carrier in a DESADV (SP, the forwarding agent); its NAME1, else PARTNER_ID, is the carrier.'),
})
export type InboundSettings = z.infer<typeof inboundSchema>

export const settingsSchema = z
  .object({
    baseUrl: z.url({ protocol: /^https?$/ }).describe('Where SAP (or SAP PI/PO or Cloud Integration) listens, e.g. https://s4h.example.com:44300.'),
    transport: z
      .enum(['soap', 'idoc-xml'])
      .default('soap')
      .describe('soap: IDoc in a SOAP 1.1 envelope, as /sap/bc/srt/idoc and the Cloud Integration IDoc adapter take it; idoc-xml: the bare IDoc XML, as /sap/bc/idoc_xml takes it.'),
    path: pathSchema.optional().describe('Default /sap/bc/srt/idoc for soap, /sap/bc/idoc_xml for idoc-xml; a middleware endpoint otherwise.'),
    sapClient: z.string().regex(/^\d{3}$/).optional().describe('Sent as the sap-client query parameter.'),
    timeoutMs: z.number().int().positive().default(30_000).describe('How long one request may take, in milliseconds.'),
    timezone: z.string().min(1).default('UTC').describe('The wall clock of CREDAT/CRETIM in the control record.'),
    controlRecord: controlRecordSchema.describe('The EDI_DC40 partner settings; they belong to the connection, not to the order.'),
    answer: z
      .object({
        idocNumberHeader: z.string().regex(/^[A-Za-z0-9-]+$/).default('SapIDocDbId').describe('A response header that carries the IDoc number SAP assigned (Cloud Integration sets SapIDocDbId).'),
        idocNumberElement: z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/).default('DbId').describe('An element of the XML answer that carries it (the SOAP answer\'s idocAssign/DbId).'),
      })
      .prefault({})
      .describe('Where the answer names the IDoc number; without one, our DOCNUM is the external id.'),
    statusLookup: z
      .object({
        path: pathSchema
          .refine((path) => path.includes('{reference}'), 'must contain the {reference} placeholder')
          .describe('GET here to list the IDocs SAP holds for our reference (E1EDK02 BELNR); {reference} is replaced URL-encoded and with quotes doubled.'),
        idocNumberField: z.string().min(1).default('Docnum'),
        statusField: z.string().min(1).default('Status'),
        messageTypeField: z.string().min(1).default('Mestyp'),
        salesOrderField: z.string().min(1).default('Vbeln').describe('The field naming the sales order SAP made of the IDoc (VBELN); a cancel sends it as E1EDK02 qualifier 002.'),
      })
      .optional()
      .describe('An OData-style status service (e.g. a custom Gateway service over EDIDC, or a Cloud Integration flow) answering {d:{results:[…]}}, {value:[…]} or a list. Without it a retry after a lost answer cannot tell whether the IDoc arrived.'),
    whenUncertain: z
      .enum(['refuse', 'resend'])
      .default('refuse')
      .describe(
        'Without statusLookup, what a retry does after an attempt whose answer was lost: refuse (the order waits in needs_attention until someone checks SAP) or resend (SAP may then create the order twice).',
      ),
    inbound: inboundSchema
      .optional()
      .describe('IDocs SAP (or PI/PO, Cloud Integration) posts to POST /webhooks/<connection>: which message types, and how a delivery is authenticated. Without it the connection accepts none.'),
  })
  .transform((settings) => ({ ...settings, path: settings.path ?? (settings.transport === 'soap' ? '/sap/bc/srt/idoc' : '/sap/bc/idoc_xml') }))

export const secretsSchema = z.object({
  username: z.string().min(1).describe('The SAP (or middleware) user for HTTP Basic authentication.'),
  password: z.string().min(1).describe('Its password.'),
  inboundUsername: z.string().min(1).optional().describe('The user SAP (or the middleware) sends IDocs to orderbridge as, with inbound.authentication basic.'),
  inboundPassword: z.string().min(1).optional().describe('Its password.'),
  inboundToken: z.string().min(16).optional().describe('The shared token SAP (or the middleware) sends in inbound.header, with inbound.authentication header; at least 16 characters.'),
})

export type SapIdocSettings = z.infer<typeof settingsSchema>
export type SapIdocSecrets = z.infer<typeof secretsSchema>
