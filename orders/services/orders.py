import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from engine.compensation import undos_create
from engine.dispatch import steps_dispatch_on_commit
from engine.pipeline import StepSpec
from orders.lock_objects import order_for_update, steps_for_update
from orders.models import Order, OrderLine, Step
from orders.pipeline import (
    CANCELLATION,
    FORWARD_NAMES,
    ORDER_PIPELINE,
    PAYMENT_FAILURE,
    PIPELINE,
    POSITION,
)
from orders.services.follow_ups import follow_ups_cancel, follow_ups_schedule
from orders.signals import order_stock_released

# No 0/O or 1/I: order numbers get read out over the phone.
_NUMBER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# Fulfilment begins with the ERP sync: its first attempt may already have handed the
# order to the warehouse (a timed-out call can have arrived), and the label follows it.
FULFILMENT_STEP = "erp_sync"


class OrderNotCancellable(Exception):
    pass


class OrderNotReturnable(Exception):
    pass


def order_number_new() -> str:
    return "SF-" + "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(8))


def order_create(
    *,
    email: str,
    shipping_address: dict[str, Any],
    payment_token: str,
    currency: str,
    lines: list[tuple[Any, int]],  # (shop.Product, quantity)
    channel: str = Order.Channel.API,
) -> Order:
    """Create the order, its lines and one pending step per pipeline step.

    Call inside the checkout transaction, after the stock has been reserved.
    """
    order = Order.objects.create(
        number=order_number_new(),
        token=secrets.token_urlsafe(24),
        email=email,
        shipping_address=shipping_address,
        payment_token=payment_token,
        currency=currency,
        channel=channel,
        total_cents=sum(product.price_cents * quantity for product, quantity in lines),
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product=product,
            sku=product.sku,
            name=product.name,
            quantity=quantity,
            unit_price_cents=product.price_cents,
        )
        for product, quantity in lines
    )
    # The payment is ready at once (the checkout's commit publishes it); the others
    # wait for the steps before them (engine/dispatch.py).
    steps_create(order=order, specs=PIPELINE, ready=(ORDER_PIPELINE.root,))
    return order


def steps_create(*, order: Order, specs: tuple[StepSpec, ...], ready: tuple[str, ...]) -> None:
    """Add step records, pending, or ready to publish for the steps named in `ready`;
    steps the order already has are left as they are."""
    Step.objects.bulk_create(
        (
            Step(
                order=order,
                name=spec.name,
                position=POSITION[spec.name],
                queue=spec.queue,
                **(
                    {"status": Step.Status.QUEUED, "queued_at": Now()} if spec.name in ready else {}
                ),
            )
            for spec in specs
        ),
        ignore_conflicts=True,
    )


@transaction.atomic
def order_mark_paid(*, order_id: int, capture_id: str) -> None:
    """Record the capture; the order becomes paid unless it was cancelled meanwhile
    (then the capture is kept so the refund can undo it)."""
    order = order_for_update(order_id=order_id).get()
    order.capture_id = capture_id
    if order.status == Order.Status.PLACED:
        order.status = Order.Status.PAID
        order.stock_state = Order.StockState.COMMITTED
    order.save(update_fields=["capture_id", "status", "stock_state", "updated_at"])


def _stock_release(order: Order) -> None:
    """Give the order's units back to stock, once. Call with the order row locked.

    The shop keeps the stock: its receiver adds the lines' units back, in this
    transaction (shop/receivers.py)."""
    if order.stock_state == Order.StockState.RELEASED:
        return
    order_stock_released.send(sender=Order, order=order)
    order.stock_state = Order.StockState.RELEASED
    order.save(update_fields=["stock_state", "updated_at"])


