"""Every row-locking queryset of the order pipeline, so the lock order is visible here.

Lock order. Checkout takes Product rows only, by id (shop.services.stock_reserve);
so do the bulk price and stock updates (products_for_update), in the same order.
Ending an order (cancel, failed payment) takes its Order, then its Steps, then
Product rows by id to release stock. A step claim takes one Step. No path takes an
Order or Step lock while it holds Product locks, so these never wait in a cycle.
Step locks join the order for reading only (`of=("self",)`): a claim must not lock
the order row, or it could wait in a cycle with a cancel.
"""

from django.db.models import QuerySet

from orders.models import Order, Step
from shop.models import Product


def order_for_update(*, order_id: int) -> QuerySet[Order]:
    return Order.objects.select_for_update().filter(pk=order_id)


def step_for_update(*, order_id: int, name: str) -> QuerySet[Step]:
    return (
        Step.objects.select_for_update(of=("self",))
        .select_related("order")
        .filter(order_id=order_id, name=name)
    )


def steps_for_update(*, order_id: int) -> QuerySet[Step]:
    return Step.objects.select_for_update().filter(order_id=order_id).order_by("position")


def step_by_pk_for_update(*, pk: int) -> QuerySet[Step]:
    return Step.objects.select_for_update(of=("self",)).select_related("order").filter(pk=pk)


def products_for_update(*, skus) -> QuerySet[Product]:
    return Product.objects.select_for_update().filter(sku__in=list(skus)).order_by("pk")
