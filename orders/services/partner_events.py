"""What the partners' events do to an order (the webhooks app calls these with the order's
row locked, in event-time order). Each is idempotent: applying an event twice, or an older
event after a newer one, changes nothing the second time."""

from datetime import datetime, timedelta

from django.conf import settings

from orders.models import Discrepancy, Dispute, Order
from orders.services.follow_ups import review_request_reschedule

State = Order.DeliveryState
# Where a parcel may go from each state. Anything goes before the parcel is delivered (a
# carrier's scans come in any order, and an exception is often followed by a delivery);
# delivered only becomes returned; returned is the end.
_NEXT = {
    State.DELIVERED: {State.RETURNED},
    State.RETURNED: set(),
}


def order_delivery_record(*, order: Order, state: str, at: datetime) -> bool:
    """Record what the carrier says happened to the parcel at `at`; return whether the
    order's delivery state changed. An event older than the one the state came from
    leaves it as it is (a "delivered" that arrived before "in transit" stays delivered)."""
    if order.delivery_event_at is not None and at <= order.delivery_event_at:
        return False
    allowed = _NEXT.get(order.delivery_state)
    if allowed is not None and state not in allowed:
        return False
    order.delivery_state, order.delivery_event_at = state, at
    fields = ["delivery_state", "delivery_event_at", "updated_at"]
    if state == State.DELIVERED:
        order.delivered_at = at
        fields.append("delivered_at")
        review_request_reschedule(
            order_id=order.pk,
            due_at=at + timedelta(days=settings.REVIEW_REQUEST_AFTER_DELIVERY_DAYS),
        )
    order.save(update_fields=fields)
    return True


def _discrepancy_open(*, kind: str, order: Order, capture_id: str, details: str) -> None:
    Discrepancy.objects.bulk_create(
        [Discrepancy(kind=kind, order_number=order.number, capture_id=capture_id, details=details)],
        ignore_conflicts=True,  # one open discrepancy per kind, order and capture
    )


def order_capture_failed_record(*, order: Order, capture_id: str, reason: str) -> bool:
    """The gateway says a capture failed. After we recorded the payment as taken this is a
    discrepancy for ops to settle with the gateway, never a silent change of the order;
    before, the payment step is still finding out itself and decides. Returns whether a
    discrepancy was opened."""
    if order.status not in Order.PAID_STATUSES:
        return False
    return _discrepancy_open(
        kind=Discrepancy.Kind.CAPTURE_FAILED_LATE,
        order=order,
        capture_id=capture_id,
        details=f"The gateway reported capture {capture_id or '(no id)'} failed ({reason}) "
        f"after the order was recorded as {order.status} with capture {order.capture_id}.",
    )


def order_refund_record(*, order: Order, capture_id: str, amount_cents: int | None) -> bool:
    """The gateway says a refund completed: expected for a cancelled order (we asked for
    it); otherwise a discrepancy. Returns whether a discrepancy was opened."""
    if order.status == Order.Status.CANCELLED:
        return False
    amount = f"{amount_cents} cents" if amount_cents is not None else "an amount"
    return _discrepancy_open(
        kind=Discrepancy.Kind.REFUND_UNREQUESTED,
        order=order,
        capture_id=capture_id,
        details=f"The gateway refunded {amount} of capture {capture_id or order.capture_id} "
        f"of an order that is {order.status}.",
    )


def order_dispute_record(
    *,
    order: Order,
    dispute_id: str,
    status: str,
    at: datetime,
    reason: str = "",
    amount_cents: int | None = None,
    outcome: str = "",
) -> bool:
    """Open or close a dispute as the gateway says at `at`; an older event than the one
    the dispute's status came from changes nothing. Returns whether it changed."""
    dispute, created = Dispute.objects.select_for_update().get_or_create(
        dispute_id=dispute_id, defaults={"order": order, "status": status, "event_at": at}
    )
    if not created and at <= dispute.event_at:
        return False
    dispute.status, dispute.event_at = status, at
    if status == Dispute.Status.OPEN:
        dispute.opened_at = at
        dispute.reason = reason[:200] or dispute.reason
        dispute.amount_cents = amount_cents if amount_cents is not None else dispute.amount_cents
    else:
        dispute.closed_at = at
        dispute.outcome = outcome[:50]
    dispute.save()
    return True
