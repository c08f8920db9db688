/**
 * The demo's finance clerk. Every demo runs the default demo's approval rules (they are kept in the
 * database, so switching choices on one data folder must not change them): orders over 1,500 CNY
 * need finance. Where the ERP's credit check cannot decide (SAP reports no credit, Tryton reports it
 * in another currency), the clerk approves, through the HTTP API like a person, each order that
 * waits for someone, so `demo send` is not left waiting. Demo only.
 */

interface PendingApproval {
  orderId: string
  level: string
}

export function startDemoApprover(apiUrl: string, adminKey: string, options: { intervalMs?: number } = {}): { close(): Promise<void> } {
  const headers = { authorization: `Bearer ${adminKey}` }
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let round: Promise<void> = Promise.resolve()

  async function decideWaiting(): Promise<void> {
    const response = await fetch(`${apiUrl}/api/v1/approvals?pending=true&limit=500`, { headers })
    if (!response.ok) return
    const { approvals } = (await response.json()) as { approvals: PendingApproval[] }
    for (const approval of approvals) {
      if (stopped) return
      // A 409 (decided meanwhile, or the credit check got there first) is fine: the order moved on.
      await fetch(`${apiUrl}/api/v1/orders/${approval.orderId}/approval`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'approve', comment: `approved by the demo's clerk (${approval.level})` }),
      })
    }
  }

  const schedule = () => {
    if (stopped) return
    timer = setTimeout(() => {
      round = decideWaiting()
        .catch(() => {})
        .finally(schedule)
    }, options.intervalMs ?? 1_000)
  }
  schedule()
  return {
    async close() {
      stopped = true
      clearTimeout(timer)
      await round
    },
  }
}
