"""Concurrent checkouts on PostgreSQL: no oversell, and one order per idempotency key."""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from orders.models import Order, Step
from shop.models import Product
from tests.factories import checkout_body, product_create

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def needs_postgres():
    assert connection.vendor == "postgresql", (
        "run with DATABASE_URL pointing at PostgreSQL (make test does)"
    )


def checkout_all_at_once(bodies: list[dict], headers: list[dict]) -> list:
    """POST every checkout from its own thread and connection, released together."""
    barrier = threading.Barrier(len(bodies))

    def one(body: dict, header: dict):
        try:
            barrier.wait()
            return Client().post(
                "/api/v1/checkout",
                data=json.dumps(body),
                content_type="application/json",
                headers=header,
            )
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies, headers))


def test_fifty_concurrent_checkouts_for_ten_units_sell_exactly_ten():
    product = product_create(stock=10)

    responses = checkout_all_at_once([checkout_body((product.sku, 1))] * 50, [{}] * 50)

    assert Counter(r.status_code for r in responses) == Counter({201: 10, 409: 40})
    assert Order.objects.count() == 10
    assert Step.objects.count() == 60
    product.refresh_from_db()
    assert product.stock == 0
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.json() == {"errors": {"items[0].quantity": [f"Only 0 left of '{product.sku}'."]}}


def test_concurrent_retries_with_one_idempotency_key_create_one_order():
    product = product_create(stock=100)

    responses = checkout_all_at_once(
        [checkout_body((product.sku, 2))] * 10, [{"Idempotency-Key": "double-click-1"}] * 10
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["number"] for r in responses}) == 1
    assert Order.objects.count() == 1
    assert Product.objects.get(pk=product.pk).stock == 98
