-- Pending events by id, not by arrival time. Settling an event looks it up by id while it is still
-- pending; the planner matched that to the partial index on arrival time and read the whole
-- index for each event (every entry of every settled event stays in it until a vacuum). Keyed by
-- id, the lookup is exact, and the sweeper still walks the pending events in id order.
drop index inbox_events_pending;
create index inbox_events_pending on inbox_events (id) where status = 'pending';
