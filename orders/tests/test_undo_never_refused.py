"""Undo work is never refused (issue 16): a compensation that ran out of retries can be
retried from the dead letters on the order it undoes, which has ended by definition."""

import pytest

from engine.dead_letters import dead_letters_retry
from orders.models import DeadLetter, Order
from orders.services.orders import order_cancel
from orders.tasks import payment_capture, payment_refund
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def test_a_dead_refund_of_a_cancelled_order_is_retried_and_refunds(sandbox, settings):
    settings.BREAKER_FAILURE_THRESHOLD = 100  # this test is about the dead letter alone
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    order_cancel(order_id=order.pk, reason="changed my mind")
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    for _ in range(20):  # until the refund is out of retries
        payment_refund.apply(args=(order.pk,))
        if order.steps.get(name="payment_refund").status == "failed":
            break
    sandbox.post("/control", json={"failure_rate": 0.0}).raise_for_status()
    letter = DeadLetter.objects.get(name="payment_refund")

    report = dead_letters_retry(step_ids=[letter.pk])
    payment_refund.apply(args=(order.pk,))

    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED
    assert (report.retried, report.skipped) == ([(order.number, "payment_refund")], [])
    assert order.steps.get(name="payment_refund").status == "succeeded"
    refunds = [
        e for e in sandbox.get("/ledger").json()["payment"]["effects"] if e["kind"] == "refund"
    ]
    assert [e["order"] for e in refunds] == [order.number]
