import pytest
from django.core.management import call_command

from engine.dead_letters import dead_letters_retry
from orders.models import DeadLetter, Order
from orders.tasks import analytics_track, payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def dead_analytics_step(sandbox, settings):
    """An order whose analytics step ran out of retries against a failing collector."""
    settings.BREAKER_FAILURE_THRESHOLD = 100
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    analytics_track.apply(args=(order.pk,))
    sandbox.post("/control", json={"failure_rate": 0.0}).raise_for_status()
    return order


def test_a_step_out_of_retries_is_a_dead_letter_with_its_error_and_traceback(sandbox, settings):
    order = dead_analytics_step(sandbox, settings)

    [letter] = DeadLetter.objects.all()
    assert (letter.order, letter.name, letter.attempts) == (order, "analytics_track", 4)
    assert letter.last_error == "PartnerUnavailable: analytics answered 503"
    assert "Traceback" in letter.last_traceback
    assert letter.finished_at is not None
    order.refresh_from_db()
    assert order.status == "needs_attention"


def test_retrying_a_dead_letter_gives_it_fresh_attempts_and_the_order_completes(
    sandbox, settings, django_capture_on_commit_callbacks
):
    order = dead_analytics_step(sandbox, settings)
    letter = DeadLetter.objects.get()

    with django_capture_on_commit_callbacks() as callbacks:
        report = dead_letters_retry(step_ids=[letter.pk, letter.pk])
    analytics_track.apply(args=(order.pk,))

    assert report.retried == [(order.number, "analytics_track")]
    assert len(callbacks) == 1
    step = order.steps.get(name="analytics_track")
    assert (step.status, step.attempts, step.last_error) == ("succeeded", 1, "")
    assert DeadLetter.objects.count() == 0
    # The other steps never ran in this test; the order is paid, not yet completed.
    order.refresh_from_db()
    assert order.status == "paid"


def test_a_dead_payment_is_not_retried_because_its_order_has_ended(sandbox):
    order = order_place((product_create(), 1), payment_token="tok_decline").order
    payment_capture.apply(args=(order.pk,))

    report = dead_letters_retry(step_ids=list(DeadLetter.objects.values_list("pk", flat=True)))

    assert report.retried == []
    assert report.skipped == [(order.number, "payment_capture", "the order is payment_failed")]
    assert Order.objects.get(pk=order.pk).steps.get(name="payment_capture").status == "failed"


def test_dead_letters_command_lists_and_retries_by_step(sandbox, settings, capsys):
    order = dead_analytics_step(sandbox, settings)

    call_command("dead_letters", "list", "--step", "analytics_track", "--since", "1h")
    listed = capsys.readouterr().out
    call_command("dead_letters", "retry", "--step", "payment_capture")
    none_retried = capsys.readouterr().out
    call_command("dead_letters", "retry", "--since", "1h")
    retried = capsys.readouterr().out

    assert f"{order.number}  analytics" in listed
    assert "attempts=4" in listed and "analytics answered 503" in listed
    assert listed.endswith("1 dead letters\n")
    assert none_retried == "retried 0, skipped 0\n"
    assert retried == "retried 1, skipped 0\n"
