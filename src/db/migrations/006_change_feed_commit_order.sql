-- The change feed is read in commit order without a writers' lock: each row carries the id of the
-- transaction that wrote it, and readers only return rows of transactions older than every one
-- still running (the snapshot's xmin). Such a transaction has finished, so no row can ever appear
-- before the reader's cursor: the feed stays gap-free while writers append in parallel.
alter table changes add column tx xid8 not null default pg_current_xact_id();
create index changes_in_commit_order on changes (tx, seq);