def _order_end(
    order: Order,
    *,
    status: str,
    reason: str,
    followups: tuple[StepSpec, ...],
    release_stock: bool = True,
) -> None:
    """End an order: stop its waiting steps, release its stock (unless it may have
    shipped), add and dispatch follow-ups, and the undo of every effect in place.

    Every waiting forward step stops, started or not: one that may have had its effect
    (effect_unknown) gets its undo now, which asks the partner by key what is there. A
    running step is left to finish; its undo is made when it does (the step hooks), and
    a step that starts later sees the order's status and stops. The follow-ups that undo
    a step are made by state (engine/compensation.py), never in advance.
    """
    order.status = status
    order.save(update_fields=["status", "updated_at"])
    # Every step row locked: a run's outcome write waits for this commit, so either we
    # see its final state here or its hook sees the order ended (and makes the undo).
    list(steps_for_update(order_id=order.pk).values_list("pk", flat=True))
    Step.objects.filter(order=order, name__in=FORWARD_NAMES, status__in=Step.WAITING).update(
        status=Step.Status.CANCELLED, last_error=f"cancelled: {reason}", finished_at=timezone.now()
    )
    if release_stock:
        _stock_release(order)
    follow_ups_cancel(order_id=order.pk)
    told = tuple(spec for spec in followups if not spec.undoes)
    names = tuple(spec.name for spec in told)
    steps_create(order=order, specs=told, ready=names)
    steps_dispatch_on_commit(subject_id=order.pk, names=names)
    undos_create(subject_id=order.pk)


@transaction.atomic
def order_payment_fail(*, order_id: int) -> bool:
    """Mark the order payment_failed and tell the customer, once.

    Only an order still waiting for its payment: one that ended meanwhile (cancelled:
    its customer was told that) never changes to another ended status.
    Returns whether this call made the change (a repeat finds it done).
    """
    order = order_for_update(order_id=order_id).get()
    if order.status != Order.Status.PLACED:
        return False
    _order_end(
        order,
        status=Order.Status.PAYMENT_FAILED,
        reason="payment failed",
        followups=PAYMENT_FAILURE,
    )
    return True


@transaction.atomic
def order_unpaid_expire(*, order_id: int, now: datetime, deadline_s: float) -> bool:
    """Cancel an order still unpaid `deadline_s` after it was placed, releasing its stock,
    once; the cancel's follow-ups refund a capture that lands after all.

    Returns whether this call ended it (paid, ended or younger meanwhile: no)."""
    order = order_for_update(order_id=order_id).get()
    if order.status != Order.Status.PLACED or order.created_at >= now - timedelta(
        seconds=deadline_s
    ):
        return False
    within = f"{deadline_s / 60:g} minutes" if deadline_s >= 60 else f"{deadline_s:g} seconds"
    order.cancel_reason = f"Payment not received within {within}."
    order.cancelled_at = now
    order.save(update_fields=["cancel_reason", "cancelled_at"])
    _order_end(
        order, status=Order.Status.CANCELLED, reason="payment deadline", followups=CANCELLATION
    )
    return True


def order_fulfilment_begun(*, order_id: int) -> bool:
    """Whether the order went to the warehouse: its ERP sync has had an attempt (started,
    which a dead letter's retry does not forget, unlike its attempts)."""
    attempted = Q(attempts__gt=0) | Q(started_at__isnull=False)
    return Step.objects.filter(attempted, order_id=order_id, name=FULFILMENT_STEP).exists()


@transaction.atomic
def order_cancel(*, order_id: int, reason: str = "", by_staff: bool = False) -> tuple[Order, bool]:
    """Cancel an order and compensate what its partners already did, once.

    The customer may cancel until fulfilment begins, that is until the ERP sync's first
    attempt (FULFILMENT_STEP); after that only staff may (`by_staff`): the payment is
    refunded and the ERP order and label are undone where the partners still can, but
    the units stay off sale, since they may have shipped; they come back to stock when
    staff record the return as received (order_return_receive).

    Returns the order and whether this call cancelled it (a repeat changes nothing).
    """
    order = order_for_update(order_id=order_id).get()
    if order.status == Order.Status.CANCELLED:
        return order, False
    if order.status == Order.Status.PAYMENT_FAILED:
        raise OrderNotCancellable("An order whose payment failed cannot be cancelled.")
    shipped = order_fulfilment_begun(order_id=order.pk)
    if shipped and not by_staff:
        raise OrderNotCancellable(
            "The order has been sent to the warehouse and can no longer be cancelled; "
            "contact us to return it."
        )
    order.cancel_reason = reason
    order.cancelled_at = timezone.now()
    order.save(update_fields=["cancel_reason", "cancelled_at"])
    _order_end(
        order,
        status=Order.Status.CANCELLED,
        reason="order cancelled",
        followups=CANCELLATION,
        release_stock=not shipped,
    )
    return order, True


