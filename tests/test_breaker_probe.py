"""The circuit breaker after its cool-down (issue 16, finding 2): half-open let every
deferred step call at once, each spending an attempt before the breaker opened again.
Now exactly one call, the probe, goes through; the rest stay deferred until it answers."""

import time

import pytest

from engine.breaker import breaker_record, breaker_states, breaker_wait
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
    return at_once(lambda: breaker_wait(partner), threads=callers)


def test_after_the_cooldown_one_probe_goes_through_and_the_rest_stay_deferred(settings):
    settings.BREAKER_COOLDOWN_S = 0.2
    breaker_open("payment", settings)
    assert breaker_wait("payment") > 0
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
    assert breaker_wait("erp") == 0  # the probe

    opened_again = breaker_record("erp", ok=False)

    assert opened_again is False  # the same incident: no second alert
    assert all(wait > 0 for wait in waits_of_many_callers("erp"))
    assert breaker_states(("erp",))[0].state == "open"


def test_a_probe_that_succeeds_closes_the_breaker_for_everyone(settings):
    settings.BREAKER_COOLDOWN_S = 0.2
    breaker_open("carrier", settings)
    cooldown_over("carrier")
    assert breaker_wait("carrier") == 0  # the probe

    breaker_record("carrier", ok=True)

    assert waits_of_many_callers("carrier") == [0.0] * 24
    assert breaker_states(("carrier",))[0].state == "closed"


def test_a_probe_that_never_answers_is_replaced_after_its_time(settings):
    settings.BREAKER_COOLDOWN_S = 0.2
    settings.BREAKER_PROBE_S = 0.3
    breaker_open("analytics", settings)
    cooldown_over("analytics")
    assert breaker_wait("analytics") == 0  # a probe whose worker then died
    assert breaker_wait("analytics") > 0

    time.sleep(0.35)

    assert breaker_wait("analytics") == 0  # the next probe
    assert breaker_states(("analytics",))[0].probes == 2
