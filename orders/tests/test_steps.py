"""Each step, run for real against the sandbox, twice: the second run changes nothing."""

from unittest import mock

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.core import mail

import partners
from engine.breaker import breaker_states
from fulfillment.tasks import erp_sync, label_purchase
from notifications.models import Alert, OutboxEmail
from orders.models import Order, Step
from orders.tasks import analytics_track, payment_capture, payment_failed_email_send
from partners import PartnerUnavailable
from tests.factories import order_place, product_create, run_pipeline

pytestmark = pytest.mark.django_db


def effects(sandbox, partner: str) -> list[tuple[str, str]]:
    return [(e["kind"], e["order"]) for e in sandbox.get("/ledger").json()[partner]["effects"]]


def step_states(order: Order) -> list[tuple[str, str, int]]:
    return list(order.steps.values_list("name", "status", "attempts"))


def test_every_step_succeeds_and_completes_the_order(sandbox):
    product = product_create(stock=3, price_cents=1250)
    order = order_place((product, 2)).order

    run_pipeline(order)

    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert order.stock_state == Order.StockState.COMMITTED
    assert order.capture_id.startswith("cap_")
    assert order.erp_reference.startswith("ERP-")
    assert [status for _, status, _ in step_states(order)] == ["succeeded"] * 6
    assert order.shipment.tracking_number.startswith("1Z")
    assert order.shipment.label.read().decode().startswith("^XA")


def test_running_every_step_a_second_time_changes_nothing(sandbox):
    product = product_create(stock=3)
    order = order_place((product, 1)).order
    run_pipeline(order)
    order.refresh_from_db()
    before = (
        step_states(order),
        order.capture_id,
        order.erp_reference,
        order.shipment.tracking_number,
    )
    ledger_before = sandbox.get("/ledger").json()

    run_pipeline(order)

    order.refresh_from_db()
    after = (
        step_states(order),
        order.capture_id,
        order.erp_reference,
        order.shipment.tracking_number,
    )
    assert after == before
    ledger_after = sandbox.get("/ledger").json()
    for partner in settings.PARTNER_NAMES:
        assert ledger_after[partner] == ledger_before[partner]
    assert len(mail.outbox) == 1
    assert OutboxEmail.objects.filter(key__startswith=f"order:{order.number}:").count() == 1


def test_a_redelivered_step_whose_outcome_was_lost_charges_once(sandbox):
    """The worker died after the gateway captured but before the step was recorded."""
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    Step.objects.filter(order=order, name="payment_capture").update(status=Step.Status.QUEUED)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PLACED, capture_id="")

    payment_capture.apply(args=(order.pk,))

    assert effects(sandbox, "payment") == [("capture", order.number)]
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.steps.get(name="payment_capture").attempts == 2


def test_declined_payment_fails_the_order_cancels_later_steps_and_releases_stock_once(sandbox):
    product = product_create(stock=5)
    order = order_place((product, 2), payment_token="tok_decline").order

    payment_capture.apply(args=(order.pk,))
    payment_capture.apply(args=(order.pk,))
    erp_sync.apply(args=(order.pk,))

    order.refresh_from_db()
    product.refresh_from_db()
    assert order.status == Order.Status.PAYMENT_FAILED
    assert order.stock_state == Order.StockState.RELEASED
    assert product.stock == 5
    payment = order.steps.get(name="payment_capture")
    assert (payment.status, payment.attempts) == ("failed", 1)
    assert (
        payment.last_error
        == "PartnerRejected: payment refused (402 card_declined): The card was declined."
    )
    later = order.steps.exclude(name__in=["payment_capture", "payment_failed_email_send"])
    assert set(later.values_list("status", flat=True)) == {"cancelled"}
    assert effects(sandbox, "payment") == []
    assert effects(sandbox, "erp") == []


def test_the_customer_is_told_once_that_the_payment_failed(sandbox):
    order = order_place((product_create(), 1), payment_token="tok_decline").order
    payment_capture.apply(args=(order.pk,))

    payment_failed_email_send.apply(args=(order.pk,))
    payment_failed_email_send.apply(args=(order.pk,))

    [message] = mail.outbox
    assert message.subject == f"We could not take payment for order {order.number}"
    assert order.steps.get(name="payment_failed_email_send").status == "succeeded"


def test_transient_failures_retry_up_to_the_step_policy_then_fail(sandbox, settings):
    """The attempts alone (the suite sets no budget in time: test_retry_budgets.py)."""
    settings.BREAKER_FAILURE_THRESHOLD = 100  # this test is about the retry policy alone
    order = order_place((product_create(), 1)).order
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()

    payment_capture.apply(args=(order.pk,))

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.attempts) == ("failed", 6)  # the first try and five retries
    assert step.last_error == "PartnerUnavailable: payment answered 503"
    assert sandbox.get("/ledger").json()["payment"]["calls"] == 6
    order.refresh_from_db()
    assert order.status == Order.Status.PAYMENT_FAILED


