-- Failures that need a person: dead letters and needs-attention items, their replays and resolutions,
-- and the counters that are not rows of their own (duplicate deliveries).

-- An edited outbound document for one replay of one source version: the sync step sends it instead
-- of the mapping output, and clears it once the target has accepted it.
alter table links add column override_document jsonb;
alter table links add column override_version bigint;

-- links.status resolved: dismissed by a person; inbox_events.status dismissed: the same for an event.
create index links_failures on links (updated_at) where status in ('dead', 'needs_attention', 'resolved');
create index inbox_events_failures on inbox_events (processed_at) where status in ('needs_attention', 'dismissed');

-- Every replay of a failed link or event made through /api/v1/failures, one row per item (a bulk
-- replay writes one row per item and one audit entry for the whole run).
create table replays (
  id bigserial primary key,
  at timestamptz not null default now(),
  -- link or event
  kind text not null,
  -- the failure id: link:<order>:<connection>:<operation> or event:<inbox id>
  subject text not null,
  connection_id text not null,
  actor text not null,
  reason text,
  -- true when an edited outbound document was sent instead of the mapping output
  edited boolean not null default false,
  bulk boolean not null default false
);
create index replays_by_at on replays (at);

-- Redelivered events are answered from the inbox and leave no row there, so they are counted here:
-- one upsert per written batch that held duplicates, in the same statement as the insert.
create table delivery_counters (
  connection_id text not null,
  hour timestamptz not null,
  duplicates bigint not null default 0,
  primary key (connection_id, hour)
);
