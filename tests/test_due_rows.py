"""The one due-row runner, as each of its users runs it: follow-ups of an order, steps of
a subscription's lifecycle, product image downloads. Each takes the rows that are due,
earliest first, each once, and takes again a row whose run died."""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import F
from django.db.models.functions import Now

from engine.due_rows import ERROR_WINDOW, DueRows, due_row_finish
from engine.leases import Lease
from engine.liveness import database_now
from orders.models import FollowUp, Order
from orders.services.follow_ups import follow_ups_due_run
from shop.assets import images_download_due
from shop.models import LifecycleStep, Product, ProductImage, Subscription
from shop.subscriptions import lifecycle_due_run
from tests.threads import at_once

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# A holder on another machine: no process here can probe it, only its lease tells.
ELSEWHERE = "0123456789ab/4242/feedfacecafe"
_numbers = itertools.count(1)


def order_create() -> Order:
    """An order that never completed: its follow-ups run and end cancelled."""
    n = next(_numbers)
    return Order.objects.create(
        number=f"SF-DUE{n:05d}",
        token=f"due-{n}",
        email="ada@example.com",
        shipping_address={},
        payment_token="tok_visa",
        currency="EUR",
        total_cents=1000,
    )


def product_create() -> Product:
    n = next(_numbers)
    return Product.objects.create(sku=f"DUE-{n:05d}", name="Mug", price_cents=1000)


def follow_up_create(due_at: datetime) -> FollowUp:
    return FollowUp.objects.create(order=order_create(), kind="review_request", due_at=due_at)


def lifecycle_step_create(due_at: datetime) -> LifecycleStep:
    subscription = Subscription.objects.create(
        email="ada@example.com", name="Ada", product=product_create(), status="cancelled", cycle=1
    )
    # A freeze: its run changes the subscription, and sends nothing.
    return LifecycleStep.objects.create(
        subscription=subscription, cycle=1, kind="freeze", due_at=due_at
    )


def image_create(due_at: datetime) -> ProductImage:
    # An internal address: the safe fetcher refuses it at once, without the network.
    return ProductImage.objects.create(
        product=product_create(),
        source_url=f"http://169.254.169.254/{next(_numbers)}.png",
        next_attempt_at=due_at,
    )


@dataclass(frozen=True)
class Runner:
    create: Callable[[datetime], Any]
    run: Callable[..., int]
    waiting: tuple[str, ...]  # the statuses of a row not yet run
    died: dict[str, str]  # what a run that died leaves on its row, besides its lease


RUNNERS = {
    "follow_ups": Runner(
        create=follow_up_create,
        run=follow_ups_due_run,
        waiting=("pending", "running"),
        died={"status": "running"},
    ),
    "lifecycle_steps": Runner(
        create=lifecycle_step_create,
        run=lifecycle_due_run,
        waiting=("pending", "running"),
        died={"status": "running"},
    ),
    "images": Runner(
        create=image_create,
        run=lambda **kwargs: sum(images_download_due(**kwargs).values()),
        waiting=("pending", "failed"),
        died={},
    ),
}
runners = pytest.mark.parametrize("runner", RUNNERS.values(), ids=RUNNERS.keys())


def taken(runner: Runner, rows) -> list[bool]:
    """For each row, whether a run took it (it is no longer waiting)."""
    for row in rows:
        row.refresh_from_db()
    return [row.status not in runner.waiting for row in rows]


@runners
@pytest.mark.django_db
def test_due_rows_run_in_due_order(runner):
    # Written in the order they were scheduled, not the order they fall due.
    later = runner.create(NOW - timedelta(hours=1))
    earliest = runner.create(NOW - timedelta(hours=3))
    earlier = runner.create(NOW - timedelta(hours=2))

    ran = runner.run(now=NOW, limit=2)

    assert ran == 2
    assert taken(runner, [earliest, earlier, later]) == [True, True, False]


