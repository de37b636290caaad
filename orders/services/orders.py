import secrets
from typing import Any

from django.db import transaction
from django.db.models import F

from orders.lock_objects import order_for_update, steps_for_update
from orders.models import Order, OrderLine, Step
from orders.pipeline import PIPELINE
from shop.models import Product

# No 0/O or 1/I: order numbers get read out over the phone.
_NUMBER_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def order_number_new() -> str:
    return "SF-" + "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(8))


def order_create(
    *,
    email: str,
    shipping_address: dict[str, Any],
    payment_token: str,
    currency: str,
    lines: list[tuple[Product, int]],
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
    Step.objects.bulk_create(
        Step(order=order, name=spec.name, position=n, queue=spec.queue)
        for n, spec in enumerate(PIPELINE)
    )
    return order


@transaction.atomic
def order_mark_paid(*, order_id: int, capture_id: str) -> None:
    order_for_update(order_id=order_id).filter(status=Order.Status.PLACED).update(
        status=Order.Status.PAID,
        capture_id=capture_id,
        stock_state=Order.StockState.COMMITTED,
    )


@transaction.atomic
def order_payment_fail(*, order_id: int) -> bool:
    """Mark the order payment_failed, cancel its open steps and release its stock, once.

    Returns whether this call made the change (a repeat finds it done).
    """
    order = order_for_update(order_id=order_id).get()
    if order.status == Order.Status.PAYMENT_FAILED:
        return False
    order.status = Order.Status.PAYMENT_FAILED
    order.save(update_fields=["status", "updated_at"])
    steps_for_update(order_id=order_id).exclude(status__in=Step.FINISHED).update(
        status=Step.Status.CANCELLED, last_error="cancelled: payment failed"
    )
    if order.stock_state == Order.StockState.RESERVED:
        for line in order.lines.order_by("product_id"):
            Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.quantity)
        order.stock_state = Order.StockState.RELEASED
        order.save(update_fields=["stock_state"])
    return True


def order_status_refresh(*, order_id: int) -> None:
    """Complete the order when every step succeeded; flag it when one failed for good."""
    statuses = set(Step.objects.filter(order_id=order_id).values_list("status", flat=True))
    if statuses == {Step.Status.SUCCEEDED}:
        new_status = Order.Status.COMPLETED
    elif Step.Status.FAILED in statuses:
        new_status = Order.Status.NEEDS_ATTENTION
    else:
        return
    Order.objects.filter(
        pk=order_id, status__in=[Order.Status.PAID, Order.Status.NEEDS_ATTENTION]
    ).update(status=new_status)
