import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from config.celery import app
from engine.reconcile import steps_reconcile
from notifications.models import Alert
from ops.alerts import alerts_check
from orders.models import Step
from tests.factories import order_place, product_create

# Reads and writes counters and breakers in Redis.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("shared_state_in_test_redis")]


@pytest.fixture
def empty_queues():
    app.control.purge()
    yield
    app.control.purge()


def fail_steps(count: int) -> None:
    for _ in range(count):
        order = order_place((product_create(), 1)).order
        Step.objects.filter(order=order, name="analytics_track").update(status=Step.Status.FAILED)


def test_dead_letters_past_the_threshold_email_ops_once_per_incident(settings, empty_queues):
    settings.ALERT_DEAD_LETTERS = 2
    fail_steps(3)

    first = alerts_check()
    second = alerts_check()

    assert [(c.kind, c.subject) for c in first] == [("dead_letters", "all")]
    assert [(c.kind, c.subject) for c in second] == [("dead_letters", "all")]
    [message] = mail.outbox
    assert message.subject == "[shopflow alert] dead letters above threshold: all"
    assert message.body == "3 dead letters (threshold 2); see Orders › Dead letters in the admin."


def test_an_incident_resolves_when_it_clears_and_a_new_one_mails_again(settings, empty_queues):
    settings.ALERT_DEAD_LETTERS = 0
    fail_steps(1)
    alerts_check()

    Step.objects.filter(status=Step.Status.FAILED).update(status=Step.Status.SUCCEEDED)
    alerts_check()
    fail_steps(1)
    alerts_check()

    assert (
        list(Alert.objects.order_by("opened_at").values_list("resolved_at", flat=True))[1] is None
    )
    assert Alert.objects.filter(resolved_at__isnull=False).count() == 1
    assert len(mail.outbox) == 2


def test_a_queue_backlog_and_an_old_waiting_step_raise_alerts_for_that_queue(
    settings, empty_queues
):
    settings.ALERT_QUEUE_DEPTH = 2
    for _ in range(3):
        app.send_task("shopflow.nothing", queue="bulk")
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="payment_capture").update(
        status=Step.Status.QUEUED, queued_at=timezone.now() - timedelta(seconds=90)
    )

    firing = alerts_check()

    assert sorted((c.kind, c.subject) for c in firing) == [
        ("queue_age", "high"),
        ("queue_depth", "bulk"),
    ]
    assert sorted(m.subject for m in mail.outbox) == [
        "[shopflow alert] oldest waiting job above threshold: high",
        "[shopflow alert] queue backlog above threshold: bulk",
    ]


def queued(order, name: str, *, seconds_ago: float) -> None:
    """The order's step waiting on its queue since then, its message published then."""
    at = timezone.now() - timedelta(seconds=seconds_ago)
    Step.objects.filter(order=order, name=name).update(
        status=Step.Status.QUEUED, queued_at=at, published_at=at
    )


def test_each_queue_alerts_when_its_oldest_step_waits_past_its_own_promise(settings, empty_queues):
    order = order_place((product_create(), 1)).order
    queued(order, "payment_capture", seconds_ago=45)  # high promises 30 s
    queued(order, "erp_sync", seconds_ago=240)  # medium promises 5 min
    queued(order, "analytics_track", seconds_ago=31 * 60)  # low promises 30 min

    firing = alerts_check()

    assert sorted((c.kind, c.subject) for c in firing) == [
        ("queue_age", "high"),
        ("queue_age", "low"),
    ]
    high = Alert.objects.get(kind="queue_age", subject="high")
    assert re.fullmatch(
        r"The oldest step queued on high has waited 4[56]s, past the queue's promise of 30s "
        r"\(QUEUE_MAX_WAIT_HIGH_S\)\.",
        high.message,
    )


def test_a_queues_promise_is_a_setting(settings, empty_queues):
    settings.QUEUE_MAX_WAIT_S = {**settings.QUEUE_MAX_WAIT_S, "high": 60}
    order = order_place((product_create(), 1)).order
    queued(order, "payment_capture", seconds_ago=45)

    assert alerts_check() == []


def test_a_step_published_again_keeps_its_queue_age_from_its_first_queued_at(
    settings, empty_queues
):
    settings.RECONCILE_QUEUED_AFTER_S = 60
    order = order_place((product_create(), 1)).order
    queued(order, "payment_capture", seconds_ago=120)  # its message lost

    report = steps_reconcile()
    firing = alerts_check()

    assert report.redispatched == [(order.number, "payment_capture", "queued")]
    assert [(c.kind, c.subject) for c in firing] == [("queue_age", "high")]
    assert re.match(r"The oldest step queued on high has waited 12[01]s", firing[0].message)
