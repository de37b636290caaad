"""A death is blamed only on a step that ran alone (engine/blame.py); steps killed beside
it in a pool of threads run again alone, in quarantine, and are never dead-lettered for
it. A run past its time limit in a pool of threads is abandoned, counted and run again."""

import time
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from django.db.models.functions import Now

from engine.heartbeat import leases_renew
from engine.liveness import lease_drop, leases_held
from engine.reconcile import steps_sweep
from engine.steps import Claim, step_claim, step_mark_succeeded
from orders.models import DeadLetter, Step
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    with mock.patch("engine.dispatch._steps_publish") as publish:
        yield publish


@contextmanager
def pool_thread():
    """Claims made in here are made as by a thread of a pool (not the main thread)."""
    with (
        mock.patch("engine.steps.run_is_alone", return_value=False),
        mock.patch("engine.blame.run_is_alone", return_value=False),
    ):
        yield


@pytest.fixture
def in_a_pool_of_threads():
    with pool_thread():
        yield


def run_dies(step: Step) -> None:
    """The process that holds the step's run dies: its lease is no longer renewed and
    has run out."""
    lease_drop(Step, step.pk)
    Step.objects.filter(pk=step.pk).update(lease_expires_at=Now() - timedelta(seconds=1))


def claim(order, name="payment_capture"):
    return step_claim(subject_id=order.pk, name=name, task_id="t")


def test_a_payment_killed_beside_a_poison_pill_in_a_pool_of_threads_is_not_blamed_and_runs_alone(
    published, settings, django_capture_on_commit_callbacks
):
    order = order_place((product_create(), 1)).order
    with pool_thread():
        _, step = claim(order)
    run_dies(step)  # a pill in another thread of its pool killed the process

    with django_capture_on_commit_callbacks(execute=True):
        report = steps_sweep()

    assert report.poisoned == []
    row = Step.objects.get(pk=step.pk)
    assert (row.status, row.crashes, row.suspect, row.run_shared) == ("queued", 0, True, True)
    published.assert_called_once_with(order.pk, ("payment_capture",), "quarantine")
    verdict, alone = claim(order)  # quarantine's prefork pool process: its main thread
    # SETTLE: the dead run may have acted, so the partner is asked first (engine/steps.py).
    assert (verdict, alone.run_shared) == (Claim.SETTLE, False)
    assert step_mark_succeeded(step=alone, result={}) is True
    row = Step.objects.get(pk=step.pk)
    assert (row.status, row.attempts, row.crashes) == ("succeeded", 2, 0)
    assert not DeadLetter.objects.filter(order=order).exists()


def test_a_step_killed_beside_others_again_and_again_is_never_a_poison_pill(
    published, in_a_pool_of_threads, settings
):
    order = order_place((product_create(), 1)).order
    for _ in range(settings.STEP_MAX_CRASHES + 1):
        # A message taken by a pool of threads each time (suspicion cleared by hand).
        Step.objects.filter(order=order, name="payment_capture").update(suspect=False)
        verdict, step = claim(order)
        assert verdict in (Claim.RUN, Claim.SETTLE)  # SETTLE after a death
        run_dies(step)
        assert steps_sweep().poisoned == []

    row = Step.objects.get(pk=step.pk)
    assert (row.status, row.crashes, row.attempts) == ("queued", 0, settings.STEP_MAX_CRASHES + 1)
    assert not DeadLetter.objects.filter(order=order).exists()


def test_a_suspect_step_taken_by_a_pool_of_threads_goes_to_quarantine_instead(
    published, in_a_pool_of_threads, django_capture_on_commit_callbacks
):
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="payment_capture").update(status="queued", suspect=True)

    with django_capture_on_commit_callbacks(execute=True):
        verdict, _ = claim(order)

    assert verdict is Claim.STOP
    row = Step.objects.get(order=order, name="payment_capture")
    assert (row.status, row.attempts) == ("queued", 0)
    published.assert_called_once_with(order.pk, ("payment_capture",), "quarantine")


def test_a_suspect_step_that_dies_alone_in_quarantine_is_blamed_until_it_is_a_poison_pill(
    published, settings
):
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="invoice_render").update(status="queued", suspect=True)
    Step.objects.filter(order=order, name="payment_capture").update(status="succeeded")

    for crashes in range(1, settings.STEP_MAX_CRASHES):
        verdict, step = claim(order, "invoice_render")  # the main thread: alone
        assert verdict in (Claim.RUN, Claim.SETTLE)  # SETTLE after a death
        assert step.run_shared is False
        run_dies(step)
        steps_sweep()
        assert Step.objects.get(pk=step.pk).crashes == crashes
    _, step = claim(order, "invoice_render")
    run_dies(step)
    report = steps_sweep()

    assert report.poisoned == [(order.number, "invoice_render")]
    row = Step.objects.get(pk=step.pk)
    assert (row.status, row.crashes) == ("failed", settings.STEP_MAX_CRASHES)
    assert row.last_error == "PoisonPill: the worker died 3 times running this step"


def test_a_run_past_its_time_limit_in_a_pool_of_threads_is_abandoned_counted_and_run_again(
    published, in_a_pool_of_threads, django_capture_on_commit_callbacks
):
    order = order_place((product_create(), 1)).order
    _, late = step_claim(subject_id=order.pk, name="payment_capture", task_id="t", time_limit=0.01)
    time.sleep(0.05)

    with django_capture_on_commit_callbacks(execute=True):
        renewed = leases_renew()

    assert renewed == 0
    assert late.pk not in leases_held(Step)
    row = Step.objects.get(pk=late.pk)
    assert (row.status, row.timeouts, row.crashes) == ("queued", 1, 0)
    assert row.last_error == "TimeLimitExceeded: run abandoned after 0.01 s"
    published.assert_called_once_with(order.pk, ("payment_capture",), None)
    _, rerun = claim(order)
    assert step_mark_succeeded(step=late, result={}) is False  # the late outcome: fenced
    assert step_mark_succeeded(step=rerun, result={}) is True


def test_a_step_abandoned_past_its_time_limit_again_and_again_is_a_dead_letter(
    published, in_a_pool_of_threads, settings
):
    order = order_place((product_create(), 1)).order
    for _ in range(settings.STEP_MAX_CRASHES):
        Step.objects.filter(order=order, name="payment_capture").update(status="queued")
        step_claim(subject_id=order.pk, name="payment_capture", task_id="t", time_limit=0.01)
        time.sleep(0.05)
        leases_renew()

    row = Step.objects.get(order=order, name="payment_capture")
    assert (row.status, row.timeouts) == ("failed", settings.STEP_MAX_CRASHES)
    assert row.last_error == "RunTimedOut: abandoned 3 times past its time limit"
    assert DeadLetter.objects.filter(order=order, name="payment_capture").exists()
