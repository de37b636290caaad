from typing import Any

from fulfillment.partners import payment_capture
from orders.models import Order
from orders.services.orders import order_mark_paid


def order_payment_capture(order: Order) -> dict[str, Any]:
    """Capture the order's payment once (the gateway dedupes by idempotency key)."""
    capture_id = payment_capture(
        order_number=order.number,
        amount_cents=order.total_cents,
        currency=order.currency,
        payment_token=order.payment_token,
    )
    order_mark_paid(order_id=order.pk, capture_id=capture_id)
    return {"capture_id": capture_id}
