"""Every row-locking queryset of the order domain, and the lock order of the whole shop.

Lock order. Checkout takes Product rows only, by id (shop.services.stock_reserve);
so do the bulk price and stock updates (shop/lock_objects.py products_for_update),
in the same order. Ending an order (cancel, failed payment) takes its Order, then
its Steps, then Product rows by id to release stock (shop/receivers.py). A partner's
event (webhooks/) takes its Order by number, then its Dispute and FollowUp rows. A step
claim takes one Step (engine/lock_objects.py). No path takes an Order or Step lock
while it holds Product locks, so these never wait in a cycle. Step locks join the
order for reading only (`of=("self",)`): a claim must not lock the order row, or it
could wait in a cycle with a cancel.
"""

from django.db.models import QuerySet

from orders.models import Order, Step


def order_for_update(*, order_id: int) -> QuerySet[Order]:
    return Order.objects.select_for_update().filter(pk=order_id)


def order_for_update_by_number(*, number: str) -> QuerySet[Order]:
    """A partner's event names the order by number; its processing holds this lock, so
    one order's events (payment and carrier alike) are applied one at a time."""
    return Order.objects.select_for_update().filter(number=number)


def steps_for_update(*, order_id: int) -> QuerySet[Step]:
    return Step.objects.select_for_update().filter(order_id=order_id).order_by("position")
