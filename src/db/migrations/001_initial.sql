-- Inbound deliveries, committed before they are acknowledged. (connection, event id) is the dedupe key.
create table inbox_events (
  id bigserial primary key,
  connection_id text not null,
  event_id text not null,
  event_type text not null,
  external_id text not null,
  source_version bigint not null,
  document jsonb not null,
  received_at timestamptz not null default now(),
  -- pending: not yet processed; processed; stale: an older or repeated version; needs_attention: cannot be processed as is
  status text not null default 'pending',
  processed_at timestamptz,
  order_id uuid,
  errors jsonb,
  unique (connection_id, event_id)
);
create index inbox_events_pending on inbox_events (received_at) where status = 'pending';

-- Deliveries we refused, with the reason, so an operator can see (and the sender can fix) them.
create table rejected_deliveries (
  id bigserial primary key,
  connection_id text not null,
  event_id text,
  received_at timestamptz not null default now(),
  http_status int not null,
  code text not null,
  message text not null,
  details jsonb,
  -- kept only for authenticated deliveries, so a fixed document can be resent
  body text
);
create index rejected_deliveries_by_connection on rejected_deliveries (connection_id, received_at desc);

create table orders (
  id uuid primary key,
  source_connection text not null,
  external_id text not null,
  state text not null,
  -- the source's version of the document this row holds
  source_version bigint not null,
  -- our row version: bumped on every change, so writers can detect each other
  revision int not null default 1,
  document jsonb not null,
  currency text not null,
  -- unconstrained numeric keeps the scale it is given: "2667.95" stays "2667.95"
  total numeric not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (source_connection, external_id)
);

-- The order's timeline: every transition and every skipped event, with who or what caused it.
create table order_events (
  id bigserial primary key,
  order_id uuid not null references orders (id),
  at timestamptz not null default now(),
  kind text not null,
  from_state text,
  to_state text,
  cause text not null,
  detail jsonb
);
create index order_events_by_order on order_events (order_id, id);

-- One row per order and target connection: the cross-reference and its sync status.
create table links (
  order_id uuid not null references orders (id),
  connection_id text not null,
  operation text not null,
  external_id text,
  -- pending: needs a sync; retrying: failed, will retry; synced; cancelled; dead: out of attempts;
  -- needs_attention: will not retry by itself; resolved: dismissed by a person
  status text not null default 'pending',
  last_synced_version bigint,
  last_error jsonb,
  -- a lease, so one order's steps for one target never interleave across workers
  lease_owner text,
  lease_until timestamptz,
  updated_at timestamptz not null default now(),
  primary key (order_id, connection_id, operation)
);
create index links_open on links (updated_at) where status in ('pending', 'retrying');

-- What was sent where, when, and what came back.
create table sync_attempts (
  id bigserial primary key,
  order_id uuid not null references orders (id),
  connection_id text not null,
  operation text not null,
  source_version bigint not null,
  idempotency_key text not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  -- started (no answer recorded yet: a crash here means the outcome is unknown), succeeded, failed
  outcome text not null default 'started',
  failure_kind text,
  error_message text,
  external_id text,
  duration_ms int
);
create index sync_attempts_by_order on sync_attempts (order_id, connection_id, operation, source_version);

-- The change feed: gap-free and ordered, because writers take one lock before they append.
create table changes (
  seq bigserial primary key,
  at timestamptz not null default now(),
  type text not null,
  order_id uuid,
  connection_id text,
  data jsonb not null default '{}'
);

create table api_keys (
  id text primary key,
  name text not null,
  key_hash text not null unique,
  role text not null,
  scope text,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
