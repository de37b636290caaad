"""Chaos beyond worker kills: broker restart, duplicate delivery, flaky partners,
a poison pill, cancels at random moments, and the recovery delay after a kill."""

import random
import statistics
import threading
import time
import uuid
from collections import Counter

import pytest

from fulfillment.models import Invoice
from harness.orders import orders_wait_settled, rerun_delay_after_kill
from harness.processes import wait_for
from orders.models import DeadLetter, Order, Step
from orders.selectors import order_cancel_key
from shop.models import Product
from tests.chaos.helpers import duplicates, effects_per_order, partners_slow_but_answering
from tests.factories import product_create

pytestmark = pytest.mark.chaos

UNDO = {
    ("payment", "capture"): "refund",
    ("erp", "order_sync"): "order_cancel",
    ("carrier", "label"): "label_void",
}


def test_redis_restarted_mid_run_loses_no_order(rig, sandbox):
    """Prefork workers, not the Procfile's lines: a worker with a pool of threads (Celery
    5.7) stops consuming for good after its broker connection drops ("Error on stopping
    Hub", then silence; celery/celery#8030), which needs the watchdog of workers that live
    but no longer consume, not a retry here."""
    product = product_create(stock=10_000)
    rig.start(copies=0)
    rig.prefork_start(workers=2, concurrency=2)
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

    rig.start()
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
    rig.start()
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


def test_a_poison_pill_in_a_pool_of_threads_is_dead_lettered_alone_and_its_neighbours_run_again(
    rig, sandbox, settings
):
    from tests.chaos.poison import POISON_EMAIL

    product = product_create(stock=10_000)
    # Partners slow but answering: ERP syncs (on worker_medium, beside the invoices) last
    # while the pill takes aim.
    partners_slow_but_answering(rig)
    rig.start(include=("tests.chaos.poison",))
    (medium,) = [w for w in rig.workers if w.name == "worker_medium"]
    sandbox.post("/control", json={"latency_ms": [2000, 2000]}).raise_for_status()
    innocent = [p["number"] for p in rig.checkout_many([[(product.sku, 1)]] * 6)]
    wait_for(
        lambda: Step.objects.filter(name="erp_sync", status="running").count() >= 3,
        timeout=60,
        what="innocent ERP syncs running on worker_medium",
    )
    victim = rig.checkout([(product.sku, 1)], email=POISON_EMAIL)["number"]
    wait_for(lambda: medium.process.poll() is not None, timeout=60, what="the pill's kill")
    medium.restart()  # as a supervisor would
    orders_wait_settled([*innocent, victim], timeout=180)

    pill = Step.objects.get(order__number=victim, name="invoice_render")
    assert (pill.status, pill.crashes, pill.suspect) == ("failed", settings.STEP_MAX_CRASHES, True)
    assert pill.last_error == "PoisonPill: the worker died 3 times running this step"
    assert list(DeadLetter.objects.values_list("order__number", "name")) == [
        (victim, "invoice_render")
    ]
    steps = Step.objects.filter(order__number__in=innocent)
    assert set(steps.values_list("status", "crashes")) == {("succeeded", 0)}
    killed_beside = steps.filter(suspect=True)
    assert killed_beside.count() >= 3
    # Run again, unblamed: once, or more when the run after the death first asks the
    # partner about the killed call, which the partner may still be working on (409).
    assert min(killed_beside.values_list("attempts", flat=True)) >= 2
    assert Counter(
        Order.objects.filter(number__in=innocent).values_list("status", flat=True)
    ) == Counter({"completed": 6})
    ledger = sandbox.get("/ledger").json()
    assert duplicates(ledger) == []
    assert effects_per_order(ledger, "erp", "order_sync") == Counter(
        {n: 1 for n in [*innocent, victim]}
    )


def test_a_step_past_its_time_limit_in_a_pool_of_threads_is_abandoned_and_run_again(rig, sandbox):
    from tests.chaos.poison import HANG_EMAIL

    rig.env["CHAOS_INVOICE_TIME_LIMIT_S"] = "4"
    rig.start(include=("tests.chaos.poison",))
    (medium,) = [w for w in rig.workers if w.name == "worker_medium"]
    number = rig.checkout([(product_create().sku, 1)], email=HANG_EMAIL)["number"]
    orders_wait_settled([number], timeout=120)
    wait_for(
        lambda: "stale run: step invoice_render outcome succeeded not written" in medium.log(),
        timeout=60,
        what="the abandoned run's late outcome, refused",
    )

    invoice = Step.objects.get(order__number=number, name="invoice_render")
    assert (invoice.status, invoice.attempts, invoice.timeouts, invoice.crashes) == (
        "succeeded",
        2,
        1,
        0,
    )
    assert "step run abandoned past its time limit of 4 s" in medium.log()
    assert Order.objects.get(number=number).status == "completed"
    assert Invoice.objects.filter(order__number=number).count() == 1


def test_cancels_at_random_moments_are_compensated_exactly_once(rig, sandbox):
    products = [product_create(stock=10_000) for _ in range(2)]
    rig.start()
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
    """No backlog: how long a payment whose worker_high (a pool of threads) was killed
    waits before it runs again."""
    product = product_create(stock=10_000)
    rig.start()
    sandbox.post("/control", json={"latency_ms": [800, 800]}).raise_for_status()
    delays, numbers = [], []

    for _ in range(4):
        delay, number = rerun_delay_after_kill(rig, sku=product.sku, kind="worker")
        delays.append(delay)
        numbers.append(number)

    # Each payment ran twice (the killed run and the re-run, alone in quarantine, not
    # blamed for a death it shared) and captured once.
    payments = Step.objects.filter(order__number__in=numbers, name="payment_capture")
    assert (
        sorted(payments.values_list("status", "attempts", "crashes", "suspect"))
        == [("succeeded", 2, 0, True)] * 4
    )
    assert Counter(
        Order.objects.filter(number__in=numbers).values_list("status", flat=True)
    ) == Counter({"completed": 4})
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    print(
        f"\nre-run delay after SIGKILL of worker_high (no backlog): median "
        f"{statistics.median(delays):.2f}s max {max(delays):.2f}s"
    )
