-- Polled sources (a CRM without a change webhook): where each connection's poller goes on from.
-- The cursor is the connector's own string; it is written only after the events it covers are
-- committed to the inbox, so it is never ahead of what is durable.
create table poll_cursors (
  connection_id text not null,
  resource text not null,
  cursor text,
  updated_at timestamptz not null default now(),
  primary key (connection_id, resource)
);

-- The poller compares each polled document with the latest one stored for the same order, so a
-- change that touched only fields it does not carry (e.g. our own status writeback) adds no event.
create index inbox_events_by_external_id on inbox_events (connection_id, external_id, id);
