from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from config.celery import app
from notifications.models import Alert
from ops.alerts import alerts_check
from orders.models import Step
from tests.factories import order_place, product_create

# Reads and writes counters, breakers and job leases in Redis.
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
    settings.ALERT_QUEUE_AGE_S = 60
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
