"""A claim on a step is a lease in PostgreSQL: an owner, a fencing token that grows with
every claim, an expiry on the database's clock, renewed by the worker's heartbeat."""

import os
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.db.models.functions import Now
from django.utils import timezone

from engine.heartbeat import leases_renew
from engine.liveness import lease_drop, leases_held
from engine.reconcile import steps_reconcile, steps_sweep
from engine.steps import Claim, step_claim, step_mark_retrying, step_mark_succeeded
from harness.processes import wait_for
from orders.models import Step
from orders.tasks import payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_outcome_retries():
    with mock.patch("engine.leases.WRITE_DELAYS_S", (0, 0)):
        yield


@pytest.fixture
def published():
    with mock.patch("engine.dispatch._steps_publish") as publish:
        yield publish


def db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def lease_expire(step) -> None:
    Step.objects.filter(pk=step.pk).update(lease_expires_at=Now() - timedelta(seconds=1))


def test_each_claim_takes_a_new_token_and_an_expiry_on_the_databases_clock(settings):
    order = order_place((product_create(), 1)).order

    claim, first = step_claim(subject_id=order.pk, name="payment_capture", task_id="first")
    lease_expire(first)
    again, second = step_claim(subject_id=order.pk, name="payment_capture", task_id="second")

    # The second run first asks the partner what the first, whose lease lapsed, did.
    assert (claim, again) == (Claim.RUN, Claim.SETTLE)
    assert second.lease_token == first.lease_token + 1
    row = Step.objects.get(pk=second.pk)
    assert row.lease_token == second.lease_token
    left = (row.lease_expires_at - db_now()).total_seconds()
    assert settings.STEP_LEASE_S - 5 < left <= settings.STEP_LEASE_S


def test_a_duplicate_delivery_under_a_live_lease_is_refused():
    order = order_place((product_create(), 1)).order
    step_claim(subject_id=order.pk, name="payment_capture", task_id="first")

    claim, step = step_claim(subject_id=order.pk, name="payment_capture", task_id="duplicate")

    assert claim is Claim.STOP
    assert (step.task_id, step.attempts) == ("first", 1)


def test_a_stale_runs_late_outcome_changes_nothing():
    order = order_place((product_create(), 1)).order
    _, stale = step_claim(subject_id=order.pk, name="payment_capture", task_id="stale")
    lease_expire(stale)  # its worker stalled past its lease
    _, live = step_claim(subject_id=order.pk, name="payment_capture", task_id="live")

    written = step_mark_retrying(step=stale, error=TimeoutError("late"), countdown=1)

    assert written is False
    row = Step.objects.get(pk=live.pk)
    assert (row.status, row.task_id, row.lease_token) == ("running", "live", live.lease_token)
    assert row.last_error == ""
    assert step_mark_succeeded(step=live, result={"capture_id": "cap_1"}) is True
    assert Step.objects.get(pk=live.pk).status == "succeeded"


def test_the_heartbeat_renews_every_lease_this_process_holds_in_one_statement(
    settings, django_assert_num_queries
):
    orders = [order_place((product_create(), 1)).order for _ in range(2)]
    steps = [step_claim(subject_id=o.pk, name="payment_capture", task_id="t")[1] for o in orders]
    Step.objects.filter(pk__in=[s.pk for s in steps]).update(
        lease_expires_at=Now() + timedelta(seconds=1)
    )

    with django_assert_num_queries(1):
        renewed = leases_renew()

    assert renewed == 2
    for row in Step.objects.filter(pk__in=[s.pk for s in steps]):
        assert (row.lease_expires_at - db_now()).total_seconds() > settings.STEP_LEASE_S - 5


def test_an_outcome_write_that_fails_leaves_the_step_to_be_taken_again_not_held_by_a_live_worker(
    sandbox,
):
    order = order_place((product_create(), 1)).order

    # The success's write: one statement (engine/steps.py).
    with mock.patch(
        "engine.steps._success_statement",
        side_effect=OperationalError("server closed the connection"),
    ) as update:
        first = payment_capture.apply(args=(order.pk,))

    assert update.call_count > 1  # the write was retried before the run gave up
    step = Step.objects.get(order=order, name="payment_capture")
    assert (first.state, step.status) == ("FAILURE", "running")
    assert step.pk not in leases_held(Step)
    assert leases_renew() == 0  # the heartbeat no longer renews it
    lease_expire(step)  # left alone, it lapses
    payment_capture.apply(args=(order.pk,))  # the message again, or the sweep's re-dispatch
    step.refresh_from_db()
    assert (step.status, step.attempts, step.lease_token) == ("succeeded", 2, 2)
    ledger = sandbox.get("/ledger").json()
    assert [e["kind"] for e in ledger["payment"]["effects"]] == ["capture"]  # charged once


def test_an_outcome_write_that_fails_once_is_written_on_its_retry(sandbox):
    order = order_place((product_create(), 1)).order
    from engine import steps

    real = steps._success_statement
    calls = iter([OperationalError("server closed the connection")])

    def flaky(*args):
        error = next(calls, None)
        if error:
            raise error
        return real(*args)

    with mock.patch("engine.steps._success_statement", side_effect=flaky):
        payment_capture.apply(args=(order.pk,))

    assert Step.objects.get(order=order, name="payment_capture").status == "succeeded"


def test_a_worker_with_a_clock_minutes_off_causes_no_early_redispatch(published, settings):
    order = order_place((product_create(), 1)).order
    behind = timezone.now() - timedelta(minutes=10)

    with mock.patch("django.utils.timezone.now", return_value=behind):
        _, step = step_claim(subject_id=order.pk, name="payment_capture", task_id="slow-clock")
    reconciled, swept = steps_reconcile(), steps_sweep()

    assert (reconciled.redispatched, swept.redispatched) == ([], [])
    row = Step.objects.get(pk=step.pk)
    assert row.status == "running"
    assert abs((row.started_at - db_now()).total_seconds()) < 5
    left = (row.lease_expires_at - db_now()).total_seconds()
    assert settings.STEP_LEASE_S - 5 < left <= settings.STEP_LEASE_S


def test_an_expired_lease_is_swept_and_its_step_alone_published_again_keeping_its_queued_at(
    published, django_capture_on_commit_callbacks
):
    order = order_place((product_create(), 1)).order
    first_queued = timezone.now() - timedelta(minutes=3)
    Step.objects.filter(order=order, name="payment_capture").update(queued_at=first_queued)
    _, step = step_claim(subject_id=order.pk, name="payment_capture", task_id="dead-elsewhere")
    lease_drop(Step, step.pk)  # as if another process held it and died
    lease_expire(step)

    with django_capture_on_commit_callbacks(execute=True):
        report = steps_sweep()

    assert report.redispatched == [(order.number, "payment_capture", "running")]
    published.assert_called_once_with(order.pk, ("payment_capture",), None)
    row = Step.objects.get(pk=step.pk)
    assert (row.status, row.crashes, row.queued_at) == ("queued", 1, first_queued)


def test_a_holder_that_died_but_is_not_yet_reaped_is_gone():
    from engine.liveness import holder_gone, lease_place

    pid = os.fork()
    if pid == 0:
        os._exit(0)  # a pool process that died; its parent has not reaped it yet
    try:
        wait_for(
            lambda: Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z",
            timeout=10,
            what="the child a zombie",
        )
        holder = f"{lease_place()}{pid}/dead0incarn"

        assert holder_gone(Step, pk=1, holder=holder, token=1) is True
    finally:
        os.waitpid(pid, 0)
