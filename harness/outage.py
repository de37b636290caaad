"""The outage drill (issue 16), one scenario for the system test and the benchmark: the
payment partner answers 503 for a while, orders are placed at a steady pace throughout,
then it recovers; the figures say whether every order came through, once.

The environment the rig's processes need to run the drill at `scale` of real time
(`drill_env`): the outage, the breaker's cool-down and window, the retry delays and the
retry budgets all shrink by the same factor, so their ratios stay production's (a
15-minute outage against the 15-minute payment budget). Reads the models: import it
after Django is set up.
"""

import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.db.models import Max, Min

from engine.liveness import database_now
from harness.orders import orders_wait_settled
from orders.models import Order, Step

# Production's outage of the drill; its Retry-After: none (a gateway that says nothing).
OUTAGE_S = 15 * 60


def drill_env(*, scale: float) -> dict[str, str]:
    """Settings for the rig's processes at `scale` of real time (1: production's own).
    BREAKER_PROBE_S is not scaled: it must stay above a call's timeout, which is not."""
    return {
        "PIPELINE_RETRY_DELAY_SCALE": str(scale),
        "PIPELINE_RETRY_BUDGET_SCALE": str(scale),
        "BREAKER_COOLDOWN_S": str(settings.BREAKER_COOLDOWN_S * scale),
        "BREAKER_WINDOW_S": str(max(1, round(settings.BREAKER_WINDOW_S * scale))),
        "BREAKER_PROBE_S": str(max(2.0, settings.BREAKER_PROBE_S * scale)),
    }


@dataclass(frozen=True)
class DrillFigures:
    outage_s: float
    cooldown_s: float
    placed: int
    completed: int
    dead_lettered: int  # failed steps of the drill's orders
    charged_twice: int  # orders with more than one capture in the gateway's ledger
    uncharged: int  # orders with none
    # From recovery (the database's clock) to the first payment after it (the probe that
    # closed the breaker: the cool-down under way), to the last one, to the last step.
    recovery_to_first_paid_s: float
    recovery_to_last_paid_s: float
    recovery_to_last_completed_s: float
    payment_calls_in_outage: int
    probes: int  # calls after the breaker's first quiet cool-down
    most_probes_in_a_cooldown: int

    def as_json(self) -> dict:
        return asdict(self)


def probes_of(calls_at_s: list[float], *, cooldown_s: float) -> list[float]:
    """The probes among a partner's calls during an outage: those after the first gap of
    a cool-down or more. The calls before it are the failures that opened the breaker
    (and any that passed it as it opened); with the breaker open, only probes call."""
    calls = sorted(calls_at_s)
    for n in range(1, len(calls)):
        if calls[n] - calls[n - 1] >= cooldown_s:
            return calls[n:]
    return []


def most_in_a_window(times: list[float], *, window_s: float) -> int:
    """The most of these times within any span shorter than window_s."""
    times = sorted(times)
    return max((sum(1 for t in times[n:] if t - start < window_s) for n, start in
                enumerate(times)), default=0)  # fmt: skip


def drill_run(
    rig, sandbox: httpx.Client, *, sku: str, outage_s: float, pace_s: float, settle_s: float
) -> tuple[list[str], DrillFigures]:
    """Script the payment outage on the sandbox, check out one order every pace_s on the
    rig while it lasts, wait (up to settle_s) until every order has settled, and return
    their numbers and the drill's figures."""
    started = database_now()
    sandbox.post("/control", json={"outages": {"payment": {"for_s": outage_s}}}).raise_for_status()
    numbers = []
    while _outage_of_payment(sandbox)["remaining_s"] > 0:
        numbers.append(rig.checkout([(sku, 1)])["number"])
        time.sleep(pace_s)  # the pace of the shop's customers, not a wait for anything
    orders_wait_settled(numbers, timeout=settle_s)
    cooldown_s = float(rig.env["BREAKER_COOLDOWN_S"])
    calls = _outage_of_payment(sandbox)["calls_at_s"]
    probes = probes_of(calls, cooldown_s=cooldown_s)
    captures = Counter(
        effect["order"]
        for effect in sandbox.get("/ledger").json()["payment"]["effects"]
        if effect["kind"] == "capture"
    )
    steps = Step.objects.filter(order__number__in=numbers)
    recovered = started + timedelta(seconds=outage_s)

    def recovery_to(when) -> float:
        return round((when - recovered).total_seconds(), 2)

    payments = steps.filter(name="payment_capture")
    first_paid = payments.filter(finished_at__gte=recovered).aggregate(t=Min("finished_at"))

    return numbers, DrillFigures(
        outage_s=outage_s,
        cooldown_s=cooldown_s,
        placed=len(numbers),
        completed=Order.objects.filter(number__in=numbers, status=Order.Status.COMPLETED).count(),
        dead_lettered=steps.filter(status=Step.Status.FAILED).count(),
        charged_twice=sum(1 for n in numbers if captures[n] > 1),
        uncharged=sum(1 for n in numbers if captures[n] == 0),
        recovery_to_first_paid_s=recovery_to(first_paid["t"]),
        recovery_to_last_paid_s=recovery_to(payments.aggregate(t=Max("finished_at"))["t"]),
        recovery_to_last_completed_s=recovery_to(steps.aggregate(t=Max("finished_at"))["t"]),
        payment_calls_in_outage=len(calls),
        probes=len(probes),
        most_probes_in_a_cooldown=most_in_a_window(probes, window_s=cooldown_s),
    )


def _outage_of_payment(sandbox: httpx.Client) -> dict:
    return sandbox.get("/control").json()["outages"]["payment"]
