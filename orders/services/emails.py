"""The order's emails to its customer, each owed once per order and kind."""

from typing import Any

from django.conf import settings

from notifications.models import OutboxEmail
from notifications.services import email_enqueue
from orders.models import Order
from orders.selectors import order_cancel_key


def order_email_send(*, order: Order, kind: str) -> dict[str, Any]:
    """Send the order's email of this kind exactly once through the outbox."""
    email = email_enqueue(
        key=f"order:{order.number}:{kind}",
        template=kind,
        to=order.email,
        context={
            "order": order,
            "lines": order.lines.order_by("pk"),
            "status_url": f"{settings.SHOP_BASE_URL}/orders/{order.token}/",
            "cancel_url": f"{settings.SHOP_BASE_URL}/api/v1/orders/{order.token}/cancel",
            "cancel_key": order_cancel_key(order=order),
        },
    )
    return {"email": email.pk, "sent_at": email.sent_at and email.sent_at.isoformat()}


def order_confirmation_email_send(order: Order) -> dict[str, Any]:
    return order_email_send(order=order, kind=OutboxEmail.Kind.ORDER_CONFIRMATION)


def order_cancellation_email_send(order: Order) -> dict[str, Any]:
    return order_email_send(order=order, kind=OutboxEmail.Kind.ORDER_CANCELLED)


def order_payment_failed_email_send(order: Order) -> dict[str, Any]:
    return order_email_send(order=order, kind=OutboxEmail.Kind.PAYMENT_FAILED)
