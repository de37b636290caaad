"""Checkout and cancel are rate-limited per client address and per email (issue 15,
finding 4): one client cannot place orders without end to hold stock or send mail."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import Order
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.django_db


def post_checkout(client, body, address="203.0.113.7"):
    return client.post(
        "/api/v1/checkout",
        data=json.dumps(body),
        content_type="application/json",
        REMOTE_ADDR=address,
    )


def test_the_fourth_checkout_from_one_address_within_the_window_gets_429_with_retry_after(
    client, abuse_limits
):
    abuse_limits.RATE_LIMITS = {"checkout_address": "3/600"}
    product = product_create(stock=100)
    placed = [
        post_checkout(client, checkout_body((product.sku, 1), email=f"u{n}@example.com"))
        for n in range(3)
    ]

    refused = post_checkout(client, checkout_body((product.sku, 1), email="u9@example.com"))

    assert [r.status_code for r in placed] == [201, 201, 201]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 600
    assert refused.json() == {
        "errors": {
            "rate_limit": [
                "Too many checkouts from this address; "
                f"try again in {refused['Retry-After']} seconds."
            ]
        }
    }
    assert Order.objects.count() == 3
    product.refresh_from_db()
    assert product.stock == 97
    # Another address is not held up by this one.
    other = post_checkout(client, checkout_body((product.sku, 1)), address="198.51.100.1")
    assert other.status_code == 201


def test_checkouts_for_one_email_from_many_addresses_get_429_past_the_email_limit(
    client, abuse_limits
):
    abuse_limits.RATE_LIMITS = {"checkout_email": "2/3600"}
    product = product_create(stock=100)
    answers = [
        post_checkout(
            client,
            checkout_body((product.sku, 1), email="Victim@Example.com"),
            address=f"198.51.100.{n}",
        )
        for n in range(1, 4)
    ]

    assert [r.status_code for r in answers] == [201, 201, 429]
    assert 1 <= int(answers[2]["Retry-After"]) <= 3600
    assert answers[2].json()["errors"]["rate_limit"] == [
        "Too many checkouts for this email address; "
        f"try again in {answers[2]['Retry-After']} seconds."
    ]
    assert Order.objects.filter(email="victim@example.com").count() == 2


def test_the_web_checkout_from_one_address_is_limited_too(client, abuse_limits):
    abuse_limits.RATE_LIMITS = {"checkout_address": "1/600"}
    product = product_create(stock=100)
    form = {
        "email": "ada@example.com",
        "name": "Ada",
        "line1": "1 St",
        "city": "London",
        "postal_code": "N1",
        "country": "GB",
        "payment_token": "tok_visa",
    }
    answers = []
    for _ in range(2):
        client.post("/cart/update/", {"sku": product.sku, "quantity": "1"})
        answers.append(client.post("/checkout/", form, REMOTE_ADDR="203.0.113.9"))

    assert [r.status_code for r in answers] == [302, 429]
    assert 1 <= int(answers[1]["Retry-After"]) <= 600
    assert b"Too many checkouts from this address" in answers[1].content
    assert Order.objects.count() == 1


def test_cancel_requests_from_one_address_get_429_past_the_limit(client, abuse_limits):
    abuse_limits.RATE_LIMITS = {"cancel_address": "2/600"}
    product = product_create(stock=100)
    token = post_checkout(client, checkout_body((product.sku, 1)), address="192.0.2.1").json()[
        "token"
    ]
    url = f"/api/v1/orders/{token}/cancel"

    answers = [client.post(url, REMOTE_ADDR="203.0.113.7") for _ in range(3)]

    assert 429 not in [r.status_code for r in answers[:2]]
    assert answers[2].status_code == 429
    assert 1 <= int(answers[2]["Retry-After"]) <= 600
    assert answers[2].json()["errors"]["rate_limit"] == [
        "Too many cancel requests from this address; "
        f"try again in {answers[2]['Retry-After']} seconds."
    ]


def test_the_limits_are_counted_in_redis_not_in_the_database(
    client, abuse_limits, django_assert_num_queries
):
    abuse_limits.RATE_LIMITS = {"checkout_address": "1/600"}
    product = product_create(stock=100)
    post_checkout(client, checkout_body((product.sku, 1)))

    with django_assert_num_queries(0):
        refused = post_checkout(client, checkout_body((product.sku, 1)))

    assert refused.status_code == 429


def test_counting_the_limits_adds_no_query_to_a_checkout(client, abuse_limits):
    product = product_create(stock=100)

    def checkout_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert post_checkout(client, checkout_body((product.sku, 1))).status_code == 201
        return [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]

    abuse_limits.RATE_LIMITS_ENABLED = False
    without = checkout_queries()
    abuse_limits.RATE_LIMITS_ENABLED = True
    abuse_limits.RATE_LIMITS = {"checkout_address": "5/600", "checkout_email": "5/600"}

    assert checkout_queries() == without
