"""The database work of one checkout, counted: a change that adds a query fails here."""

import json
import uuid

import pytest

from config.celery import app
from orders.models import Order
from tests.factories import checkout_body, product_create


@pytest.fixture
def empty_queues():
    """The test publishes the pipeline for real; nothing of it may reach a later test."""
    app.control.purge()
    yield
    app.control.purge()


# transaction=True: the checkout commits for real, so the count has the BEGIN and COMMIT a
# production request sends (no test savepoints) and the publish that runs after the commit.
@pytest.mark.django_db(transaction=True)
def test_checkout_of_a_two_line_order_takes_eleven_queries_with_the_publish_after_commit(
    client, empty_queues, django_assert_num_queries
):
    mug = product_create(stock=5)
    tee = product_create(stock=5)
    body = checkout_body((mug.sku, 2), (tee.sku, 1))

    # 1 replay lookup of the Idempotency-Key; BEGIN; 1 product read; 2 stock updates (one
    # per line, in id order); order, lines, steps and key inserts; COMMIT; then the payment
    # step, created ready, marked published once its message is out.
    with django_assert_num_queries(11) as queries:
        response = client.post(
            "/api/v1/checkout",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )

    assert response.status_code == 201
    assert [query["sql"].split(" ", 1)[0] for query in queries.captured_queries] == [
        "SELECT", "BEGIN", "SELECT", "UPDATE", "UPDATE", "INSERT", "INSERT", "INSERT", "INSERT",
        "COMMIT", "UPDATE",
    ]  # fmt: skip
    order = Order.objects.get(number=response.json()["number"])
    assert order.steps.get(name="payment_capture").status == "queued"
