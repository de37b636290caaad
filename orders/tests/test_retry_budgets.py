"""Retry budgets in time as well as attempts, and "not now" answers (issue 16, finding 2).

Before, a payment had 6 attempts in about 31 s and every 4xx was permanent: a gateway
down for ten minutes failed the orders placed in it, and one that answered 429 (rate
limited) or 409 (a request under the same key in progress) failed the payment at once."""

from datetime import timedelta
from email.utils import format_datetime
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.utils import timezone

import partners
from orders.models import Step
from orders.pipeline import STEPS
from orders.tasks import payment_capture
from partners import PartnerRejected, PartnerUnavailable, retry_after
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db
PAYMENT = STEPS["payment_capture"].retry


@pytest.fixture(autouse=True)
def real_time(settings):
    """The policies at their real delays and budgets (the suite scales them down)."""
    settings.PIPELINE_RETRY_DELAY_SCALE = 1
    settings.PIPELINE_RETRY_BUDGET_SCALE = 1


def test_a_payment_keeps_retrying_transient_failures_for_a_quarter_of_an_hour():
    late = PAYMENT.countdown(20, elapsed_s=14 * 60)

    assert late is not None and 16 * 0.8 <= late <= 16 * 1.2  # capped at the last seed
    assert PAYMENT.countdown(20, elapsed_s=15 * 60 + 1) is None
    assert PAYMENT.delays == (1, 2, 4, 8, 16)


def test_a_slow_partners_step_keeps_retrying_for_hours():
    erp = STEPS["erp_sync"].retry

    assert erp.countdown(30, elapsed_s=5 * 3600) is not None
    assert erp.countdown(30, elapsed_s=6 * 3600 + 1) is None


@pytest.mark.parametrize("status", [408, 425, 429, 503])
def test_a_not_now_answer_is_retried_not_taken_for_a_refusal(sandbox, settings, status):
    settings.BREAKER_FAILURE_THRESHOLD = 100
    sandbox.post(
        "/control", json={"failure_rate": 1.0, "failure_status": status}
    ).raise_for_status()

    with pytest.raises(PartnerUnavailable) as raised:
        partners.payment_capture(
            order_number="SF-NOTNOW", amount_cents=1, currency="EUR", payment_token="tok_visa"
        )

    assert not isinstance(raised.value, PartnerRejected)
    assert str(raised.value) == f"payment answered {status}"


def test_a_429_with_retry_after_is_retried_no_sooner_than_the_partner_asked(sandbox, settings):
    settings.BREAKER_FAILURE_THRESHOLD = 100
    order = order_place((product_create(), 1)).order
    sandbox.post(
        "/control", json={"failure_rate": 1.0, "failure_status": 429, "retry_after_s": 40}
    ).raise_for_status()

    with mock.patch.object(payment_capture, "retry", side_effect=Retry("later")) as retry:
        payment_capture.apply(args=(order.pk,))

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.attempts) == ("retrying", 1)
    assert retry.call_args.kwargs["countdown"] >= 40


def test_a_payment_past_its_attempts_is_retried_while_within_its_quarter_of_an_hour(
    sandbox, settings
):
    settings.BREAKER_FAILURE_THRESHOLD = 100
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    recent, old = (order_place((product_create(), 1)).order for _ in range(2))
    now = timezone.now()
    for order, queued in (
        (recent, now - timedelta(minutes=10)),
        (old, now - timedelta(minutes=16)),
    ):
        Step.objects.filter(order=order, name="payment_capture").update(
            attempts=len(PAYMENT.delays) + 3, queued_at=queued
        )

    with mock.patch.object(payment_capture, "retry", side_effect=Retry("later")):
        payment_capture.apply(args=(recent.pk,))
        payment_capture.apply(args=(old.pk,))

    assert recent.steps.get(name="payment_capture").status == "retrying"
    assert old.steps.get(name="payment_capture").status == "failed"


def test_retry_after_reads_seconds_and_http_dates():
    soon = format_datetime(timezone.now() + timedelta(seconds=90), usegmt=True)

    assert retry_after("120") == 120
    assert 85 <= retry_after(soon) <= 90
    assert retry_after("") is None and retry_after("soon") is None