def test_a_transient_failure_then_success_is_recorded_as_retried(sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    flaky = [PartnerUnavailable("analytics answered 503"), None]

    with mock.patch("partners.analytics_track", side_effect=flaky):
        analytics_track.apply(args=(order.pk,))

    step = order.steps.get(name="analytics_track")
    assert (step.status, step.attempts, step.last_error) == ("succeeded", 2, "")


def test_responses_lost_to_timeouts_never_repeat_the_effect_nor_give_up(sandbox, settings):
    settings.BREAKER_FAILURE_THRESHOLD = 100  # this test is about the retry policy alone
    settings.PARTNERS["analytics"]["timeout_s"] = 0.3
    partners._clients.clear()
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    sandbox.post("/control", json={"timeout_rate": 1.0, "timeout_s": 1}).raise_for_status()

    for _ in range(5):  # past the policy's four tries: the outcome is unknown, not failed
        with mock.patch.object(analytics_track, "retry", side_effect=Retry("later")) as retry:
            analytics_track.apply(args=(order.pk,))

    step = order.steps.get(name="analytics_track")
    assert (step.status, step.attempts, step.effect_unknown) == ("retrying", 5, True)
    assert step.last_error == (
        "PartnerOutcomeUnknown: analytics sent no answer: ReadTimeout timed out"
    )
    assert retry.call_args.kwargs["countdown"] == pytest.approx(600 * 0.001, rel=0.2)
    sandbox.post("/control", json={"timeout_rate": 0}).raise_for_status()
    analytics_track.apply(args=(order.pk,))

    step.refresh_from_db()
    assert (step.status, step.attempts, step.effect_unknown) == ("succeeded", 6, False)
    analytics = sandbox.get("/ledger").json()["analytics"]
    assert (analytics["calls"], analytics["distinct_keys"]) == (6, 1)
    assert effects(sandbox, "analytics") == [("event", order.number)]


def test_label_waits_for_the_erp_reference(sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    label_purchase.apply(args=(order.pk,))

    label = order.steps.get(name="label_purchase")
    assert (label.status, label.attempts) == ("pending", 0)
    assert effects(sandbox, "carrier") == []


def test_an_open_breaker_defers_the_step_without_calling_or_counting_an_attempt(sandbox, settings):
    settings.BREAKER_COOLDOWN_S = 30
    order = order_place((product_create(), 1)).order
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        with pytest.raises(PartnerUnavailable):
            partners.payment_capture(
                order_number="SF-OTHER", amount_cents=1, currency="EUR", payment_token="tok_visa"
            )
    calls_before = sandbox.get("/ledger").json()["payment"]["calls"]

    with mock.patch.object(payment_capture, "retry", side_effect=Retry("deferred")) as retry:
        payment_capture.apply(args=(order.pk,))

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.attempts) == ("retrying", 0)
    assert step.last_error == "deferred: payment circuit open"
    assert 25 <= retry.call_args.kwargs["countdown"] <= 32
    assert sandbox.get("/ledger").json()["payment"]["calls"] == calls_before
    assert [s.state for s in breaker_states()] == ["open", "closed", "closed", "closed"]


def test_a_breaker_opening_emails_ops_once_per_incident(
    sandbox, settings, django_capture_on_commit_callbacks
):
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()

    # The alert's email goes out when the alert's transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(settings.BREAKER_FAILURE_THRESHOLD * 3):
            with pytest.raises(PartnerUnavailable):
                partners.erp_sync(order_number="SF-X", lines=[], total_cents=1)

    [alert] = Alert.objects.all()
    assert (alert.kind, alert.subject, alert.resolved_at) == ("breaker_open", "erp", None)
    [message] = mail.outbox
    assert message.to == [settings.OPS_ALERT_EMAIL]
    assert message.subject == "[shopflow alert] partner circuit breaker open: erp"


def test_a_stray_message_for_a_pending_step_while_its_breaker_is_open_does_not_make_it_ready():
    # Deferring turned any waiting step into a retrying one, a pending one too: a stray
    # message for a label whose ERP sync had not succeeded, deferred by an open carrier
    # breaker, made the label look ready, and the next claim bought it before the sync.
    from engine.steps import step_defer

    order = order_place((product_create(), 1)).order

    deferred = step_defer(subject_id=order.pk, name="label_purchase", seconds=30, reason="test")

    assert deferred is False
    assert Step.objects.get(order=order, name="label_purchase").status == "pending"
