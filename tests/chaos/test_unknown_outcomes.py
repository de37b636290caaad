"""Finding 1 of issue 14 from outside, on the Procfile's worker lines: every partner's
answers lost for a while (the effects done, the answers never arriving, the look-ups
unanswered too). A payment whose outcome is unknown is settled, never failed."""

import time
from collections import Counter

import pytest

from harness.orders import orders_wait_settled
from harness.processes import wait_for
from orders.models import Order, Step
from tests.chaos.helpers import duplicates, effects_per_order, sent_subjects
from tests.factories import product_create

pytestmark = pytest.mark.chaos

ORDERS = 4
LOST_FOR_S = 20  # the policy's retries and the breaker's deferrals, many times over


def test_capture_with_every_answer_lost_for_a_while_completes_charged_once(rig, sandbox):
    product = product_create(stock=100)
    rig.start(copies=0)
    rig.procfile_start("worker_high", "worker_medium", "worker_low")
    lost = {"answers_lost_s": LOST_FOR_S, "lookups_lost_s": LOST_FOR_S}
    sandbox.post("/control", json=lost).raise_for_status()
    lost_until = time.monotonic() + LOST_FOR_S

    numbers = [rig.checkout([(product.sku, 1)])["number"] for _ in range(ORDERS)]
    payments = Step.objects.filter(order__number__in=numbers, name="payment_capture")
    # While the answers are lost the payments wait, unknown, past their policy's tries.
    wait_for(
        lambda: payments.filter(effect_unknown=True, attempts__gt=6).count() == ORDERS,
        timeout=LOST_FOR_S,
        what="every payment unknown past its six tries",
    )
    assert time.monotonic() < lost_until
    assert set(Order.objects.filter(number__in=numbers).values_list("status", flat=True)) == {
        "placed"
    }
    orders_wait_settled(numbers, timeout=LOST_FOR_S + 120)

    assert Counter(Order.objects.values_list("status", flat=True)) == Counter({"completed": ORDERS})
    assert set(payments.values_list("status", "effect_unknown")) == {("succeeded", False)}
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    assert effects_per_order(ledger, "payment", "refund") == Counter()
    assert duplicates(ledger) == []
    subjects = sent_subjects(rig.tmp / "mail")
    assert subjects == Counter({f"Your order {n} is confirmed": 1 for n in numbers})
    product.refresh_from_db()
    assert product.stock == 100 - ORDERS
