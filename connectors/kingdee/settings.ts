import { z } from 'zod'

// A field key of a Kingdee form (`FNetOrderBillNo`, `FCUSTOMERID.FNumber`, `F_PAEZ_CrmId`). It is
// written into ExecuteBillQuery filters, so nothing but letters, digits, `_` and `.` is accepted.
const fieldKeySchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$/, 'must be a Kingdee field key such as FBillNo or FCustId.FNumber')
const formIdSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'must be a Kingdee form id such as SAL_SaleOrder')
const isoCurrencySchema = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as CNY')

/** The preset currency numbers of a new K3 Cloud account set (基础资料 → 币别), as in the outbound mapping. */
export const presetCurrencyNumbers: Readonly<Record<string, string>> = {
  PRE001: 'CNY',
  PRE002: 'HKD',
  PRE003: 'EUR',
  PRE004: 'JPY',
  PRE005: 'TWD',
  PRE006: 'GBP',
  PRE007: 'USD',
}

export const salesOrderSettingsSchema = z.object({
  formId: formIdSchema.default('SAL_SaleOrder').describe('The sales order form (业务对象表单Id).'),
  referenceField: fieldKeySchema
    .refine((key) => !key.includes('.'), 'must be a field of the order header, not a path')
    .default('FNetOrderBillNo')
    .describe(
      'The header field that stores our order reference, so a retry can find the order with ExecuteBillQuery: FNetOrderBillNo (网上订单编号, the default), FBillNo when the bill type allows manual numbers, or a custom text field (F_xxx).',
    ),
  afterSave: z
    .enum(['none', 'submit', 'submit-audit', 'auto-submit-audit'])
    .default('submit-audit')
    .describe(
      'What follows Save: nothing (the order stays 创建/created), Submit, Submit then Audit (two more calls), or IsAutoSubmitAndAudit on the Save itself (one call; needs a K3 Cloud version that has the option).',
    ),
  verifyBaseData: z
    .boolean()
    .default(true)
    .describe('IsVerifyBaseDataField: refuse a customer, material or organisation number that does not exist or is disabled, instead of saving the field empty.'),
  interactionFlags: z
    .array(z.string().regex(/^[A-Za-z0-9_]+$/))
    .default([])
    .describe('InterationFlags: the interaction prompts to answer "yes" to, e.g. STK_InvCheckResult (negative stock) or SAL_DOWNPRICECHECK (below the minimum price).'),
  ignoreInteraction: z.boolean().default(true).describe('IgnoreInterationFlag: skip every other confirmation prompt instead of failing on it.'),
  updateFields: z
    .array(z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/))
    .optional()
    .describe('NeedUpDateFields on an update. Default: every field key in the mapped document, so fields the mapping does not write keep what people entered in Kingdee.'),
  cancel: z
    .object({
      mode: z
        .enum(['unaudit-delete', 'operation'])
        .default('unaudit-delete')
        .describe('unaudit-delete: UnAudit (or CancelAssign) then Delete; operation: run a close operation such as 整单关闭 and keep the order.'),
      operation: z
        .string()
        .regex(/^[A-Za-z][A-Za-z0-9_]*$/)
        .default('BillClose')
        .describe('The ExcuteOperation opNumber for mode "operation" (整单关闭 is BillClose in a standard account set).'),
    })
    .prefault({})
    .describe('How a cancelled order is cancelled in Kingdee.'),
})

export const creditSettingsSchema = z.object({
  currency: isoCurrencySchema.default('CNY').describe('The currency of the credit figures when the queries carry none.'),
  currencyNumbers: z
    .record(z.string().min(1), isoCurrencySchema)
    .default({ ...presetCurrencyNumbers })
    .describe('Kingdee currency numbers (币别编码) → ISO codes, for the currency fields of the queries.'),
  timezone: z.string().min(1).default('Asia/Shanghai').describe('The wall clock of due dates: a receivable is overdue from the day after its due date there.'),
  limit: z
    .object({
      formId: formIdSchema.describe('The form that holds each customer\'s credit limit (the customer, a credit archive, or a custom form).'),
      customerField: fieldKeySchema.describe('The field matched against the customer id orderbridge asks for, e.g. FNumber, or FCustomerId.FNumber on a credit archive.'),
      limitField: fieldKeySchema.describe('The credit limit amount field.'),
      currencyField: fieldKeySchema.optional().describe('The currency number of the limit, if the form has one.'),
      filter: z.string().max(500).optional().describe('More ExecuteBillQuery filter, ANDed, e.g. "FDocumentStatus = \'C\'".'),
    })
    .optional()
    .describe('Where the credit limit is read. Without it, credit checks fail with a configuration error.'),
  receivables: z
    .object({
      formId: formIdSchema.default('AR_receivable'),
      customerField: fieldKeySchema.default('FCUSTOMERID.FNumber'),
      amountField: fieldKeySchema.default('FALLAMOUNTFOR').describe('价税合计: the receivable\'s amount.'),
      paidField: fieldKeySchema.optional().describe('The amount already received on it, if the account set has such a field; without it, open receivables count in full.'),
      dueDateField: fieldKeySchema.default('FENDDATE_H'),
      currencyField: fieldKeySchema.optional().default('FCURRENCYID.FNumber'),
      filter: z
        .string()
        .max(500)
        .default("FDocumentStatus = 'C' and FWRITTENOFFSTATUS <> 'C'")
        .describe('Which receivables are open: audited and not fully written off (收款核销状态 C).'),
    })
    .prefault({})
    .describe('Where the customer\'s open receivables are read: outstanding is their sum, overdue whether any is past due.'),
})

