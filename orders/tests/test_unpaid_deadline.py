"""An order whose payment has not succeeded within UNPAID_ORDER_DEADLINE_S is ended by
the reconciliation and its stock released (issue 15, finding 4): an unpaid checkout,
even one the payment breaker keeps deferring, cannot hold stock for ever."""

from datetime import timedelta
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.utils import timezone

import partners
from engine.reconcile import steps_reconcile
from orders.tasks import payment_capture
from partners import PartnerUnavailable
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    with mock.patch("engine.dispatch._steps_publish") as publish:
        yield publish


def breaker_open(sandbox, settings) -> None:
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        with pytest.raises(PartnerUnavailable):
            partners.payment_capture(
                order_number="SF-OTHER", amount_cents=1, currency="EUR", payment_token="tok_visa"
            )


def test_an_unpaid_order_deferred_by_the_breaker_cannot_hold_stock_past_the_deadline(
    sandbox, settings, published, client
):
    settings.UNPAID_ORDER_DEADLINE_S = 1800
    product = product_create(stock=10)
    order = order_place((product, 10)).order  # all the stock
    breaker_open(sandbox, settings)
    with mock.patch.object(payment_capture, "retry", side_effect=Retry("deferred")):
        payment_capture.apply(args=(order.pk,))
    assert order.steps.get(name="payment_capture").last_error == "deferred: payment circuit open"

    before = steps_reconcile(now=order.created_at + timedelta(seconds=1799))
    order.refresh_from_db()
    assert (order.number in before.settled, order.status) == (False, "placed")

    after = steps_reconcile(now=order.created_at + timedelta(seconds=1801))

    order.refresh_from_db()
    product.refresh_from_db()
    assert order.number in after.settled
    assert (order.status, order.stock_state, order.cancel_reason) == (
        "cancelled",
        "released",
        "Payment not received within 30 minutes.",
    )
    assert product.stock == 10
    payment = order.steps.get(name="payment_capture")
    assert (payment.status, payment.attempts) == ("cancelled", 0)
    # The payment never ran and now never will: nothing to refund, the customer is told.
    names = set(order.steps.values_list("name", flat=True))
    assert ("cancellation_email_send" in names, "payment_refund" in names) == (True, False)
    # A second run finds nothing left to end.
    again = steps_reconcile(now=timezone.now() + timedelta(seconds=3600))
    assert order.number not in again.settled


def test_a_paid_order_is_not_ended_by_the_payment_deadline(sandbox, settings, published):
    settings.UNPAID_ORDER_DEADLINE_S = 1800
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    report = steps_reconcile(now=order.created_at + timedelta(seconds=7200))

    order.refresh_from_db()
    assert (order.number in report.settled, order.status, order.stock_state) == (
        False,
        "paid",
        "committed",
    )
