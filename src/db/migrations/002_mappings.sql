-- Every version of every mapping; versions are never changed or deleted, so rollback is activation.
create table mapping_versions (
  mapping_id text not null,
  version int not null,
  spec jsonb not null,
  -- file: loaded from mappings/; api: saved by an admin
  origin text not null,
  created_at timestamptz not null default now(),
  created_by text not null,
  comment text,
  primary key (mapping_id, version)
);

create table mappings (
  id text primary key,
  active_version int not null,
  updated_at timestamptz not null default now()
);

-- Cross-reference tables for lookups (e.g. CRM account id → ERP customer code).
create table lookup_entries (
  table_name text not null,
  key text not null,
  value jsonb not null,
  updated_at timestamptz not null default now(),
  primary key (table_name, key)
);

-- Shadow runs of a draft version over real recent documents; activation may require a clean one.
create table mapping_shadow_runs (
  id bigserial primary key,
  mapping_id text not null,
  version int not null,
  active_version int not null,
  at timestamptz not null default now(),
  documents int not null,
  clean boolean not null,
  report jsonb not null
);

-- Who changed what, when, with the old and new value.
create table audit_log (
  id bigserial primary key,
  at timestamptz not null default now(),
  actor text not null,
  action text not null,
  subject text not null,
  before jsonb,
  after jsonb
);
create index audit_log_by_subject on audit_log (subject, id);

-- The mapping version an event was (or is to be) mapped with, and the one it was first mapped with,
-- so a replay can choose either.
alter table inbox_events add column mapping_version int;
alter table inbox_events add column first_mapping_version int;
