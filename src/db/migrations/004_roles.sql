-- Roles (issue 5): an approver key's level and an integration key's connection get their own
-- columns instead of sharing `scope`, and a key remembers when it was last used (to the minute).
alter table api_keys add column level text;
alter table api_keys add column connection_id text;
alter table api_keys add column last_used_at timestamptz;

update api_keys set connection_id = scope where role = 'integration';
update api_keys set level = scope where role = 'approver' and scope in ('sales_manager', 'finance', 'warehouse');

-- Keys that cannot be given a valid level or connection are revoked, and the audit log says why:
-- an integration key without a connection saw nothing; an approver key without a level cannot be
-- told what it may see.
insert into audit_log (actor, action, subject, before, after)
select 'migration 004_roles', 'key.revoked', 'key:' || id,
       jsonb_build_object('role', role, 'scope', scope, 'revokedAt', null),
       jsonb_build_object('revokedAt', now(), 'reason', 'no valid ' || case when role = 'approver' then 'level' else 'connection' end)
from api_keys
where revoked_at is null and ((role = 'approver' and level is null) or (role = 'integration' and connection_id is null));

update api_keys set revoked_at = now()
where revoked_at is null and ((role = 'approver' and level is null) or (role = 'integration' and connection_id is null));

alter table api_keys drop column scope;

alter table api_keys add constraint api_keys_role check (role in ('admin', 'ops', 'integration', 'approver', 'viewer'));
-- CASE, because a CHECK that evaluates to null passes.
alter table api_keys add constraint api_keys_level check (
  case when role = 'approver' then coalesce(level in ('sales_manager', 'finance', 'warehouse'), revoked_at is not null) else level is null end
);
alter table api_keys add constraint api_keys_connection check (
  case when role = 'integration' then connection_id is not null or revoked_at is not null else connection_id is null end
);
