/**
 * The approval policy in the database: versions (never changed or deleted), exactly one active,
 * seeded from the configuration file when there are none, saved and activated through the admin
 * API with an audit entry each. Evaluation stays pure (evaluate-approval-rules.ts); this module
 * only loads and stores.
 */
import { recordAudit } from '../admin/audit-log.ts'
import type { Database, Queryable } from '../db/database.ts'
import { canonicalJson } from '../shared/canonical-json.ts'
import { issuesOf, type FieldIssue } from '../shared/field-issues.ts'
import { approvalPolicySchema, type ApprovalEvaluation, type ApprovalOrderFacts, type ApprovalPolicy } from './approval-rules.schemas.ts'
import { evaluateApprovalRules } from './evaluate-approval-rules.ts'

/** Subject of the audit entries. */
export const approvalRulesSubject = 'approval-rules'
// Any constant works: saves, activations and seeding take it, so version numbers never collide.
const approvalRulesLockKey = 7_000_005

export type ApprovalRefusalCode = 'not_found' | 'validation_failed' | 'not_configured'

/** A request that will not be carried out, with a stable code and, where a field is at fault, its path. */
export class ApprovalRulesRefusal extends Error {
  readonly code: ApprovalRefusalCode
  readonly details?: FieldIssue[]
  constructor(code: ApprovalRefusalCode, message: string, details?: FieldIssue[]) {
    super(message)
    this.name = 'ApprovalRulesRefusal'
    this.code = code
    if (details) this.details = details
  }
}

/** Validates a policy; refuses with each field's problem (paths like `rules[0].when.amount.CNY.min`). */
export function parseApprovalPolicy(raw: unknown, prefix: readonly PropertyKey[] = []): ApprovalPolicy {
  const result = approvalPolicySchema.safeParse(raw)
  if (!result.success) throw new ApprovalRulesRefusal('validation_failed', 'the approval rules are invalid', issuesOf(result.error, prefix))
  return result.data
}

export interface ApprovalRulesVersionView {
  version: number
  active: boolean
  origin: string
  createdBy: string
  createdAt: string
  comment: string | null
  ruleCount: number
}

export interface ApprovalRulesVersion extends ApprovalRulesVersionView {
  policy: ApprovalPolicy
}

interface VersionRow {
  version: number
  rules: ApprovalPolicy
  origin: string
  created_by: string
  created_at: Date
  comment: string | null
  active: boolean
}

const columns = 'version, rules, origin, created_by, created_at, comment, active'

const toVersion = (r: VersionRow): ApprovalRulesVersion => ({
  version: r.version,
  active: r.active,
  origin: r.origin,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  comment: r.comment,
  ruleCount: r.rules.rules.length,
  // Stored versions were valid when saved; parsing again fills defaults added since.
  policy: approvalPolicySchema.parse(r.rules),
})

/** The active version, or undefined when approval rules were never configured. */
export async function loadActiveApprovalRules(db: Queryable): Promise<ApprovalRulesVersion | undefined> {
  const [row] = await db.query<VersionRow>(`select ${columns} from approval_rule_versions where active`)
  return row && toVersion(row)
}

export async function findApprovalRulesVersion(db: Queryable, version: number): Promise<ApprovalRulesVersion | undefined> {
  const [row] = await db.query<VersionRow>(`select ${columns} from approval_rule_versions where version = $1`, [version])
  return row && toVersion(row)
}

/** Newest first, without the rules themselves. */
export async function listApprovalRulesVersions(db: Queryable): Promise<ApprovalRulesVersionView[]> {
  const rows = await db.query<VersionRow>(`select ${columns} from approval_rule_versions order by version desc`)
  return rows.map((r) => {
    const { policy: _policy, ...view } = toVersion(r)
    return view
  })
}

export interface SeedResult {
  /** True when this call stored the configuration as version 1. */
  seeded: boolean
  /** The active version afterwards (undefined: nothing configured anywhere). */
  activeVersion?: number
  /** True when the database's active rules differ from the configuration file's (the API changed them since). */
  differsFromConfig: boolean
}

/**
 * Stores the configuration file's policy as version 1 when the database has no version yet. Once
 * any version exists, the database owns the rules (admins change them through the API) and the
 * file is not read again; `differsFromConfig` tells the caller to say so in the log.
 * Safe to call from every process at start: the first one seeds, the others find it done.
 */
