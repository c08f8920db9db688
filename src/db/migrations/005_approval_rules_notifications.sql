-- Approval rules (versioned, like mappings) and notifications (reminders and state-change messages).

-- Every version of the approval policy; versions are never changed or deleted, so rollback is
-- activation. Exactly one version is active once any exists.
create table approval_rule_versions (
  version int primary key,
  -- the whole policy: { rules: [...], unmatchedCurrency: { require: [...] } }
  rules jsonb not null,
  -- config: seeded from the configuration file; api: saved by an admin
  origin text not null,
  created_by text not null,
  created_at timestamptz not null default now(),
  comment text,
  active boolean not null default false
);
create unique index approval_rule_versions_one_active on approval_rule_versions (active) where active;

-- One row per notification rule, order and occurrence (e.g. one stay in a state, one invoice due
-- date): the unique key makes scheduling idempotent and sending exactly once per occurrence.
create table notifications (
  id bigserial primary key,
  rule_id text not null,
  order_id uuid not null references orders (id),
  occurrence text not null,
  -- entered, waiting, invoice_due, invoice_overdue
  trigger text not null,
  -- entered/waiting: the states (a JSON array) the order must still be in when a reminder is sent,
  -- and when it entered them (a later stay is another occurrence)
  states jsonb,
  entered_at timestamptz,
  -- invoice triggers: which invoice and its due date
  invoice_ref text,
  due_date date,
  -- when to send
  send_at timestamptz not null,
  -- scheduled: waiting for send_at (or being sent); sent; cancelled: the order moved on first;
  -- failed: a channel kept failing or refused for good
  status text not null default 'scheduled',
  -- per channel, what was delivered (so a retry sends only the channels that failed)
  deliveries jsonb not null default '{}',
  attempts int not null default 0,
  last_error text,
  cancel_reason text,
  -- a worker sending it holds a lease, so two workers never send the same notification at once
  lease_owner text,
  lease_until timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  sent_at timestamptz,
  unique (rule_id, order_id, occurrence)
);
create index notifications_scheduled on notifications (send_at) where status = 'scheduled';
create index notifications_by_order on notifications (order_id, status);
