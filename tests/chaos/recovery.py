"""How long a step held by a SIGKILLed process waits before it runs again: shared by
tests/chaos/test_failures.py and bench/recovery.py."""

import os
import signal
import time

from django.utils import timezone

from orders.models import Step
from tests.chaos.rig import Rig
from tests.workers import orders_wait_settled

KINDS = ("pool process", "worker")


def rerun_delay_after_kill(rig: Rig, *, sku: str, kind: str) -> tuple[float, str]:
    """Check out one order and SIGKILL what runs its payment step: the pool process,
    or its whole worker (then start a replacement, as a supervisor would). Return the
    seconds from the kill to the step starting again, and the order's number, once the
    order has settled."""
    number = rig.checkout([(sku, 1)])["number"]
    step = payment_running_wait(number)
    pid = int(step.claimed_by.rsplit(":", 1)[1])
    holder = next(w for w in rig.workers if pid in w.pool_pids())
    killed_at = timezone.now()
    if kind == "worker":
        holder.kill()
        rig.workers.remove(holder)
        rig.worker_add(concurrency=holder.concurrency)
    else:
        os.kill(pid, signal.SIGKILL)
    # The time comes from the step record, so the replacement's start-up is not counted
    # unless the step waited for it.
    deadline = time.monotonic() + 60
    while (started_at := Step.objects.get(pk=step.pk).started_at) == step.started_at:
        if time.monotonic() > deadline:
            raise AssertionError(f"payment of {number} did not run again within 60 s")
        time.sleep(0.02)
    orders_wait_settled([number], timeout=60)
    return (started_at - killed_at).total_seconds(), number


def payment_running_wait(number: str, timeout: float = 30) -> Step:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = Step.objects.filter(
            order__number=number, status=Step.Status.RUNNING, name="payment"
        ).first()
        if step:
            return step
        time.sleep(0.02)
    raise AssertionError(f"payment of {number} never ran")
