"""The synchronous checkout that bench/checkout.py measures against: with
CELERY_TASK_ALWAYS_EAGER every step runs inside the checkout request, each step's
success running the next ones where it publishes them."""

import json
from contextlib import contextmanager

import pytest

from config.celery import app
from orders.models import Order, Step
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.postgres


def test_a_synchronous_checkout_holds_at_most_one_broker_producer_at_a_time(
    transactional_db, sandbox, client, monkeypatch
):
    # A step's publish held a producer from the pool while the steps it published ran
    # inline, each holding one more: sixteen checkouts at once took every producer and
    # waited for each other's for ever (the baseline's server stopped answering).
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    app.loader.import_default_modules()  # every task known here, as bench/sync_wsgi.py does
    acquire, held, most = app.producer_or_acquire, [0], [0]

    @contextmanager
    def counted(producer=None):
        with acquire(producer) as taken:
            held[0] += 1
            most[0] = max(most[0], held[0])
            try:
                yield taken
            finally:
                held[0] -= 1

    monkeypatch.setattr(app, "producer_or_acquire", counted)
    product = product_create(stock=5)

    response = client.post(
        "/api/v1/checkout",
        data=json.dumps(checkout_body((product.sku, 1))),
        content_type="application/json",
    )

    assert response.status_code == 201, response.content
    order = Order.objects.get(number=response.json()["number"])
    assert set(Step.objects.filter(order=order).values_list("status", flat=True)) == {"succeeded"}
    assert most[0] <= 1
