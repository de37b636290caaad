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
    from fulfillment.tasks import erp_sync, invoice_render, label_purchase
    from orders.tasks import analytics_track, confirmation_email_send, payment_capture

    for task in (
        payment_capture,
        confirmation_email_send,
        erp_sync,
        invoice_render,
        label_purchase,
        analytics_track,
    ):
        task.apply(args=(order.pk,))
