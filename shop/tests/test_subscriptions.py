"""The cancellation lifecycle: due rows in the customer's time zone, run once each."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.db.models.functions import Now

from shop.models import LifecycleStep, Product, Subscription
from shop.subscriptions import (
    lifecycle_due_at,
    lifecycle_due_run,
    subscription_cancel,
    subscription_reactivate,
)
from shop.tasks import run_subscription_lifecycle
from tests.threads import at_once


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def subscription_create(zone: str = "Europe/Berlin") -> Subscription:
    product = Product.objects.create(
        sku=f"SUB-{Product.objects.count()}",
        name="Coffee club",
        price_cents=1500,
        is_subscription=True,
    )
    return Subscription.objects.create(
        email="ada@example.com", name="Ada", product=product, timezone=zone
    )


def test_day_n_is_ten_in_the_morning_local_time_across_a_dst_change():
    # Cancelled on 20 March, 16:00 in Berlin (CET, UTC+1); clocks go forward on 29 March.
    cancelled = utc(2026, 3, 20, 15, 0)

    due = {
        days: lifecycle_due_at(cancelled_at=cancelled, zone="Europe/Berlin", days=days)
        for days in (3, 14, 90)
    }

    assert due == {
        3: utc(2026, 3, 23, 9, 0),  # 10:00 CET
        14: utc(2026, 4, 3, 8, 0),  # 10:00 CEST
        90: utc(2026, 6, 18, 8, 0),
    }


def test_day_n_counts_from_the_customers_calendar_date_not_utcs():
    # 06:30 UTC on 24 November is still the evening of the 23rd in Los Angeles.
    due = lifecycle_due_at(
        cancelled_at=utc(2026, 11, 24, 6, 30), zone="America/Los_Angeles", days=3
    )

    assert due == utc(2026, 11, 26, 18, 0)  # 10:00 PST on the 26th


@pytest.mark.django_db
def test_the_lifecycle_runs_each_step_once_on_its_day(shared_state_in_test_redis):
    subscription = subscription_create()
    with time_machine.travel(utc(2026, 3, 20, 15, 0), tick=False):
        subscription_cancel(subscription_id=subscription.pk)
    seen = []

    for moment in [
        utc(2026, 3, 23, 8, 59),  # a minute before day 3's 10:00: nothing yet
        utc(2026, 3, 23, 9, 0),
        utc(2026, 3, 27, 9, 0),
        utc(2026, 4, 3, 8, 0),
        utc(2026, 4, 19, 8, 0),
        utc(2026, 6, 18, 8, 0),
    ]:
        with time_machine.travel(moment, tick=False):
            run_subscription_lifecycle.apply()
            lifecycle_due_run()  # a second run at the same moment changes nothing
        subscription.refresh_from_db()
        seen.append((subscription.status, len(mail.outbox)))

    assert seen == [
        ("cancelled", 0),
        ("cancelled", 1),
        ("cancelled", 2),
        ("frozen", 2),
        ("suspended", 2),
        ("archived", 2),
    ]
    assert [m.subject for m in mail.outbox] == [
        "We miss you at Shopflow",
        "Your Coffee club subscription is waiting",
    ]
    assert set(subscription.lifecycle.values_list("status", flat=True)) == {"done"}


@pytest.mark.django_db
def test_reactivating_cancels_every_pending_step_and_a_new_cancel_starts_a_new_cycle():
    subscription = subscription_create("America/New_York")
    subscription_cancel(subscription_id=subscription.pk, now=utc(2026, 1, 5, 12, 0))
    lifecycle_due_run(now=utc(2026, 1, 8, 15, 0))  # the day-3 email goes out

    cancelled = subscription_reactivate(subscription_id=subscription.pk)
    ran = lifecycle_due_run(now=utc(2026, 5, 1))
    subscription_cancel(subscription_id=subscription.pk, now=utc(2026, 6, 1, 12, 0))

    assert (cancelled, ran) == (4, 0)
    rows = list(
        subscription.lifecycle.order_by("cycle", "due_at").values_list("cycle", "kind", "status")
    )
    assert rows[:5] == [
        (1, "winback", "done"),
        (1, "winback_second", "cancelled"),
        (1, "freeze", "cancelled"),
        (1, "suspend", "cancelled"),
        (1, "archive", "cancelled"),
    ]
    assert [(c, s) for c, _, s in rows[5:]] == [(2, "pending")] * 5
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cycle) == ("cancelled", 2)
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_step_claimed_before_a_reactivation_does_nothing_after_it():
    subscription = subscription_create()
    subscription_cancel(subscription_id=subscription.pk, now=utc(2026, 1, 5, 12, 0))
    freeze = subscription.lifecycle.get(kind="freeze")
    LifecycleStep.objects.filter(pk=freeze.pk).update(
        status="running", lease_token=1, lease_expires_at=Now() + timedelta(seconds=30)
    )
    subscription_reactivate(subscription_id=subscription.pk)
    # Its run died before it wrote anything: its lease lapses and it is taken again.
    LifecycleStep.objects.filter(pk=freeze.pk).update(lease_expires_at=Now() - timedelta(seconds=1))

    lifecycle_due_run(now=utc(2026, 1, 19, 9, 30))

    freeze.refresh_from_db()
    subscription.refresh_from_db()
    assert (freeze.status, subscription.status) == ("cancelled", "active")


@pytest.mark.django_db(transaction=True)
def test_three_workers_picking_up_the_same_due_row_send_one_email():
    assert connection.vendor == "postgresql", "row claims are tested on PostgreSQL"
    subscription = subscription_create()
    subscription_cancel(subscription_id=subscription.pk, now=utc(2026, 1, 5, 12, 0))
    ran = at_once(lambda: lifecycle_due_run(now=utc(2026, 1, 8, 9, 0)), threads=3)

    assert sorted(ran) == [0, 0, 1]
    assert len(mail.outbox) == 1
    assert subscription.lifecycle.get(kind="winback").status == "done"
