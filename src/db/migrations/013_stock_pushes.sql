-- What each CRM was last told of each level. One `pushed_at` per level served one CRM: with two
-- taking stock, the first to push marked the levels and the other never heard of them. A level is
-- unpushed for a CRM while what it was told differs from the level (or it was told nothing).
create table stock_pushes (
  receiver_id text not null,
  connection_id text not null,
  sku text not null,
  available numeric not null,
  pushed_at timestamptz not null default now(),
  primary key (receiver_id, connection_id, sku)
);
drop index stock_levels_unpushed;
alter table stock_levels drop column pushed_at;
