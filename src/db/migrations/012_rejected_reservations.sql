-- Orders rejected for stock used to leave their reservation link `held`, counted as on hold and
-- re-checked for good. A rejected order holds no stock: such links end cancelled, as new ones do.
update links l set status = 'cancelled', updated_at = now()
from orders o
where o.id = l.order_id and o.state = 'rejected' and l.operation = 'inventory.reserve' and l.status = 'held';
