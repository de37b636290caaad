"""Leases hold across machines: the Procfile's workers, one of them on "another machine"
(a host name of its own), killed whole while it holds running steps."""

import socket
import statistics
from collections import Counter

import pytest

from engine.liveness import database_now
from harness.orders import claimer_pid, orders_wait_settled, step_restart_wait
from harness.processes import wait_for
from orders.models import Order, Step
from tests.chaos.helpers import duplicates, effects_per_order
from tests.factories import product_create

pytestmark = pytest.mark.chaos

ORDERS = 4


def test_a_whole_worker_killed_on_another_machine_has_its_steps_run_again_by_a_survivor(
    rig, sandbox
):
    product = product_create(stock=10_000)
    rig.env["PAYMENT_TIMEOUT_S"] = "30"  # the gateway is slow while the kill lands
    # No reconciliation loop: the survivors' heartbeats alone must find the dead leases.
    rig.start(workers=0, reconcile=False)
    rig.procfile_start("worker_medium", "worker_low")
    (elsewhere,) = rig.procfile_start("worker_high", machine="other-host")
    sandbox.post("/control", json={"latency_ms": [10_000, 10_000]}).raise_for_status()
    numbers = [rig.checkout([(product.sku, 1)])["number"] for _ in range(ORDERS)]
    payments = Step.objects.filter(order__number__in=numbers, name="payment_capture")

    def all_running() -> list[Step] | None:
        running = list(payments.filter(status=Step.Status.RUNNING))
        return running if len(running) == ORDERS else None

    held = wait_for(all_running, timeout=60, what="every payment running on the other machine")
    rig.procfile_start("worker_high")  # the survivor, on this machine
    sandbox.post("/control", json={"latency_ms": [20, 80]}).raise_for_status()

    killed_at = database_now()
    elsewhere.kill()
    rig.workers.remove(elsewhere)
    restarted = [step_restart_wait(step, timeout=120) for step in held]
    orders_wait_settled(numbers, timeout=120)

    assert {step.claimed_by.partition(":")[0] for step in held} == {"other-host"}
    assert {claimer_pid(step) for step in held} == {elsewhere.pid}
    rerun = list(payments.values_list("status", "attempts", "crashes", "claimed_by"))
    assert {row[:3] for row in rerun} == {("succeeded", 2, 1)}
    assert {row[3].partition(":")[0] for row in rerun} == {socket.gethostname()}
    assert Counter(Order.objects.values_list("status", flat=True)) == Counter({"completed": ORDERS})
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    assert duplicates(ledger) == []
    delays = [(started - killed_at).total_seconds() for started in restarted]
    print(
        f"\nwhole worker killed on another machine: {len(delays)} steps running again after "
        f"median {statistics.median(delays):.1f} s, max {max(delays):.1f} s (database clock)"
    )
