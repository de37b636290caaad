"""Every row-locking queryset of the order pipeline, so the lock order is visible here.

Lock order: Product rows (by id, in shop.services), then Order, then Step.
"""

from django.db.models import QuerySet

from orders.models import Order, Step


def order_for_update(*, order_id: int) -> QuerySet[Order]:
    return Order.objects.select_for_update().filter(pk=order_id)


def step_for_update(*, order_id: int, name: str) -> QuerySet[Step]:
    return (
        Step.objects.select_for_update()
        .select_related("order")
        .filter(order_id=order_id, name=name)
    )


def steps_for_update(*, order_id: int) -> QuerySet[Step]:
    return Step.objects.select_for_update().filter(order_id=order_id).order_by("position")


def step_by_pk_for_update(*, pk: int) -> QuerySet[Step]:
    return Step.objects.select_for_update().select_related("order").filter(pk=pk)