export const reconciliationSettingsSchema = z.object({
  timezone: z.string().min(1).default('Asia/Shanghai').describe('The account set\'s wall clock: Kingdee answers and filters modify dates in it, without an offset.'),
  currencyNumbers: z
    .record(z.string().min(1), isoCurrencySchema)
    .default({ ...presetCurrencyNumbers })
    .describe('Kingdee currency numbers (币别编码) → ISO codes, for the currencies of sales orders and receivables.'),
  batchSize: z.number().int().min(1).max(500).default(100).describe('How many references or bill numbers go into one ExecuteBillQuery `in (…)` filter.'),
  salesOrders: z
    .object({
      totalField: fieldKeySchema.default('FBillAllAmount').describe('价税合计 of the order (in 财务信息 FSaleOrderFinance).'),
      currencyField: fieldKeySchema.default('FSettleCurrId.FNumber').describe('结算币别 number.'),
      skuField: fieldKeySchema.default('FMaterialId.FNumber').describe('The line\'s material number: the SKU as the order mapping wrote it.'),
      quantityField: fieldKeySchema.default('FQty').describe('销售数量 of the line.'),
      modifiedField: fieldKeySchema.default('FModifyDate').describe('修改日期: orders are listed in its order, from a time on.'),
    })
    .prefault({})
    .describe('The SAL_SaleOrder fields reconciliation reads.'),
  invoices: z
    .object({
      formId: formIdSchema.default('AR_receivable').describe('The receivable form (应收单).'),
      salesOrderField: fieldKeySchema
        .default('FORDERNUMBER')
        .describe(
          'The field that holds the sales order number (FBillNo) a receivable comes from. Default FORDERNUMBER (明细 销售订单号), which the standard flow (sales order → 出库 → 应收) carries through. FSOURCEBILLNO is the direct source bill (usually the SAL_OUTSTOCK number): right only when receivables are pushed from sales orders. FORDERBILLNO is the order number on the 收款计划 entry.',
        ),
      amountField: fieldKeySchema.default('FALLAMOUNTFOR').describe('价税合计 of the receivable.'),
      paidField: fieldKeySchema.default('FRelateHadPayAmount').describe('What is received on it: the amount of the receipts linked to it (收(退)款单的关联金额), or another amount field of the account set.'),
      dueDateField: fieldKeySchema.default('FENDDATE_H').describe('到期日.'),
      currencyField: fieldKeySchema.default('FCURRENCYID.FNumber').describe('币别 number.'),
      writtenOffField: fieldKeySchema.default('FWRITTENOFFSTATUS').describe('收款核销状态 (A none, B part, C all): the invoice\'s status.'),
      modifiedField: fieldKeySchema.default('FModifyDate').describe('修改日期: receivables are listed in its order, from a time on.'),
      filter: z
        .string()
        .max(500)
        .default("FDocumentStatus = 'C' and FCancelStatus = 'A'")
        .describe('Which receivables count as invoices, ANDed to every query: audited and not voided.'),
    })
    .prefault({})
    .describe('Where invoices are read: receivables (应收单) linked to our sales orders.'),
})

export const settingsSchema = z.object({
  baseUrl: z
    .url({ protocol: /^https?$/ })
    .describe('The K3 Cloud site including its path, e.g. https://erp.example.com/k3cloud (the WebAPI services hang below it).'),
  acctId: z.string().min(1).describe('The account set (数据中心) id, as in 第三方系统登录授权.'),
  username: z.string().min(1).describe('The user the integration logs in as.'),
  lcid: z.number().int().default(2052).describe('Language of messages: 2052 简体中文, 1033 English, 3076 繁體中文.'),
  timeoutMs: z.number().int().positive().default(30_000).describe('How long one request may take, in milliseconds.'),
  salesOrders: salesOrderSettingsSchema.prefault({}).describe('How sales orders are saved, found and cancelled.'),
  credit: creditSettingsSchema.optional().describe('Where customer credit is read; leave out when this connection does not report credit.'),
  reconciliation: reconciliationSettingsSchema.prefault({}).describe('What reconciliation reads: sales orders as Kingdee holds them, and receivables as invoices.'),
})

export const secretsSchema = z.object({
  appId: z.string().min(1).describe('应用ID of the third-party system authorisation (第三方系统登录授权).'),
  appSecret: z.string().min(1).describe('应用密钥 of that authorisation.'),
})

export type KingdeeSettings = z.infer<typeof settingsSchema>
export type KingdeeSecrets = z.infer<typeof secretsSchema>
export type KingdeeCreditSettings = z.infer<typeof creditSettingsSchema>
export type KingdeeReconciliationSettings = z.infer<typeof reconciliationSettingsSchema>
