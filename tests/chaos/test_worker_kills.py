"""200 orders while the Procfile's workers are SIGKILLed and restarted: none lost, none
doubled, none dead-lettered."""

import os
import random
import signal
import socket
import statistics
import threading
import time
from collections import Counter

import pytest
from django.db.models import Q

from harness.orders import orders_wait_settled
from orders.models import DeadLetter, Order, Step
from tests.chaos.helpers import (
    confirmations_per_order,
    duplicates,
    effects_per_order,
    sent_subjects,
)
from tests.factories import product_create

pytestmark = pytest.mark.chaos

ORDERS = 200
KILLS = 8


def running_on(pids: list[int]) -> list[int]:
    """Steps running in these processes: claimed by "host:pid" (a prefork pool process)
    or "host:pid/thread" (a pool of threads)."""
    host = socket.gethostname()
    claims = Q()
    for pid in pids:
        claims |= Q(claimed_by=f"{host}:{pid}") | Q(claimed_by__startswith=f"{host}:{pid}/")
    running = Step.objects.filter(claims, status=Step.Status.RUNNING)
    return list(running.values_list("pk", flat=True))


def restart_delays(
    killed_at: float, step_ids: list[int], started_before, timeout: float = 60
) -> list[float]:
    """Seconds from the kill until each step the dead processes held started again."""
    delays: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(delays) < len(step_ids) and time.monotonic() < deadline:
        for pk, started_at in Step.objects.filter(pk__in=step_ids).values_list("pk", "started_at"):
            if pk not in delays and started_at and started_at > started_before[pk]:
                delays[pk] = time.monotonic() - killed_at
        time.sleep(0.05)
    return list(delays.values())


def test_killing_workers_mid_run_loses_and_doubles_nothing(rig, sandbox, tmp_path):
    products = [product_create(stock=10_000) for _ in range(4)]
    rig.start()
    # The pipeline's workers (pools of threads), and the quarantine's pool process, which
    # runs again alone what the others held.
    targets = [w for w in rig.workers if w.name not in ("worker_bulk", "worker_control")]
    # Partner calls take a little while, so kills land on steps that are running.
    sandbox.post("/control", json={"latency_ms": [20, 120]}).raise_for_status()
    carts = [[(products[n % 4].sku, 1), (products[(n + 1) % 4].sku, 2)] for n in range(ORDERS)]
    placed: list[dict] = []
    placing = threading.Thread(target=lambda: placed.extend(rig.checkout_many(carts)))
    placing.start()

    kills: list[tuple[str, list[float]]] = []
    rng = random.Random(7)
    while len(kills) < KILLS:
        time.sleep(rng.uniform(0.5, 2.0))
        worker = rng.choice(targets)
        whole = worker.spec.pool == "threads"  # a pool of threads dies with its worker
        victims = [worker.pid, *worker.pool_pids()] if whole else worker.pool_pids()
        if not victims:
            continue  # its pool process is being replaced after the last kill
        held = running_on(victims)
        before = dict(Step.objects.filter(pk__in=held).values_list("pk", "started_at"))
        killed_at = time.monotonic()
        if whole:
            worker.kill()
            worker.restart()
        else:
            os.kill(victims[0], signal.SIGKILL)
        kills.append(
            ("worker" if whole else "pool process", restart_delays(killed_at, held, before))
        )
    placing.join()
    numbers = [p["number"] for p in placed]
    orders_wait_settled(numbers, timeout=240)

    ledger = sandbox.get("/ledger").json()
    once_each = Counter({n: 1 for n in numbers})
    assert Counter(Order.objects.values_list("status", flat=True)) == Counter({"completed": ORDERS})
    assert effects_per_order(ledger, "payment", "capture") == once_each
    assert effects_per_order(ledger, "erp", "order_sync") == once_each
    assert effects_per_order(ledger, "carrier", "label") == once_each
    assert effects_per_order(ledger, "analytics", "event") == once_each
    assert duplicates(ledger) == []
    assert confirmations_per_order() == once_each
    subjects = sent_subjects(tmp_path / "mail")
    assert subjects == Counter({f"Your order {n} is confirmed": 1 for n in numbers})
    assert DeadLetter.objects.count() == 0

    by_kind: dict[str, list[float]] = {}
    for kind, found in kills:
        by_kind.setdefault(kind, []).extend(found)
    summary = ", ".join(
        f"{kind}: {len(ds)} steps, median {statistics.median(ds):.2f}s, max {max(ds):.2f}s"
        for kind, ds in by_kind.items()
        if ds
    )
    print(
        f"\nworker kills: orders={ORDERS} kills={len(kills)} completed={ORDERS} duplicates=0; "
        f"re-run delay after a kill: {summary or 'no step was running at a kill'}"
    )
