"""Leases hold across machines: the Procfile's workers, one of them on "another machine"
(a host name of its own), killed whole while it holds running steps or an export."""

import socket
import statistics
from collections import Counter
from datetime import datetime

import pytest
from celery import signature
from django.contrib.auth.models import Permission
from django.db import connection, transaction

from engine.liveness import database_now
from harness.orders import (
    claimer_pid,
    orders_wait_settled,
    payment_running_wait,
    step_restart_wait,
)
from harness.processes import wait_for
from orders.models import Order, OrderExport, Step
from orders.services.exports import EXPORT_TASK, order_export_create
from tests.chaos.helpers import duplicates, effects_per_order, partners_slow_but_answering
from tests.factories import product_create

pytestmark = pytest.mark.chaos

ORDERS = 4


def test_a_whole_worker_killed_on_another_machine_has_its_steps_run_again_by_a_survivor(
    rig, sandbox
):
    product = product_create(stock=10_000)
    rig.env["PAYMENT_TIMEOUT_S"] = "30"  # the gateway is slow while the kill lands
    # No reconciliation loop: the survivors' heartbeats alone must find the dead leases.
    rig.start(copies=0, reconcile=False)
    rig.procfile_start("worker_medium", "worker_low", "worker_quarantine")
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
    # Killed beside each other in one pool of threads: none is blamed; each runs again
    # alone, in quarantine (engine/blame.py).
    rerun = list(payments.values_list("status", "attempts", "crashes", "suspect", "claimed_by"))
    assert {row[:4] for row in rerun} == {("succeeded", 2, 0, True)}
    assert {row[4].partition(":")[0] for row in rerun} == {socket.gethostname()}
    assert Counter(Order.objects.values_list("status", flat=True)) == Counter({"completed": ORDERS})
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    assert duplicates(ledger) == []
    delays = [(started - killed_at).total_seconds() for started in restarted]
    print(
        f"\nwhole worker killed on another machine: {len(delays)} steps running again after "
        f"median {statistics.median(delays):.1f} s, max {max(delays):.1f} s (database clock)"
    )


EXPORTED = 20_000


def test_an_export_held_by_a_worker_killed_on_another_machine_is_taken_over_once_its_lease_lapses(
    rig, django_user_model
):
    Order.objects.bulk_create(
        Order(
            number=f"SF-EXP{n:06d}",
            token=f"exp-{n}",
            email="ada@example.com",
            shipping_address={},
            payment_token="tok_visa",
            currency="EUR",
            total_cents=1000,
        )
        for n in range(EXPORTED)
    )
    requester = django_user_model.objects.create_user(
        "olga", "olga@shop.example", "pw-123456", is_staff=True
    )
    requester.user_permissions.add(Permission.objects.get(codename="view_order"))
    export = order_export_create(requester=requester, filters={}, queue=False)
    rig.env["EXPORT_BATCH"] = "5"  # thousands of batches: the kill lands mid-file
    rig.start(copies=0, reconcile=False)
    (elsewhere,) = rig.procfile_start("worker_bulk", machine="other-host")
    rows = OrderExport.objects.filter(pk=export.pk)
    with rig.producer() as publish:
        publish(signature(EXPORT_TASK, args=(export.pk,)))

        def writing() -> OrderExport | None:
            row = rows.get()
            return row if row.rows_done > 0 and row.status == "running" else None

        held = wait_for(writing, timeout=120, what="the export written on the other machine")
        elsewhere.kill()
        rig.workers.remove(elsewhere)
        killed_at = database_now()
        expired_at = rows.get().lease_expires_at
        rig.procfile_start("worker_bulk")  # the survivor, on this machine
        publish(signature(EXPORT_TASK, args=(export.pk,)))  # as the redelivery would

        def taken_over() -> datetime | None:
            return database_now() if rows.get().lease_token > held.lease_token else None

        resumed_at = wait_for(taken_over, timeout=120, what="another worker taking the export")
    done = wait_for(
        lambda: rows.filter(status="done").first(), timeout=300, what="the export finished"
    )

    assert resumed_at >= expired_at  # not taken while the dead worker's lease lived
    assert (done.rows_done, done.lease_token) == (EXPORTED, held.lease_token + 1)
    with done.file.open("rb") as file:
        numbers = [line.split(b",")[0] for line in file.read().splitlines()[1:]]
    assert numbers == [f"SF-EXP{n:06d}".encode() for n in range(EXPORTED)]
    print(
        f"\nexport held by a worker killed on another machine: taken over "
        f"{(resumed_at - killed_at).total_seconds():.1f} s after the kill (database clock; "
        f"its lease had {(expired_at - killed_at).total_seconds():.1f} s left)"
    )