@runners
@pytest.mark.django_db
def test_a_row_claimed_by_a_runner_that_died_elsewhere_is_taken_again_once_its_lease_lapses(
    runner,
):
    row = runner.create(NOW - timedelta(hours=1))
    leased = type(row).objects.filter(pk=row.pk)
    leased.update(
        lease_holder=ELSEWHERE,
        lease_token=1,
        lease_expires_at=Now() + timedelta(seconds=30),
        **runner.died,
    )

    while_it_lives = runner.run(now=NOW)
    leased.update(lease_expires_at=Now() - timedelta(seconds=1))  # not renewed: it died
    after_it_lapsed = runner.run(now=NOW)

    assert (while_it_lives, after_it_lapsed) == (0, 1)
    assert taken(runner, [row]) == [True]
    row.refresh_from_db()
    assert (row.lease_token, row.lease_expires_at) == (2, None)


@pytest.mark.django_db
def test_a_row_whose_run_outlives_the_old_stale_window_is_not_taken_by_another_runner():
    row = follow_up_create(NOW - timedelta(hours=1))
    ran = []

    def work(lease: Lease, now: datetime) -> str:
        ran.append(now)
        if len(ran) == 1:  # while it works, another runner comes eleven minutes later
            assert due.run(now=NOW + timedelta(minutes=11)) == {}
        return due_row_finish(lease=lease, status="done", now=now)

    due = DueRows(model=FollowUp, work=work)
    outcomes = due.run(now=NOW)

    assert (outcomes, ran) == ({"done": 1}, [NOW])
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("done", 1)


@pytest.mark.django_db
def test_a_stale_runs_outcome_is_fenced_off_once_another_run_took_the_row():
    row = follow_up_create(NOW - timedelta(hours=1))

    def work(lease: Lease, now: datetime) -> str:
        # It stalls past its lease, and another runner on another machine takes the row.
        FollowUp.objects.filter(pk=lease.pk).update(
            lease_holder=ELSEWHERE, lease_token=F("lease_token") + 1
        )
        return due_row_finish(lease=lease, status="done", now=now)

    outcomes = DueRows(model=FollowUp, work=work).run(now=NOW)

    assert outcomes == {"stale": 1}
    row.refresh_from_db()
    assert (row.status, row.lease_holder, row.finished_at) == ("running", ELSEWHERE, None)


@runners
@pytest.mark.django_db
def test_a_run_takes_no_more_than_its_limit_and_the_next_run_the_rest(runner):
    rows = [runner.create(NOW - timedelta(minutes=n)) for n in range(5)]

    first, second, third = (runner.run(now=NOW, limit=3) for _ in range(3))

    assert (first, second, third) == (3, 2, 0)
    assert taken(runner, rows) == [True] * 5


@runners
@pytest.mark.django_db(transaction=True)
def test_three_runners_at_once_run_each_due_row_once(runner):
    assert connection.vendor == "postgresql", "row claims are tested on PostgreSQL"
    # More rows than one batch: the runners take batches in turn while the others work.
    rows = [runner.create(NOW - timedelta(seconds=n)) for n in range(120)]
    ran = at_once(lambda: runner.run(now=NOW), threads=3)

    assert sum(ran) == 120
    assert taken(runner, rows) == [True] * 120


@pytest.mark.django_db
def test_a_row_whose_work_raises_keeps_its_error_and_waits_its_window_and_the_others_run():
    broken, fine = (follow_up_create(NOW - timedelta(hours=h)) for h in (2, 1))

    def work(lease: Lease, now: datetime) -> str:
        if lease.pk == broken.pk:
            raise ConnectionError("SMTP refused")
        return due_row_finish(lease=lease, status="done", now=now)

    due = DueRows(model=FollowUp, work=work)
    outcomes = due.run(now=NOW)
    within_the_window = due.run(now=NOW + timedelta(minutes=5))

    assert (outcomes, within_the_window) == ({"error": 1, "done": 1}, {})
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert (broken.status, broken.attempts, broken.last_error) == (
        "running",
        1,
        "ConnectionError: SMTP refused",
    )
    left = broken.lease_expires_at - database_now()
    assert (broken.lease_holder, timedelta(minutes=9) < left <= ERROR_WINDOW) == ("", True)
    assert (fine.status, fine.attempts, fine.finished_at, fine.lease_expires_at) == (
        "done",
        1,
        NOW,
        None,
    )
