-- The order's life beyond the ERP order: approvals, stock holds, shipments, invoices and payments,
-- and the version each step must bring its target to.

-- The version a pending step must reach: the order's source version for the ERP and the WMS, its
-- revision for status written back to the CRM. Set whenever a link is marked pending.
alter table links add column target_version bigint;
update links l set target_version = o.source_version from orders o where o.id = l.order_id;

alter table orders add column payment_state text not null default 'not_invoiced';
alter table orders add column amount_paid numeric not null default 0;
alter table orders add column state_entered_at timestamptz not null default now();
-- Why an order is on hold: the lines short of stock, as the WMS answered.
alter table orders add column hold jsonb;
create index orders_on_hold on orders (state) where state = 'on_hold';

-- The approvals an order needs, in order (position); each decided by a person or, for finance, by
-- the credit check.
create table approvals (
  order_id uuid not null references orders (id),
  level text not null,
  position int not null,
  -- pending, approved, rejected
  status text not null default 'pending',
  rule text,
  decided_by text,
  decided_at timestamptz,
  automatic boolean not null default false,
  comment text,
  -- the credit figures the check saw, shown to the finance approver
  credit jsonb,
  primary key (order_id, level)
);
create index approvals_pending on approvals (level) where status = 'pending';

create table shipments (
  id bigserial primary key,
  order_id uuid not null references orders (id),
  connection_id text not null,
  carrier text,
  tracking_number text,
  lines jsonb,
  shipped_at timestamptz not null default now(),
  delivered_at timestamptz
);
create index shipments_by_order on shipments (order_id);

create table invoices (
  id bigserial primary key,
  order_id uuid not null references orders (id),
  connection_id text not null,
  invoice_number text not null,
  amount numeric not null,
  currency text not null,
  due_date date,
  created_at timestamptz not null default now(),
  unique (connection_id, invoice_number)
);
create index invoices_by_order on invoices (order_id);

create table payments (
  id bigserial primary key,
  order_id uuid not null references orders (id),
  connection_id text not null,
  payment_id text not null,
  amount numeric not null,
  currency text not null,
  received_at timestamptz not null default now(),
  unique (connection_id, payment_id)
);
create index payments_by_order on payments (order_id);

-- The stock the inventory system last reported per SKU, pushed on to CRMs that show it to sales.
create table stock_levels (
  connection_id text not null,
  sku text not null,
  available numeric not null,
  updated_at timestamptz not null default now(),
  pushed_at timestamptz,
  primary key (connection_id, sku)
);
create index stock_levels_unpushed on stock_levels (connection_id) where pushed_at is null or pushed_at < updated_at;
