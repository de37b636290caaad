"""Waits on what the database records about orders: settled orders, a running step, the
delay before a killed step runs again. Reads the models: import it after Django is set up.
"""

import os
import signal
import time
from datetime import datetime

from django.utils import timezone

from engine.liveness import database_now
from harness.processes import wait_for
from orders.models import Order, Step


def orders_wait_settled(numbers: list[str], *, timeout: float) -> None:
    """Wait until every order reached its end and no step of it can still move.

    Pending steps of an order that needs attention wait on a failed step: they
    move only when a person retries it.
    """
    deadline = time.monotonic() + timeout
    ended = (
        Order.Status.COMPLETED,
        Order.Status.PAYMENT_FAILED,
        Order.Status.CANCELLED,
        Order.Status.NEEDS_ATTENTION,
    )
    orders = Order.objects.filter(number__in=numbers)
    moving = (
        Step.objects.filter(order__number__in=numbers)
        .exclude(status__in=Step.FINISHED)
        .exclude(status=Step.Status.PENDING, order__status=Order.Status.NEEDS_ATTENTION)
    )
    while time.monotonic() < deadline:
        if orders.filter(status__in=ended).count() == len(numbers) and not moving.exists():
            return
        time.sleep(0.25)
    rows = list(moving.values_list("order__number", "name", "status", "last_error")[:20])
    raise AssertionError(f"not settled in {timeout}s; steps still moving: {rows}")


def rerun_delay_after_kill(rig, *, sku: str, kind: str) -> tuple[float, str]:
    """Check out one order on the rig and SIGKILL what runs its payment step: its prefork
    pool process ("pool process"), or its whole worker ("worker"; then restart it, as a
    supervisor would). Return the
    seconds from the kill to the step starting again, and the order's number, once the
    order has settled."""
    number = rig.checkout([(sku, 1)])["number"]
    step = payment_running_wait(number)
    pid = claimer_pid(step)
    holder = next(w for w in rig.workers if pid == w.pid or pid in w.pool_pids())
    killed_at = timezone.now()
    if kind == "worker":
        holder.kill()
        holder.restart()
    else:
        os.kill(pid, signal.SIGKILL)
    # The time comes from the step record, so the restart is not counted unless the
    # step waited for it.
    deadline = time.monotonic() + 60
    while (started_at := Step.objects.get(pk=step.pk).started_at) == step.started_at:
        if time.monotonic() > deadline:
            raise AssertionError(f"payment of {number} did not run again within 60 s")
        time.sleep(0.02)
    orders_wait_settled([number], timeout=60)
    return (started_at - killed_at).total_seconds(), number


def claimer_pid(step: Step) -> int:
    """The pid in the step's claim, "host:pid" or "host:pid/thread"."""
    return int(step.claimed_by.rsplit(":", 1)[1].partition("/")[0])


def rerun_delay_after_worker_kill(rig, *, sku: str, machine: str | None) -> tuple[float, str]:
    """Start the Procfile's worker_high on `machine` (a host name of its own) or on this
    host, beside the rig's; check out orders until one's payment step runs on it, then
    SIGKILL that whole worker. Return the seconds from the kill to the step starting
    again elsewhere, both read on the database's clock, and the order's number, once the
    order has settled."""
    victim = rig.procfile_start("worker_high", machine=machine)[0]
    try:
        while True:
            number = rig.checkout([(sku, 1)])["number"]
            step = payment_running_wait(number)
            if claimer_pid(step) == victim.pid:
                break
            orders_wait_settled([number], timeout=60)  # the other worker took it: again
        killed_at = database_now()
        victim.kill()
    finally:
        rig.workers.remove(victim)
        victim.stop()
    started_at = step_restart_wait(step, timeout=120)
    orders_wait_settled([number], timeout=120)
    return (started_at - killed_at).total_seconds(), number


def step_restart_wait(step: Step, *, timeout: float) -> datetime:
    """The step's new started_at (the database's clock) once another run claimed it."""
    deadline = time.monotonic() + timeout
    while (started_at := Step.objects.get(pk=step.pk).started_at) == step.started_at:
        if time.monotonic() > deadline:
            raise AssertionError(f"{step} did not run again within {timeout} s")
        time.sleep(0.02)
    return started_at


def payment_running_wait(number: str, timeout: float = 30) -> Step:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = Step.objects.filter(
            order__number=number, status=Step.Status.RUNNING, name="payment_capture"
        ).first()
        if step:
            return step
        time.sleep(0.02)
    raise AssertionError(f"payment of {number} never ran")


def rerun_delay_after_pool_process_kill(rig, *, sku: str) -> tuple[float, str]:
    """Run an order's payment step again, alone, on the Procfile's worker_quarantine (a
    prefork pool process: a suspect step's place), SIGKILL that pool process while the
    step runs, and return the seconds from the kill to the step's next start, both on the
    database's clock, and the order's number, once the step has succeeded again."""
    from orders.tasks import payment_capture

    number = rig.checkout([(sku, 1)])["number"]
    orders_wait_settled([number], timeout=120)
    order = Order.objects.get(number=number)
    payment = Step.objects.filter(order=order, name="payment_capture")
    payment.update(status=Step.Status.QUEUED, suspect=True)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PLACED)
    quarantine = next(w for w in rig.workers if w.name == "worker_quarantine")
    with rig.producer() as send:
        send(payment_capture.s(order.pk).set(queue="quarantine"))
    step = payment_running_wait(number)
    (child,) = quarantine.pool_pids()
    assert claimer_pid(step) == child, (step.claimed_by, child)
    killed_at = database_now()
    os.kill(child, signal.SIGKILL)
    started_at = step_restart_wait(step, timeout=60)
    wait_for(
        lambda: payment.get().status == Step.Status.SUCCEEDED,
        timeout=60,
        what=f"payment of {number} succeeded again",
    )
    return (started_at - killed_at).total_seconds(), number
