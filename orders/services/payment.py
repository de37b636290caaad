from typing import Any

import partners
from orders.models import Order
from orders.selectors import step_key_age_s
from orders.services.orders import order_mark_paid


def order_payment_capture(order: Order) -> dict[str, Any]:
    """Capture the order's payment once (the gateway dedupes by idempotency key)."""
    capture_id = partners.payment_capture(
        order_number=order.number,
        amount_cents=order.total_cents,
        currency=order.currency,
        payment_token=order.payment_token,
    )
    return _captured(order, capture_id)


def order_payment_capture_settle(order: Order) -> dict[str, Any] | None:
    """After a capture whose answer was lost: the gateway's capture under the order's
    key, recorded as the answer would have been; None if it captured nothing."""
    capture_id = partners.payment_capture_find(
        order_number=order.number,
        key_age_s=step_key_age_s(order_id=order.pk, name="payment_capture"),
        amount_cents=order.total_cents,
    )
    return None if capture_id is None else _captured(order, capture_id)


def _captured(order: Order, capture_id: str) -> dict[str, Any]:
    order_mark_paid(order_id=order.pk, capture_id=capture_id)
    return {"capture_id": capture_id}


def order_payment_refund(order: Order) -> dict[str, Any]:
    """Refund a cancelled order's capture, once. It exists only once the capture step has
    finished with a capture in place or maybe in place: the gateway, asked by the
    capture's key, says which when the order has no capture recorded."""
    order.refresh_from_db(fields=["capture_id"])
    if not order.capture_id:
        capture_id = partners.effect_find(
            partners.payment_capture_find,
            order_number=order.number,
            key_age_s=step_key_age_s(order_id=order.pk, name="payment_capture"),
            amount_cents=order.total_cents,
        )
        if capture_id is None:
            return {"skipped": "nothing was captured"}
        order_mark_paid(order_id=order.pk, capture_id=capture_id)  # kept: it is cancelled
        order.capture_id = capture_id
    refund_id = partners.payment_refund(
        order_number=order.number, capture_id=order.capture_id, amount_cents=order.total_cents
    )
    return {"refund_id": refund_id}


def order_payment_refund_settle(order: Order) -> dict[str, Any] | None:
    """After a refund whose answer was lost: the gateway's refund under the order's key
    (of the order's capture in full); None if it refunded nothing, or nothing can have been
    refunded: the order has no capture recorded, which the refund records before it sends."""
    order.refresh_from_db(fields=["capture_id"])
    if not order.capture_id:
        return None
    refund_id = partners.payment_refund_find(
        order_number=order.number,
        key_age_s=step_key_age_s(order_id=order.pk, name="payment_refund"),
        capture_id=order.capture_id,
        amount_cents=order.total_cents,
    )
    return None if refund_id is None else {"refund_id": refund_id}
