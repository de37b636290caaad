"""Reconciliation finds steps whose message was lost and dispatches them again."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from engine.reconcile import steps_reconcile
from orders.models import Step
from orders.tasks import payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    """What the reconciliation publishes, as (order id, step names) per dispatch."""
    with mock.patch("engine.dispatch._steps_publish") as publish:
        yield publish


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_a_payment_step_whose_dispatch_was_lost_is_dispatched_again(
    published, django_capture_on_commit_callbacks
):
    order = order_place((product_create(), 1)).order  # no commit here: nothing was published

    with django_capture_on_commit_callbacks(execute=True):
        report = steps_reconcile(now=later(61))

    assert report.redispatched == [(order.number, "payment_capture", "unpublished")]
    published.assert_called_once_with(order.pk, ("payment_capture",), None)
    assert order.steps.get(name="payment_capture").status == "queued"


def test_a_fresh_pending_step_is_left_alone(published):
    order_place((product_create(), 1))

    report = steps_reconcile(now=later(30))

    assert report.redispatched == []


def test_a_step_pending_behind_a_finished_parent_is_dispatched_but_not_one_behind_a_running_one(
    sandbox, published
):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    Step.objects.filter(order=order, name="erp_sync").update(
        status=Step.Status.RUNNING, started_at=timezone.now()
    )

    report = steps_reconcile(now=later(61))

    assert sorted(name for _, name, _ in report.redispatched) == [
        "analytics_track",
        "confirmation_email_send",
        "invoice_render",
    ]
    assert order.steps.get(name="label_purchase").status == "pending"


# A holder on another machine: no process here can probe it, only its lease tells.
ELSEWHERE = "0123456789ab/4242/feedfacecafe"


def expired_lease() -> dict:
    """What a run on another machine that died leaves: its lease, never renewed."""
    return {"lease_holder": ELSEWHERE, "lease_token": 1, "lease_expires_at": timezone.now()}


def test_a_step_running_under_a_lease_that_expired_is_counted_as_a_crash_and_dispatched_again(
    published,
):
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="payment_capture").update(
        status=Step.Status.RUNNING, started_at=timezone.now(), attempts=1, **expired_lease()
    )

    first = steps_reconcile(now=later(181))
    second = steps_reconcile(now=later(182))

    assert first.redispatched == [(order.number, "payment_capture", "running")]
    assert second.redispatched == []  # queued again just now: not lost yet
    step = order.steps.get(name="payment_capture")
    assert (step.status, step.crashes) == ("queued", 1)


def test_a_step_whose_worker_keeps_dying_becomes_a_dead_letter(published, settings):
    order = order_place((product_create(stock=5), 2)).order
    Step.objects.filter(order=order, name="payment_capture").update(
        status=Step.Status.RUNNING,
        started_at=timezone.now(),
        attempts=3,
        crashes=settings.STEP_MAX_CRASHES - 1,
        **expired_lease(),
    )

    report = steps_reconcile(now=later(181))

    assert report.poisoned == [(order.number, "payment_capture")]
    step = order.steps.get(name="payment_capture")
    assert (step.status, step.crashes) == ("failed", settings.STEP_MAX_CRASHES)
    assert step.last_error == "PoisonPill: the worker died 3 times running this step"
    # A run that died mid-call may have captured: the order is not told its payment
    # failed, it waits (placed, its stock held) for a retry or the unpaid deadline.
    assert step.effect_unknown is True
    order.refresh_from_db()
    assert (order.status, order.stock_state) == ("placed", "reserved")


def test_a_retry_whose_message_was_lost_is_dispatched_again(published):
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="payment_capture").update(
        status=Step.Status.RETRYING, retry_at=timezone.now(), attempts=1
    )

    report = steps_reconcile(now=later(121))

    assert report.redispatched == [(order.number, "payment_capture", "retrying")]


def stuck_paid(order, *, finished: bool):
    """The order as a worker killed mid-bookkeeping leaves it: paid, its steps finished
    (all of them, or all but analytics)."""
    from orders.models import Order

    steps = order.steps.all() if finished else order.steps.exclude(name="analytics_track")
    steps.update(status="succeeded", finished_at=timezone.now())
    Order.objects.filter(pk=order.pk).update(status="paid", updated_at=later(-120))


def test_a_paid_order_whose_steps_all_finished_is_completed_by_the_reconciliation(published):
    done = order_place((product_create(), 1)).order
    moving = order_place((product_create(), 1)).order
    stuck_paid(done, finished=True)
    stuck_paid(moving, finished=False)

    report = steps_reconcile(now=later(0))

    assert report.settled == [done.number]
    done.refresh_from_db()
    moving.refresh_from_db()
    assert (done.status, moving.status) == ("completed", "paid")


def test_a_redelivered_step_that_finds_its_outcome_recorded_completes_its_order(sandbox):
    order = order_place((product_create(), 1)).order
    stuck_paid(order, finished=True)

    payment_capture.apply(args=(order.pk,))

    order.refresh_from_db()
    assert order.status == "completed"
    assert sandbox.get("/ledger").json()["payment"]["calls"] == 0  # nothing ran again
