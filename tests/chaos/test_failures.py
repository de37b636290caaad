"""Chaos beyond worker kills: broker restart, duplicate delivery, flaky partners,
a poison pill, cancels at random moments, and the recovery delay after a kill."""

import random
import statistics
import threading
import time
import uuid
from collections import Counter

import pytest

from harness.orders import KINDS, orders_wait_settled, rerun_delay_after_kill
from harness.processes import wait_for
from orders.models import DeadLetter, Order, Step
from orders.selectors import order_cancel_key
from shop.models import Product
from tests.chaos.helpers import duplicates, effects_per_order
from tests.factories import product_create

pytestmark = pytest.mark.chaos

UNDO = {
    ("payment", "capture"): "refund",
    ("erp", "order_sync"): "order_cancel",
    ("carrier", "label"): "label_void",
}


def test_redis_restarted_mid_run_loses_no_order(rig, sandbox):
    product = product_create(stock=10_000)
    rig.start(workers=2, concurrency=2)
    placed: list[dict] = []

    def place_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            placed.append(rig.checkout([(product.sku, 1)]))

    placing = threading.Thread(target=place_for, args=(6,))
    placing.start()
    wait_for(lambda: len(placed) >= 5, timeout=30, what="orders placed before the restart")
    rig.redis_restart(down_for=2)  # checkouts go on while the broker is down
    placing.join()
    numbers = [p["number"] for p in placed]
    orders_wait_settled(numbers, timeout=120)

    assert len(numbers) > 10
    assert Counter(Order.objects.values_list("status", flat=True)) == Counter(
        {"completed": len(numbers)}
    )
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    assert duplicates(ledger) == []


def test_the_same_step_message_delivered_twice_at_once_has_one_effect(rig, sandbox):
    from orders.tasks import payment_capture

    rig.start(workers=2, concurrency=2)
    sandbox.post("/control", json={"latency_ms": [800, 800]}).raise_for_status()
    order = Order.objects.get(number=rig.checkout([(product_create().sku, 1)])["number"])
    orders_wait_settled([order.number], timeout=60)
    Step.objects.filter(order=order, name="payment_capture").update(status=Step.Status.QUEUED)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PLACED)

    task_id = str(uuid.uuid4())
    with rig.producer() as send:
        for _ in range(2):  # the same message, twice, at the same moment
            send(payment_capture.s(order.pk).set(task_id=task_id, queue="high"))
    wait_for(
        lambda: sum(worker.deliveries_ended(task_id) for worker in rig.workers) == 2,
        timeout=30,
        what="both deliveries run to their end",
    )

    payment = sandbox.get("/ledger").json()["payment"]
    assert [e["order"] for e in payment["effects"]] == [order.number]
    step = Step.objects.get(order=order, name="payment_capture")
    assert (step.status, step.attempts) == ("succeeded", 2)


def test_flaky_partners_with_timeouts_double_nothing_and_explain_every_failure(rig, sandbox):
    products = [product_create(stock=10_000) for _ in range(3)]
    rig.start(workers=2, concurrency=4)
    sandbox.post(
        "/control", json={"failure_rate": 0.3, "timeout_rate": 0.05, "timeout_s": 1.5}
    ).raise_for_status()

    placed = rig.checkout_many([[(products[n % 3].sku, 1)] for n in range(60)])
    numbers = [p["number"] for p in placed]
    orders_wait_settled(numbers, timeout=180)

    ledger = sandbox.get("/ledger").json()
    assert duplicates(ledger) == []
    statuses = Counter(Order.objects.values_list("status", flat=True))
    assert set(statuses) <= {"completed", "needs_attention", "payment_failed"}
    for order in Order.objects.exclude(status="completed"):
        dead = list(DeadLetter.objects.filter(order=order).values_list("name", "last_error"))
        assert dead and all(error for _, error in dead), (order.number, dead)
    completed = list(Order.objects.filter(status="completed").values_list("number", flat=True))
    captures = effects_per_order(ledger, "payment", "capture")
    assert all(captures[n] == 1 for n in completed)
    print(f"\nflaky partners: orders=60 {dict(statuses)} dead letters={DeadLetter.objects.count()}")


