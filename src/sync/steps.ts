/** Which step runs each operation a link names. */
import { operations } from '../orders/lifecycle.ts'
import { checkCredit } from './check-credit.step.ts'
import { reserveStock } from './reserve-stock.step.ts'
import type { Attempt, StepOutcome, SyncDeps } from './step-runtime.ts'
import { upsertSalesOrder } from './upsert-sales-order.step.ts'
import { writeBackStatus } from './write-back-status.step.ts'

type Step = (deps: SyncDeps, attempt: Attempt) => Promise<StepOutcome>

const steps: Readonly<Record<string, Step>> = {
  [operations.salesOrder]: upsertSalesOrder,
  [operations.reserveStock]: reserveStock,
  [operations.creditCheck]: checkCredit,
  [operations.crmStatus]: writeBackStatus,
}

export const stepFor = (operation: string): Step | undefined => steps[operation]
