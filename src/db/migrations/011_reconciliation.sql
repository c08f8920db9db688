-- Reconciliation (src/reconciliation): a run compares what orderbridge recorded with what each
-- system says now, and records every discrepancy with what was done about it.

create table reconciliation_runs (
  id bigserial primary key,
  -- queued, running, succeeded, failed
  status text not null default 'queued',
  -- api, schedule, cli
  trigger text not null,
  requested_by text,
  -- the connections compared
  connections text[] not null,
  -- the window: orders updated in [since, until]; since null: from the first order
  since timestamptz,
  until timestamptz,
  -- or a list of orders instead of a window
  order_ids uuid[],
  -- the policy per drift kind and the amount tolerance, as the run was asked to apply them
  policy jsonb not null,
  tolerance numeric not null default 0,
  orders_total int,
  orders_checked int not null default 0,
  orders_skipped int not null default 0,
  -- records read from the targets while looking for orphans
  target_records_checked int not null default 0,
  discrepancies int not null default 0,
  -- per drift kind and per action taken
  counts jsonb not null default '{}',
  -- where a resumed run goes on (a worker died mid-run)
  cursor jsonb,
  error text,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  heartbeat_at timestamptz
);
create index reconciliation_runs_open on reconciliation_runs (heartbeat_at) where status in ('queued', 'running');

create table reconciliation_discrepancies (
  id bigserial primary key,
  run_id bigint not null references reconciliation_runs (id) on delete cascade,
  -- missing_in_target, orphan_in_target, amount_mismatch, line_mismatch, state_mismatch,
  -- duplicate_in_target, stock_mismatch, invoice_mismatch
  kind text not null,
  -- null for an orphan: a record in the target that names no order we know
  order_id uuid,
  connection_id text not null,
  -- the target's record (sales order, reservation, invoice or CRM order), when there is one
  external_id text,
  expected jsonb,
  actual jsonb,
  -- reported, repair_requested (a pipeline step was asked for), repaired, repair_failed
  action text not null,
  -- what was done, or why nothing was
  detail text,
  -- when the repair was made, or (for a requested step) when a later run found the order consistent
  repaired_at timestamptz,
  created_at timestamptz not null default now()
);
-- A run that resumes repeats its last page; the same finding is recorded once.
create unique index reconciliation_discrepancies_once on reconciliation_discrepancies (run_id, connection_id, kind, coalesce(order_id::text, ''), coalesce(external_id, ''));
create index reconciliation_discrepancies_by_run on reconciliation_discrepancies (run_id, id);
create index reconciliation_discrepancies_awaiting on reconciliation_discrepancies (order_id) where action = 'repair_requested' and repaired_at is null;