export async function seedApprovalRules(db: Database, configured: ApprovalPolicy | undefined, actor = 'configuration file'): Promise<SeedResult> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [approvalRulesLockKey])
    const active = await loadActiveApprovalRules(tx)
    if (active) return { seeded: false, activeVersion: active.version, differsFromConfig: configured !== undefined && canonicalJson(active.policy) !== canonicalJson(configured) }
    const [{ count } = { count: 0 }] = await tx.query<{ count: number }>('select count(*)::int as count from approval_rule_versions')
    if (!configured || count > 0) return { seeded: false, differsFromConfig: false }
    await tx.query(`insert into approval_rule_versions (version, rules, origin, created_by, comment, active) values (1, $1, 'config', $2, 'seeded from the configuration file', true)`, [
      JSON.stringify(configured),
      actor,
    ])
    await recordAudit(tx, { actor, action: 'approval_rules.seeded', subject: approvalRulesSubject, after: { version: 1 } })
    return { seeded: true, activeVersion: 1, differsFromConfig: false }
  })
}

export interface SaveResult {
  version: number
  /** False when the rules equal the active version's: nothing was stored. */
  created: boolean
  previousVersion: number | null
}

/** Stores a new version and makes it active, unless it equals the active one. Validates first. */
export async function saveApprovalRules(db: Database, input: { policy: unknown; comment?: string; actor: string }): Promise<SaveResult> {
  const policy = parseApprovalPolicy(input.policy)
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [approvalRulesLockKey])
    const active = await loadActiveApprovalRules(tx)
    if (active && canonicalJson(active.policy) === canonicalJson(policy)) return { version: active.version, created: false, previousVersion: active.version }
    const [{ latest } = { latest: 0 }] = await tx.query<{ latest: number }>('select coalesce(max(version), 0)::int as latest from approval_rule_versions')
    const version = latest + 1
    await tx.query('update approval_rule_versions set active = false where active')
    await tx.query(`insert into approval_rule_versions (version, rules, origin, created_by, comment, active) values ($1, $2, 'api', $3, $4, true)`, [
      version,
      JSON.stringify(policy),
      input.actor,
      input.comment ?? null,
    ])
    await recordAudit(tx, {
      actor: input.actor,
      action: 'approval_rules.saved',
      subject: approvalRulesSubject,
      before: active ? { version: active.version, policy: active.policy } : undefined,
      after: { version, policy },
    })
    return { version, created: true, previousVersion: active?.version ?? null }
  })
}

export interface ActivationResult {
  version: number
  previousVersion: number | null
  changed: boolean
}

/** Makes a stored version the active one (rollback is activating an older version). */
export async function activateApprovalRules(db: Database, input: { version: number; actor: string }): Promise<ActivationResult> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [approvalRulesLockKey])
    const target = await findApprovalRulesVersion(tx, input.version)
    if (!target) throw new ApprovalRulesRefusal('not_found', `approval rules have no version ${input.version}`)
    const active = await loadActiveApprovalRules(tx)
    if (active?.version === target.version) return { version: target.version, previousVersion: active.version, changed: false }
    await tx.query('update approval_rule_versions set active = false where active')
    await tx.query('update approval_rule_versions set active = true where version = $1', [target.version])
    await recordAudit(tx, {
      actor: input.actor,
      action: 'approval_rules.activated',
      subject: approvalRulesSubject,
      before: active ? { version: active.version } : undefined,
      after: { version: target.version },
    })
    return { version: target.version, previousVersion: active?.version ?? null, changed: true }
  })
}

export interface RequiredApprovals extends ApprovalEvaluation {
  /** The rules version that decided; null when approval rules are not configured. */
  rulesVersion: number | null
}

/**
 * What the pipeline calls: the approvals `order` needs under the active rules. With no rules
 * configured (no `approval:` in the file and none saved through the API) no approval is required,
 * which keeps an installation without approval rules working as before.
 */
export async function requiredApprovals(db: Queryable, order: ApprovalOrderFacts): Promise<RequiredApprovals> {
  const active = await loadActiveApprovalRules(db)
  if (!active) return { levels: [], matchedRule: null, reasons: ['no approval rules are configured: approved by policy'], rulesVersion: null }
  return { ...evaluateApprovalRules(active.policy, order), rulesVersion: active.version }
}
