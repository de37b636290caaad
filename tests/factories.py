"""Small builders for the objects most tests need."""

import itertools
from typing import Any

from harness.rig import checkout_body
from shop.models import Product
from shop.services import CheckoutResult, checkout_parse, checkout_place

_skus = itertools.count(1)


def product_create(*, stock: int = 100, price_cents: int = 1000, sku: str | None = None) -> Product:
    sku = sku or f"SKU-{next(_skus):04d}"
    return Product.objects.create(
        sku=sku, name=f"Product {sku}", price_cents=price_cents, stock=stock
    )


def order_place(*items: tuple[Product, int], **overrides: Any) -> CheckoutResult:
    body = checkout_body(*((p.sku, q) for p, q in items), **overrides)
    return checkout_place(request=checkout_parse(body))


def run_pipeline(order) -> None:
    """Run every pipeline step of the order in this process, in pipeline order."""
    from fulfillment.tasks import purchase_label, render_invoice, sync_erp
    from orders.tasks import capture_payment, send_order_confirmation, track_analytics

    for task in (
        capture_payment,
        send_order_confirmation,
        sync_erp,
        render_invoice,
        purchase_label,
        track_analytics,
    ):
        task.apply(args=(order.pk,))
