from typing import Any

import partners
from orders.models import Order


def order_analytics_track(order: Order) -> dict[str, Any]:
    """Report the purchase to the analytics collector (deduped by idempotency key)."""
    lines = list(order.lines.values("sku", "quantity", "unit_price_cents"))
    partners.analytics_track(
        order_number=order.number,
        event="order_paid",
        properties={"revenue_cents": order.total_cents, "currency": order.currency, "lines": lines},
    )
    return {"event": "order_paid"}
