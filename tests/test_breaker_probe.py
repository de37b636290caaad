"""The circuit breaker after its cool-down (issue 16, finding 2): half-open let every
deferred step call at once, each spending an attempt before the breaker opened again.
Now exactly one call, the probe, goes through; the rest stay deferred until it answers."""

import time
from datetime import timedelta
from unittest import mock

import pytest
import redis
from celery.exceptions import Retry
from django.utils import timezone

from engine.breaker import Admission, breaker_admit, breaker_record, breaker_states
from orders.models import Step
from orders.tasks import payment_capture
from tests.factories import order_place, product_create
from tests.threads import at_once

# The breaker that opens alerts ops (an incident row): the database is there.
pytestmark = [pytest.mark.usefixtures("shared_state_in_test_redis"), pytest.mark.django_db]


def breaker_open(partner: str, settings) -> None:
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        breaker_record(partner, ok=False)


def cooldown_over(partner: str) -> None:
    """Wait for the open period to end (its Redis key to expire)."""
    deadline = time.monotonic() + 10
    while breaker_states((partner,))[0].state == "open":
        assert time.monotonic() < deadline, "the breaker never left its open period"
        time.sleep(0.01)


def waits_of_many_callers(partner: str, callers: int = 24) -> list[float]:
    """breaker_wait from many threads at once, as many deferred steps waking together."""
    return at_once(lambda: breaker_admit(partner).wait_s, threads=callers)


def test_after_the_cooldown_one_probe_goes_through_and_the_rest_stay_deferred(settings):
    # Long enough to see it open behind the opening's alert on a busy machine.
    settings.BREAKER_COOLDOWN_S = 1
    breaker_open("payment", settings)
    assert breaker_admit("payment").wait_s > 0
    cooldown_over("payment")

    waits = waits_of_many_callers("payment")

    assert waits.count(0.0) == 1  # one caller probes; the others wait for its answer
    assert all(0 < wait <= settings.BREAKER_PROBE_S for wait in waits if wait)
    [state] = breaker_states(("payment",))
    assert (state.state, state.probes) == ("probing", 1)


def test_a_failed_probe_opens_the_breaker_again_for_everyone(settings):
    settings.BREAKER_COOLDOWN_S = 0.2
    breaker_open("erp", settings)
    cooldown_over("erp")
    assert breaker_admit("erp") == Admission(0.0, probe=True)  # the probe

    opened_again = breaker_record("erp", ok=False)

    assert opened_again is False  # the same incident: no second alert
    assert all(wait > 0 for wait in waits_of_many_callers("erp"))
    assert breaker_states(("erp",))[0].state == "open"


def test_a_probe_that_succeeds_closes_the_breaker_for_everyone(settings):
    settings.BREAKER_COOLDOWN_S = 0.2
    breaker_open("carrier", settings)
    cooldown_over("carrier")
    assert breaker_admit("carrier") == Admission(0.0, probe=True)  # the probe

    breaker_record("carrier", ok=True)

    assert waits_of_many_callers("carrier") == [0.0] * 24
    assert breaker_states(("carrier",))[0].state == "closed"


def test_a_probe_that_never_answers_is_replaced_after_its_time(settings):
    settings.BREAKER_COOLDOWN_S = 0.2
    settings.BREAKER_PROBE_S = 0.3
    breaker_open("analytics", settings)
    cooldown_over("analytics")
    # A probe whose worker then died:
    assert breaker_admit("analytics") == Admission(0.0, probe=True)
    assert breaker_admit("analytics").wait_s > 0

    time.sleep(0.35)

    assert breaker_admit("analytics") == Admission(0.0, probe=True)  # the next probe
    assert breaker_states(("analytics",))[0].probes == 2


def payment_of(order) -> Step:
    return order.steps.get(name="payment_capture")


def test_a_step_whose_probe_fails_waits_for_the_breaker_without_spending_its_retries(
    sandbox, settings
):
    """Whether an order survived a long outage was a lottery: the deferred steps waited
    for free, but the one that took the probe spent an attempt on it, and one out of its
    delays and past its budget was dead-lettered (its order payment_failed)."""
    settings.BREAKER_COOLDOWN_S = 0.2
    settings.PIPELINE_RETRY_BUDGET_SCALE = 1
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="payment_capture").update(
        status="retrying", attempts=6, queued_at=timezone.now() - timedelta(minutes=20)
    )
    sandbox.post("/control", json={"outages": {"payment": {"for_s": 600}}}).raise_for_status()
    breaker_open("payment", settings)
    cooldown_over("payment")

    with mock.patch.object(payment_capture, "retry", side_effect=Retry("deferred")) as retry:
        payment_capture.apply(args=(order.pk,))

    step = payment_of(order)
    assert (step.status, step.attempts) == ("retrying", 6)
    assert step.last_error == (
        "deferred: payment probe failed: PartnerUnavailable: payment answered 503"
    )
    assert retry.call_args.kwargs["countdown"] >= settings.BREAKER_COOLDOWN_S
    order.refresh_from_db()
    assert order.status == "placed"
    [call] = sandbox.get("/control").json()["outages"]["payment"]["calls_at_s"]  # the probe
    assert breaker_states(("payment",))[0].state == "open"


def test_a_probe_that_succeeds_wakes_every_step_the_breaker_deferred_at_once(sandbox, settings):
    """The steps that found the probe in flight waited out its whole token
    (BREAKER_PROBE_S) though it had answered in milliseconds: after an outage every
    order's payment sat a quarter of a minute behind the one that probed."""
    settings.BREAKER_COOLDOWN_S = 0.2
    prober, *waiting = [order_place((product_create(), 1)).order for _ in range(3)]
    breaker_open("payment", settings)
    for order in waiting:
        with mock.patch.object(payment_capture, "retry", side_effect=Retry("deferred")):
            payment_capture.apply(args=(order.pk,))
    assert {payment_of(o).status for o in waiting} == {"retrying"}
    cooldown_over("payment")

    with mock.patch("engine.dispatch.step_message_send") as send:
        payment_capture.apply(args=(prober.pk,))

    assert payment_of(prober).status == "succeeded"
    woken = sorted(c.kwargs["subject_id"] for c in send.call_args_list)
    assert woken == sorted(o.pk for o in waiting)
    assert {c.kwargs["task"] for c in send.call_args_list} == {"orders.payment_capture"}
    assert breaker_states(("payment",))[0].state == "closed"


def test_a_caller_that_saw_the_cooldown_end_as_the_probe_failed_does_not_probe_again(settings):
    """The drill found two probes in one cool-down: a caller read "cool-down over" just
    before the probe's failure was recorded, and took the probe token the failure had
    just deleted. Now the failure keeps the token for the new cool-down."""
    settings.BREAKER_COOLDOWN_S = 0.2
    breaker_open("payment", settings)
    cooldown_over("payment")
    assert breaker_admit("payment").probe
    breaker_record("payment", ok=False)  # the probe failed: open again

    # What the late caller read before that failure: the open period over, still tripped.
    with mock.patch.object(redis.client.Pipeline, "execute", return_value=[-2, 1]):
        late = breaker_admit("payment")

    assert late.probe is False
    assert late.wait_s > 0
    assert breaker_states(("payment",))[0].probes == 1
