import json
from unittest import mock

import pytest

from orders.models import IdempotencyKey, Order, Step
from orders.pipeline import PIPELINE
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.django_db


def post_checkout(client, body, **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(
        "/api/v1/checkout", data=data, content_type="application/json", headers=headers
    )


def test_checkout_creates_order_with_one_step_per_pipeline_step_and_reserves_stock(client):
    mug = product_create(stock=5, price_cents=1490)
    tee = product_create(stock=5, price_cents=2900)

    response = post_checkout(client, checkout_body((mug.sku, 2), (tee.sku, 1)))

    assert response.status_code == 201
    body = response.json()
    order = Order.objects.get(number=body["number"])
    assert body == {
        "number": order.number,
        "token": order.token,
        "status": "placed",
        "status_url": f"http://testserver/api/v1/orders/{order.token}",
    }
    assert order.total_cents == 2 * 1490 + 2900
    # The payment is ready (its commit publishes it); the others wait for it.
    assert list(order.steps.values_list("name", "queue", "status")) == [
        (spec.name, spec.queue, "queued" if n == 0 else "pending")
        for n, spec in enumerate(PIPELINE)
    ]
    mug.refresh_from_db()
    tee.refresh_from_db()
    assert (mug.stock, tee.stock) == (3, 4)


def test_order_token_is_long_and_unrelated_to_the_number(client):
    product = product_create()
    body = post_checkout(client, checkout_body((product.sku, 1))).json()

    assert len(body["token"]) >= 32
    assert body["number"] not in body["token"]
    assert client.get(f"/api/v1/orders/{body['number']}").status_code == 404


def test_pipeline_is_dispatched_only_after_the_checkout_commits(
    client, django_capture_on_commit_callbacks
):
    product = product_create()
    with mock.patch("orders.receivers.pipeline_dispatch") as dispatch:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = post_checkout(client, checkout_body((product.sku, 1)))
        assert dispatch.call_count == 0
        assert len(callbacks) == 1

        callbacks[0]()

    order = Order.objects.get(number=response.json()["number"])
    dispatch.assert_called_once_with(subject_id=order.pk)


def test_unknown_sku_is_refused_with_400_and_writes_nothing(client):
    product = product_create(stock=5)

    response = post_checkout(client, checkout_body((product.sku, 1), ("NOPE-1", 1)))

    assert response.status_code == 400
    assert response.json() == {"errors": {"items[1].sku": ["Unknown SKU 'NOPE-1'."]}}
    assert Order.objects.count() == 0
    product.refresh_from_db()
    assert product.stock == 5


def test_not_enough_stock_is_refused_with_409_and_releases_what_was_taken(client):
    plenty = product_create(stock=50)
    scarce = product_create(stock=2)

    response = post_checkout(client, checkout_body((plenty.sku, 3), (scarce.sku, 3)))

    assert response.status_code == 409
    assert response.json() == {"errors": {"items[1].quantity": [f"Only 2 left of '{scarce.sku}'."]}}
    assert (Order.objects.count(), Step.objects.count()) == (0, 0)
    plenty.refresh_from_db()
    assert plenty.stock == 50


def test_same_idempotency_key_returns_the_same_order_and_creates_nothing(client):
    product = product_create(stock=10)
    body = checkout_body((product.sku, 1))

    first = post_checkout(client, body, **{"Idempotency-Key": "key-123"})
    second = post_checkout(client, body, **{"Idempotency-Key": "key-123"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    product.refresh_from_db()
    assert product.stock == 9


def test_idempotency_key_reused_for_another_checkout_is_refused_with_422(client):
    product = product_create(stock=10)
    post_checkout(client, checkout_body((product.sku, 1)), **{"Idempotency-Key": "key-9"})

    response = post_checkout(
        client, checkout_body((product.sku, 2)), **{"Idempotency-Key": "key-9"}
    )

    assert response.status_code == 422
    assert response.json() == {
        "errors": {"Idempotency-Key": ["This key was already used for a different checkout."]}
    }
    assert Order.objects.count() == 1
    assert IdempotencyKey.objects.get().order.lines.get().quantity == 1


def test_malformed_idempotency_key_is_refused_with_400(client):
    product = product_create()

    response = post_checkout(
        client, checkout_body((product.sku, 1)), **{"Idempotency-Key": "has space"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "Idempotency-Key": ["Must be 1 to 255 printable ASCII characters without spaces."]
        }
    }


def test_body_that_is_not_json_is_refused_with_400(client):
    response = post_checkout(client, "{not json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["body"]
    assert response.json()["errors"]["body"][0].startswith("Invalid JSON: ")


def test_get_checkout_is_not_allowed(client):
    assert client.get("/api/v1/checkout").status_code == 405


def test_order_status_shows_every_step_with_its_times(client):
    product = product_create()
    token = post_checkout(client, checkout_body((product.sku, 2))).json()["token"]

    body = client.get(f"/api/v1/orders/{token}").json()

    assert body["status"] == "placed"
    assert body["lines"] == [
        {"sku": product.sku, "name": product.name, "quantity": 2, "unit_price_cents": 1000}
    ]
    # Customers see steps under their names, without errors, queues or attempts; the
    # analytics step is none of theirs (tests/test_smaller_findings.py).
    assert [step["step"] for step in body["steps"]] == [
        spec.name for spec in PIPELINE if spec.name != "analytics_track"
    ]
    assert body["steps"][0] == {
        "step": "payment_capture",
        "name": "Payment",
        "status": "queued",
        "started_at": None,
        "retry_at": None,
        "finished_at": None,
    }
