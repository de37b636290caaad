from dataclasses import dataclass
from typing import Any

from amqp.exceptions import ChannelError
from django.db.models import Min, Prefetch
from django.utils import timezone

from config.celery import app as celery_app
from config.queues import QUEUE_NAMES
from orders.models import Order, Step


def order_get_by_token(*, token: str) -> Order | None:
    if "\x00" in token:
        return None  # no token has one, and PostgreSQL refuses it in a query
    return (
        Order.objects.select_related("invoice", "shipment")
        .prefetch_related("lines", Prefetch("steps", queryset=Step.objects.order_by("position")))
        .filter(token=token)
        .first()
    )


def _iso(value) -> str | None:
    return value.isoformat() if value else None


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
        "steps": [
            {
                "name": step.name,
                "queue": step.queue,
                "status": step.status,
                "attempts": step.attempts,
                "last_error": step.last_error,
                "queued_at": _iso(step.queued_at),
                "started_at": _iso(step.started_at),
                "retry_at": _iso(step.retry_at),
                "finished_at": _iso(step.finished_at),
            }
            for step in order.steps.all()
        ],
        "invoice_url": f"/orders/{order.token}/invoice.pdf" if invoice else None,
        "tracking_number": shipment.tracking_number if shipment else None,
    }


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int  # messages waiting in the broker
    oldest_wait_s: float  # age of the oldest step queued on it, from the step records


def queue_stats() -> list[QueueStats]:
    """Depth of each queue (from the broker) and its oldest waiting step (from the database)."""
    now = timezone.now()
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
            oldest_wait_s=(now - oldest[name]).total_seconds() if oldest.get(name) else 0.0,
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
