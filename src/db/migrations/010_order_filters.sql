-- Issue 7: the order list's filters and cursor, acknowledgements from systems that pull, and the
-- reports' range scans.

-- The order list pages newest first by (created_at, id), which never change (src/status/order-list.ts).
create index orders_by_created on orders (created_at, id);
create index orders_by_state on orders (state, created_at, id);
create index orders_by_customer on orders ((document->'customer'->>'externalId'), created_at, id);
create index orders_by_updated on orders (updated_at, id);

-- One acknowledgement per order and connection (POST /api/v1/orders/:id/ack): a repeat inserts nothing.
create unique index order_events_one_ack on order_events (order_id, (detail->>'connection')) where kind = 'acknowledged';

-- GET /api/v1/reports/sync: attempts, and the failures and breaker openings of the change feed, by time.
create index sync_attempts_by_started on sync_attempts (started_at);
create index changes_for_reports on changes (type, at) where type in ('sync.failed', 'breaker.opened');