@transaction.atomic
def order_return_receive(*, order_id: int) -> bool:
    """Put a cancelled order's returned units back on sale, once; staff record the return.

    Returns whether this call restocked them (a repeat finds them back already).
    """
    order = order_for_update(order_id=order_id).get()
    if order.status != Order.Status.CANCELLED:
        raise OrderNotReturnable("Only a cancelled order's goods can be received back.")
    if order.stock_state == Order.StockState.RELEASED:
        return False
    _stock_release(order)
    return True


def order_status_refresh(*, order_id: int) -> str | None:
    """Complete the order when every step succeeded; flag it when one failed for good.
    Returns the order's status as it was before (None: no such order), which tells the
    step hooks whether it had ended."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        before, changed_to = _status_refresh_statement(order_id=order_id, now=now)
    else:
        before, changed_to = _status_refresh_queries(order_id=order_id, now=now)
    if changed_to == Order.Status.COMPLETED:
        follow_ups_schedule(order_id=order_id, completed_at=now)
    return before


# One statement, not three: a refresh follows every step's outcome, and each round trip
# costs the worker CPU (bench/throughput.py). The rest of the statement sees the order as
# it was before its UPDATE (a data-modifying CTE's change is not visible to it).
_REFRESH_SQL = """
WITH steps AS (
    SELECT bool_and(status = %(succeeded)s) AS done, bool_or(status = %(failed)s) AS failed
    FROM {step} WHERE order_id = %(order)s AND name = ANY(%(names)s)
), target AS (
    SELECT CASE WHEN done THEN %(completed)s WHEN failed THEN %(attention)s
                ELSE %(paid)s END AS status
    FROM steps
), changed AS (
    UPDATE {order} o SET status = target.status, updated_at = %(now)s FROM target
    WHERE o.id = %(order)s AND o.status = ANY(%(refreshed)s) AND o.status <> target.status
    RETURNING o.status
)
SELECT (SELECT status FROM {order} WHERE id = %(order)s), (SELECT status FROM changed)
"""


def _status_refresh_statement(*, order_id: int, now: datetime) -> tuple[str | None, str | None]:
    """(status before, status it changed to or None), in one statement (PostgreSQL)."""
    sql = _REFRESH_SQL.strip().format(step=Step._meta.db_table, order=Order._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "order": order_id,
                "names": list(FORWARD_NAMES),
                "succeeded": str(Step.Status.SUCCEEDED),
                "failed": str(Step.Status.FAILED),
                "completed": str(Order.Status.COMPLETED),
                "attention": str(Order.Status.NEEDS_ATTENTION),
                "paid": str(Order.Status.PAID),
                "refreshed": [str(Order.Status.PAID), str(Order.Status.NEEDS_ATTENTION)],
                "now": now,
            },
        )
        return cursor.fetchone()


def _status_refresh_queries(*, order_id: int, now: datetime) -> tuple[str | None, str | None]:
    """The same with the ORM, for the databases without data-modifying CTEs (SQLite)."""
    before = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
    # order_by(): the steps' default order would join the order for nothing.
    statuses = set(
        Step.objects.filter(order_id=order_id, name__in=FORWARD_NAMES)
        .order_by()
        .values_list("status", flat=True)
    )
    if statuses == {Step.Status.SUCCEEDED}:
        new_status = Order.Status.COMPLETED
    elif Step.Status.FAILED in statuses:
        new_status = Order.Status.NEEDS_ATTENTION
    else:
        new_status = Order.Status.PAID
    changed = (
        Order.objects.filter(
            pk=order_id, status__in=[Order.Status.PAID, Order.Status.NEEDS_ATTENTION]
        )
        .exclude(status=new_status)
        .update(status=new_status, updated_at=now)
    )
    return before, new_status if changed else None
