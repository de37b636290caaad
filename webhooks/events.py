"""The events each partner sends, what their bodies must hold, and what each does to an
order (orders/services/partner_events.py). A type not listed is stored and ignored."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from orders.models import Dispute, Order
from orders.services.partner_events import (
    order_capture_failed_record,
    order_delivery_record,
    order_dispute_record,
    order_refund_record,
)


class EventInvalid(Exception):
    """A signed body we cannot store: {field: [reasons]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class ParsedEvent:
    event_id: str
    type: str
    occurred_at: datetime
    order_number: str
    data: dict[str, Any]
    known: bool


Handler = Callable[[Order, ParsedEvent], str]


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    return value if isinstance(value, str) else ""


def _cents(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _delivery(state: str) -> Handler:
    def handle(order: Order, event: ParsedEvent) -> str:
        if order_delivery_record(order=order, state=state, at=event.occurred_at):
            return f"delivery state {state}"
        state_now = order.delivery_state or "not shipped"
        return f"no change: the order is {state_now} since a later event"

    return handle


def _capture_succeeded(order: Order, event: ParsedEvent) -> str:
    # The payment step records the capture itself (its answer, or asking the gateway by
    # its key); a late confirmation changes nothing.
    return f"confirmed: the order is {order.status}"


def _capture_failed(order: Order, event: ParsedEvent) -> str:
    capture_id = _text(event.data, "capture_id")
    if order_capture_failed_record(
        order=order, capture_id=capture_id, reason=_text(event.data, "reason")[:200]
    ):
        return "discrepancy opened: capture failed after we recorded it"
    return f"no change: the order is {order.status}; its payment step decides"


def _refund_completed(order: Order, event: ParsedEvent) -> str:
    if order_refund_record(
        order=order,
        capture_id=_text(event.data, "capture_id"),
        amount_cents=_cents(event.data, "amount_cents"),
    ):
        return "discrepancy opened: refund of an order not cancelled"
    return "confirmed: refund of a cancelled order"


def _dispute(status: str) -> Handler:
    def handle(order: Order, event: ParsedEvent) -> str:
        changed = order_dispute_record(
            order=order,
            dispute_id=_text(event.data, "dispute_id"),
            status=status,
            at=event.occurred_at,
            reason=_text(event.data, "reason"),
            amount_cents=_cents(event.data, "amount_cents"),
            outcome=_text(event.data, "outcome"),
        )
        return f"dispute {status}" if changed else "no change: the dispute has a later event"

    return handle


State = Order.DeliveryState
HANDLERS: dict[str, dict[str, Handler]] = {
    "payment": {
        "capture.succeeded": _capture_succeeded,
        "capture.failed": _capture_failed,
        "refund.completed": _refund_completed,
        "dispute.opened": _dispute(Dispute.Status.OPEN),
        "dispute.closed": _dispute(Dispute.Status.CLOSED),
    },
    "carrier": {
        "label.printed": _delivery(State.LABEL_PRINTED),
        "shipment.in_transit": _delivery(State.IN_TRANSIT),
        "shipment.out_for_delivery": _delivery(State.OUT_FOR_DELIVERY),
        "shipment.exception": _delivery(State.EXCEPTION),
        "shipment.delivered": _delivery(State.DELIVERED),
        "shipment.returned": _delivery(State.RETURNED),
    },
}
# Fields a known type needs beyond the order, each a non-empty string.
REQUIRED = {"dispute.opened": ("dispute_id",), "dispute.closed": ("dispute_id",)}
_ID_CHARS = 100


def _identifier(value: Any, *, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def event_parse(*, partner: str, payload: Any) -> ParsedEvent:
    """Check a signed body's fields; raise EventInvalid naming each bad one."""
    if not isinstance(payload, dict):
        raise EventInvalid({"body": ["Expected a JSON object."]})
    errors: dict[str, list[str]] = {}
    event_id, kind = payload.get("id"), payload.get("type")
    if not _identifier(event_id, limit=_ID_CHARS):
        errors["id"] = [f"Required: a printable string of at most {_ID_CHARS} characters."]
    if not _identifier(kind, limit=64):
        errors["type"] = ["Required: a printable string of at most 64 characters."]
    raw_time = payload.get("occurred_at")
    occurred_at = parse_datetime(raw_time) if isinstance(raw_time, str) else None
    if occurred_at is None or occurred_at.tzinfo is None:
        errors["occurred_at"] = ["Required: an ISO 8601 time with its offset."]
    data = payload.get("data", {})
    if not isinstance(data, dict):
        errors["data"] = ["Expected a JSON object."]
        data = {}
    known = isinstance(kind, str) and kind in HANDLERS[partner]
    order_number = data.get("order", "")
    if known:
        if not _identifier(order_number, limit=32):
            errors["data.order"] = ["Required: the order number (at most 32 characters)."]
        for name in REQUIRED.get(kind, ()):
            if not _identifier(data.get(name), limit=100):
                errors[f"data.{name}"] = ["Required: a printable string of at most 100 characters."]
    elif not _identifier(order_number, limit=32):
        order_number = ""  # an unknown type is stored as it is; no order to serialise on
    if errors:
        raise EventInvalid(errors)
    return ParsedEvent(event_id, kind, occurred_at, order_number, data, known)