def test_a_poison_pill_is_dead_lettered_and_other_orders_keep_flowing(rig, sandbox, settings):
    from tests.chaos.poison import poison_invoice

    products = [product_create(stock=10_000) for _ in range(2)]
    # No reconciliation loop: it would re-dispatch the real (healthy) invoice task in
    # place of the poisoned one; this test is about redelivery after a dead worker.
    rig.start(workers=2, concurrency=2, include=("tests.chaos.poison",), reconcile=False)
    victim = Order.objects.get(number=rig.checkout([(products[0].sku, 1)])["number"])
    orders_wait_settled([victim.number], timeout=60)
    Step.objects.filter(order=victim, name="invoice_render").update(status=Step.Status.QUEUED)

    with rig.producer() as send:
        send(poison_invoice.s(victim.pk).set(queue="medium"))
    others = [p["number"] for p in rig.checkout_many([[(products[1].sku, 1)]] * 20)]
    orders_wait_settled(others, timeout=120)
    wait_for(
        DeadLetter.objects.filter(order=victim).exists, timeout=60, what="the victim dead-lettered"
    )

    invoice = Step.objects.get(order=victim, name="invoice_render")
    assert (invoice.status, invoice.crashes) == ("failed", settings.STEP_MAX_CRASHES)
    assert invoice.last_error == "PoisonPill: the worker died 3 times running this step"
    assert Counter(
        Order.objects.filter(number__in=others).values_list("status", flat=True)
    ) == Counter({"completed": 20})


def test_cancels_at_random_moments_are_compensated_exactly_once(rig, sandbox):
    products = [product_create(stock=10_000) for _ in range(2)]
    rig.start(workers=2, concurrency=4)
    sandbox.post("/control", json={"latency_ms": [20, 200]}).raise_for_status()
    rng = random.Random(3)

    placed = rig.checkout_many([[(products[n % 2].sku, 1)] for n in range(30)])
    answers = {}
    for order in placed:
        time.sleep(rng.uniform(0, 0.15))
        key = order_cancel_key(order=Order.objects.get(number=order["number"]))
        answers[order["number"]] = rig.cancel(order["token"], cancel_key=key).status_code
    numbers = [p["number"] for p in placed]
    orders_wait_settled(numbers, timeout=120)

    # A customer's cancel is refused (409) once the ERP sync started: that order ships.
    assert set(answers.values()) <= {200, 409}
    cancelled = {number for number, code in answers.items() if code == 200}
    ledger = sandbox.get("/ledger").json()
    assert duplicates(ledger) == []
    for (partner, kind), undo in UNDO.items():
        done = effects_per_order(ledger, partner, kind)
        undone = effects_per_order(ledger, partner, undo)
        assert undone == Counter({n: c for n, c in done.items() if n in cancelled})
    assert dict(Order.objects.values_list("number", "status")) == {
        number: "cancelled" if number in cancelled else "completed" for number in numbers
    }
    assert sum(p.stock for p in Product.objects.filter(pk__in=[p.pk for p in products])) == (
        20_000 - (len(numbers) - len(cancelled))
    )
    compensated = sum(effects_per_order(ledger, p, k).total() for p, k in UNDO)
    print(f"\ncancel chaos: orders=30 cancelled={len(cancelled)} compensations={compensated}")


def test_time_from_a_worker_death_to_its_step_running_again(rig, sandbox):
    """No backlog: how long a step held by a killed process waits before it runs again."""
    product = product_create(stock=10_000)
    rig.start(workers=2, concurrency=1)
    sandbox.post("/control", json={"latency_ms": [800, 800]}).raise_for_status()
    delays: dict[str, list[float]] = {kind: [] for kind in KINDS}
    numbers = []

    for kind in KINDS * 2:
        delay, number = rerun_delay_after_kill(rig, sku=product.sku, kind=kind)
        delays[kind].append(delay)
        numbers.append(number)

    # Each payment ran twice (the killed run and the re-run) and captured once.
    payments = Step.objects.filter(order__number__in=numbers, name="payment_capture")
    assert (
        sorted(payments.values_list("status", "attempts", "crashes")) == [("succeeded", 2, 1)] * 4
    )
    assert Counter(
        Order.objects.filter(number__in=numbers).values_list("status", flat=True)
    ) == Counter({"completed": 4})
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    print(
        "\nre-run delay after SIGKILL (no backlog): "
        + ", ".join(
            f"{k}: median {statistics.median(d):.2f}s max {max(d):.2f}s" for k, d in delays.items()
        )
    )
