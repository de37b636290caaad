"""The whole pipeline for real: API checkout, a real worker on real Redis, the sandbox."""

import json
from collections import Counter

import pytest
from django.conf import settings

from harness.orders import orders_wait_settled
from notifications.models import OutboxEmail
from orders.models import Order, Step
from tests.chaos.helpers import sent_subjects
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.system


def place(client, *items, **overrides) -> str:
    response = client.post(
        "/api/v1/checkout",
        data=json.dumps(checkout_body(*items, **overrides)),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()["number"]


def test_orders_placed_through_the_api_complete_every_step_once(client, worker, sandbox, tmp_path):
    mug = product_create(stock=100, price_cents=1490)
    tee = product_create(stock=100, price_cents=2900)

    numbers = [place(client, (mug.sku, 1 + n % 2), (tee.sku, 1)) for n in range(20)]
    orders_wait_settled(numbers, timeout=90)

    assert set(Order.objects.values_list("status", flat=True)) == {"completed"}
    assert Step.objects.exclude(status="succeeded").count() == 0
    assert set(Step.objects.values_list("attempts", flat=True)) == {1}
    ledger = sandbox.get("/ledger").json()
    for partner, kind in (
        ("payment", "capture"),
        ("erp", "order_sync"),
        ("carrier", "label"),
        ("analytics", "event"),
    ):
        per_order = Counter(e["order"] for e in ledger[partner]["effects"] if e["kind"] == kind)
        assert per_order == Counter({n: 1 for n in numbers}), partner
    assert Counter(OutboxEmail.objects.values_list("key", flat=True)) == Counter(
        {f"order:{n}:order_confirmation": 1 for n in numbers}
    )
    subjects = sent_subjects(tmp_path / "mail")
    assert subjects == Counter({f"Your order {n} is confirmed": 1 for n in numbers})
    mug.refresh_from_db()
    assert mug.stock == 100 - sum(1 + n % 2 for n in range(20))


def test_a_declined_payment_stops_the_pipeline_and_returns_the_stock(client, worker, sandbox):
    product = product_create(stock=10)

    number = place(client, (product.sku, 4), payment_token="tok_decline")
    orders_wait_settled([number], timeout=30)

    order = Order.objects.get(number=number)
    assert order.status == "payment_failed"
    assert dict(order.steps.values_list("name", "status")) == {
        "payment_capture": "failed",
        "confirmation_email_send": "cancelled",
        "erp_sync": "cancelled",
        "invoice_render": "cancelled",
        "label_purchase": "cancelled",
        "analytics_track": "cancelled",
        "payment_failed_email_send": "succeeded",
    }
    product.refresh_from_db()
    assert product.stock == 10
    ledger = sandbox.get("/ledger").json()
    assert [len(ledger[p]["effects"]) for p in settings.PARTNER_NAMES] == [
        0,
        0,
        0,
        0,
    ]


def test_steps_record_queued_running_and_finished_times_in_order(client, worker, sandbox):
    product = product_create(stock=10)

    number = place(client, (product.sku, 1))
    orders_wait_settled([number], timeout=30)

    for step in Step.objects.filter(order__number=number):
        assert step.queued_at <= step.started_at <= step.finished_at, step.name
        assert step.task_id
    payment = Step.objects.get(order__number=number, name="payment_capture")
    label = Step.objects.get(order__number=number, name="label_purchase")
    erp = Step.objects.get(order__number=number, name="erp_sync")
    assert payment.finished_at <= erp.started_at
    assert erp.finished_at <= label.started_at