def test_an_outcome_write_whose_database_connection_is_cut_mid_write_is_written_on_its_retry(
    rig, sandbox
):
    partners_slow_but_answering(rig)
    rig.start(copies=0, reconcile=False)
    (high, *_) = rig.procfile_start("worker_high", "worker_medium", "worker_low")
    sandbox.post("/control", json={"latency_ms": [1500, 1500]}).raise_for_status()
    number = rig.checkout([(product_create().sku, 1)])["number"]
    step = payment_running_wait(number)

    with transaction.atomic():
        # The worker's outcome write waits on this row lock: cut its connection there.
        Step.objects.select_for_update().get(pk=step.pk)
        backend = wait_for(outcome_write_waiting, timeout=30, what="the outcome write waiting")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    orders_wait_settled([number], timeout=60)

    assert "step payment_capture outcome succeeded not written, again in 0.5s" in high.log()
    payment = Step.objects.get(pk=step.pk)
    assert (payment.status, payment.attempts, payment.lease_token) == ("succeeded", 1, 1)
    assert Order.objects.get(number=number).status == "completed"
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({number: 1})


def outcome_write_waiting() -> int | None:
    """The backend of a worker whose write of a step's success (engine/steps.py, one
    statement that begins WITH outcome) waits on a row lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh look inside the transaction
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'WITH outcome AS (%%'"
        )
        row = cursor.fetchone()
    return row and row[0]


def test_workers_whose_clocks_are_minutes_off_cause_no_early_redispatch_and_no_duplicate(
    rig, sandbox
):
    partners_slow_but_answering(rig, timeout_s=40)
    rig.start(copies=0)
    rig.procfile_start("worker_medium", "worker_low", "worker_quarantine")
    ahead, behind = (
        rig.procfile_start("worker_high", clock_offset_s=offset)[0] for offset in (600, -600)
    )
    # Longer than a lease (15 s): each lease lives only by its heartbeat's renewals, while
    # the other worker's heartbeat sweeps for expired ones.
    sandbox.post("/control", json={"latency_ms": [20_000, 20_000]}).raise_for_status()
    numbers = [rig.checkout([(product_create().sku, 1)])["number"] for _ in range(ORDERS)]
    orders_wait_settled(numbers, timeout=180)

    assert log_clock_offset_s(ahead) > 500 and log_clock_offset_s(behind) < -500
    payments = Step.objects.filter(order__number__in=numbers, name="payment_capture")
    assert set(payments.values_list("status", "attempts", "crashes")) == {("succeeded", 1, 0)}
    assert {claimer_pid(step) for step in payments} <= {ahead.pid, behind.pid}
    assert "swept" not in ahead.log() + behind.log()
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({n: 1 for n in numbers})
    assert duplicates(ledger) == []


def log_clock_offset_s(worker) -> float:
    """How far the worker's clock is from this one's, read from its "ready." log line."""
    line = next(line for line in worker.log().splitlines() if line.endswith(" ready."))
    stamped = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    started = datetime.fromtimestamp(worker.started_at)
    return (stamped - started).total_seconds()
