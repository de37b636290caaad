"""How the order domain plugs into the step engine: the hooks ORDER_PIPELINE declares
(orders/pipeline.py). The engine records each step's outcome; these keep the order's
status in step with its steps."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from engine.compensation import undos_create
from orders.lock_objects import order_for_update
from orders.models import Order, Step
from orders.pipeline import FORWARD_NAMES, STEPS
from orders.services.orders import (
    order_payment_fail,
    order_status_refresh,
    order_unpaid_expire,
)


def order_step_succeeded(*, step: Step) -> None:
    ended = order_status_refresh(order_id=step.order_id) in Order.STOPPED_STATUSES
    _undos_if_ended(step, ended=ended)


def order_step_failed(*, step: Step) -> None:
    """A failed payment fails the whole order; any other step leaves it needing attention.

    A payment that failed with its capture possibly in place (a poison pill, a bug after
    the call) does not: the order stays placed with its dead letter, and unless a retry
    settles it the unpaid deadline cancels it, whose refund looks for the capture."""
    if STEPS[step.name].fails_subject:
        if not step.effect_unknown:
            order_payment_fail(order_id=step.order_id)
        ended = Order.objects.filter(pk=step.order_id, status__in=Order.STOPPED_STATUSES)
        _undos_if_ended(step, ended=ended.exists())
    else:
        ended = order_status_refresh(order_id=step.order_id) in Order.STOPPED_STATUSES
        _undos_if_ended(step, ended=ended)


def _undos_if_ended(step: Step, *, ended: bool) -> None:
    """A forward step that finished after its order ended: undo what it may have done.
    `ended` is read after the outcome was written: a cancel that saw the step still
    running had locked it, so the write waited for the cancel's commit and the read sees
    it."""
    if ended and step.name in FORWARD_NAMES:
        undos_create(subject_id=step.order_id)


def order_ended_for_step(*, name: str) -> Q | None:
    """A forward step of a cancelled order, or of one whose payment failed, must not start."""
    return Q(order__status__in=Order.STOPPED_STATUSES) if name in FORWARD_NAMES else None


def order_reopen_for_step(*, step: Step) -> str | None:
    """Before a dead letter runs again: refuse a forward step of an ended order, and put
    an order that needed attention back to paid."""
    order = order_for_update(order_id=step.order_id).get()
    if step.name in FORWARD_NAMES and order.status in Order.STOPPED_STATUSES:
        return f"the order is {order.status}"
    if order.status == Order.Status.NEEDS_ATTENTION:
        order.status = Order.Status.PAID
        order.save(update_fields=["status", "updated_at"])
    return None


def orders_settle(*, now: datetime) -> list[str]:
    """Bring up to date the orders left behind; return their numbers."""
    return orders_unpaid_expire(now=now) + orders_paid_refresh(now=now)


def orders_unpaid_expire(*, now: datetime) -> list[str]:
    """Cancel the orders whose payment has not succeeded within UNPAID_ORDER_DEADLINE_S,
    releasing their stock: an unpaid checkout, one the payment breaker keeps deferring
    included, must not hold stock for ever."""
    deadline_s = settings.UNPAID_ORDER_DEADLINE_S
    unpaid = (
        Order.objects.filter(
            status=Order.Status.PLACED, created_at__lt=now - timedelta(seconds=deadline_s)
        )
        .order_by("pk")
        .values_list("pk", "number")[: settings.RECONCILE_BATCH]
    )
    return [
        number
        for pk, number in unpaid
        if order_unpaid_expire(order_id=pk, now=now, deadline_s=deadline_s)
    ]


def orders_paid_refresh(*, now: datetime) -> list[str]:
    """Refresh paid orders whose forward steps have all finished: a worker killed between
    recording a step's outcome and refreshing its order left the order behind."""
    unfinished = Step.objects.filter(order=OuterRef("pk"), name__in=FORWARD_NAMES).exclude(
        status__in=Step.FINISHED
    )
    stuck = (
        Order.objects.filter(
            status=Order.Status.PAID,
            updated_at__lt=now - timedelta(seconds=settings.RECONCILE_PENDING_AFTER_S),
        )
        .exclude(Exists(unfinished))
        .order_by("pk")
        .values_list("pk", "number")[: settings.RECONCILE_BATCH]
    )
    settled = []
    for pk, number in stuck:
        order_status_refresh(order_id=pk)
        if Order.objects.filter(pk=pk).exclude(status=Order.Status.PAID).exists():
            settled.append(number)
    return settled
