from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amqp.exceptions import ChannelError
from celery import current_app as celery_app
from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Prefetch, Q, QuerySet
from django.db.models.functions import Now
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.text import smart_split, unescape_string_literal

from config.queues import QUEUE_NAMES
from engine.liveness import database_now, queued_age_s
from orders.models import Order, OrderLine, Step

# What the admin's order search box looks in; an export of a search does the same.
ORDER_SEARCH_FIELDS = ("number", "email", "capture_id", "erp_reference")
_CANCEL_KEY_SALT = "shopflow.orders.cancel-key"


def order_get_by_token(*, token: str) -> Order | None:
    if "\x00" in token:
        return None  # no token has one, and PostgreSQL refuses it in a query
    return (
        Order.objects.select_related("invoice", "shipment")
        .prefetch_related("lines", Prefetch("steps", queryset=Step.objects.order_by("position")))
        .filter(token=token)
        .first()
    )


def order_cancel_key(*, order: Order) -> str:
    """The order's cancel key: sent only in the confirmation email, never with the token.

    Derived from the token with the server's SECRET_KEY, so the database does not hold it
    and whoever can read the order (its token) cannot cancel it.
    """
    return salted_hmac(_CANCEL_KEY_SALT, order.token).hexdigest()


def order_cancel_key_check(*, order: Order, key: str) -> bool:
    """Whether `key` is the order's cancel key (under the current or a fallback SECRET_KEY)."""
    return key.isascii() and any(
        constant_time_compare(
            key, salted_hmac(_CANCEL_KEY_SALT, order.token, secret=secret).hexdigest()
        )
        for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    )


def _iso(value) -> str | None:
    return value.isoformat() if value else None


# The steps as the customer's order page and the API name them.
CUSTOMER_STEP_NAMES = {
    "payment_capture": "Payment",
    "confirmation_email_send": "Confirmation email",
    "erp_sync": "Sent to the warehouse",
    "invoice_render": "Invoice",
    "label_purchase": "Shipping label",
    "payment_refund": "Refund",
    "erp_cancel": "Warehouse order cancelled",
    "label_void": "Shipping label voided",
    "cancellation_email_send": "Cancellation email",
    "payment_failed_email_send": "Payment failed email",
}


def order_status_payload(*, order: Order) -> dict[str, Any]:
    """The order as the customer and the integrator see it: status, lines and steps."""
    invoice = getattr(order, "invoice", None)
    shipment = getattr(order, "shipment", None)
    return {
        "number": order.number,
        "status": order.status,
        "email": order.email,
        "currency": order.currency,
        "total_cents": order.total_cents,
        "created_at": _iso(order.created_at),
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
            }
            for line in order.lines.all()
        ],
        # Each step under its name for customers and its state; error texts, queues and
        # attempts are the staff's (Admin › Orders), and steps with no name here (analytics)
        # are none of the customer's business.
        "steps": [
            {
                "step": step.name,
                "name": CUSTOMER_STEP_NAMES[step.name],
                "status": step.status,
                "started_at": _iso(step.started_at),
                "retry_at": _iso(step.retry_at),
                "finished_at": _iso(step.finished_at),
            }
            for step in order.steps.all()
            if step.name in CUSTOMER_STEP_NAMES
        ],
        "invoice_url": f"/orders/{order.token}/invoice.pdf" if invoice else None,
        "tracking_number": shipment.tracking_number if shipment else None,
        # What the carrier last reported (webhooks/), beside the pipeline's status.
        "delivery": {
            "state": order.delivery_state or None,
            "name": order.get_delivery_state_display(),
            "updated_at": _iso(order.delivery_event_at),
            "delivered_at": _iso(order.delivered_at),
        },
    }


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int  # messages waiting in the broker
    oldest_wait_s: float  # age of the oldest step queued on it, from the step records
    max_wait_s: float | None  # the queue's promise (QUEUE_MAX_WAIT_S); None: it has none

    @property
    def late(self) -> bool:
        """Its oldest waiting step has waited past the queue's promise."""
        return self.max_wait_s is not None and self.oldest_wait_s > self.max_wait_s


def step_key_age_s(*, order_id: int, name: str) -> float | None:
    """Seconds, at most, since the order's step first sent its partner call's key: since
    the step was first queued (its first attempt came after), on the database's clock.
    None when it never was or its record is gone (the cleanup deletes old steps): the
    key may be long forgotten (partners.key_retained)."""
    found = (
        Step.objects.filter(order_id=order_id, name=name)
        .annotate(db_now=Now())
        .values_list("queued_at", "db_now")
        .first()
    )
    return None if found is None else queued_age_s(found[0], now=found[1])


def queue_stats() -> list[QueueStats]:
    """Depth of each queue (from the broker) and its oldest waiting step (from the database),
    its age from the step's first queued_at on the database's clock."""
    now = database_now()
    oldest = dict(
        Step.objects.filter(status=Step.Status.QUEUED)
        .values("queue")
        .annotate(oldest=Min("queued_at"))
        .values_list("queue", "oldest")
    )
    with celery_app.connection_for_read() as connection:
        depths = {name: _queue_depth(connection, name) for name in QUEUE_NAMES}
    return [
        QueueStats(
            name=name,
            depth=depths[name],
            oldest_wait_s=queued_age_s(oldest.get(name), now=now) or 0.0,
            max_wait_s=settings.QUEUE_MAX_WAIT_S.get(name),
        )
        for name in QUEUE_NAMES
    ]


def _queue_depth(connection, name: str) -> int:
    # A channel per queue: on AMQP a failed passive declare closes its channel.
    channel = connection.channel()
    try:
        return channel.queue_declare(name, passive=True).message_count
    except ChannelError:
        return 0  # never declared: no worker has consumed it and nothing was sent to it
    finally:
        channel.close()


def orders_for_export(*, filters: dict[str, Any]) -> QuerySet[Order]:
    """The orders matching an export's validated filter (orders/services/exports.py), by id."""
    orders = Order.objects.all()
    if "ids" in filters:
        orders = orders.filter(pk__in=filters["ids"])
    if "status" in filters:
        orders = orders.filter(status__in=filters["status"])
    if "channel" in filters:
        orders = orders.filter(channel__in=filters["channel"])
    if "created_from" in filters:
        orders = orders.filter(created_at__gte=datetime.fromisoformat(filters["created_from"]))
    if "created_to" in filters:
        orders = orders.filter(created_at__lt=datetime.fromisoformat(filters["created_to"]))
    if "email_contains" in filters:
        orders = orders.filter(email__icontains=filters["email_contains"])
    if "sku" in filters:
        orders = orders.filter(
            Exists(OrderLine.objects.filter(order=OuterRef("pk"), sku=filters["sku"]))
        )
    if "search" in filters:
        # As the admin searches: every word must match one of the fields.
        for word in smart_split(filters["search"]):
            if word[0] in "\"'" and word[0] == word[-1] and len(word) > 1:
                word = unescape_string_literal(word)
            orders = orders.filter(
                Q.create([(f"{field}__icontains", word) for field in ORDER_SEARCH_FIELDS], Q.OR)
            )
    return orders.order_by("pk")
