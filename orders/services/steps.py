"""The step record's state machine: queued → running → succeeded / retrying / failed.

Every change is written when it happens, so the order page, the admin and the
reconciliation see the truth; the broker only carries messages.
"""

import enum
import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.liveness import claimer_alive, this_process
from orders.lock_objects import step_for_update
from orders.models import Order, Step
from orders.pipeline import PIPELINE, STEPS
from orders.services.orders import order_payment_fail, order_status_refresh

logger = logging.getLogger(__name__)


class Claim(enum.Enum):
    RUN = "run"  # this delivery does the work
    DONE = "done"  # already succeeded: nothing to do, let the steps after it go on
    STOP = "stop"  # must not run now (finished badly, cancelled, or running elsewhere)
    POISON = "poison"  # workers keep dying on it: dead-letter it instead of running it again


FORWARD = {spec.name for spec in PIPELINE}
ENDED_ORDER = (Order.Status.PAYMENT_FAILED, Order.Status.CANCELLED)
# Statuses a late outcome may overwrite; never a finished step's.
OPEN = (Step.Status.PENDING, Step.Status.QUEUED, Step.Status.RUNNING, Step.Status.RETRYING)


def step_mark_queued(*, order_id: int, name: str, task_id: str) -> None:
    Step.objects.filter(order_id=order_id, name=name, status=Step.Status.PENDING).update(
        status=Step.Status.QUEUED, task_id=task_id, queued_at=timezone.now()
    )


def step_defer(*, order_id: int, name: str, seconds: float, reason: str) -> bool:
    """Put a waiting step off without counting an attempt; False if it is not waiting."""
    return bool(
        Step.objects.filter(
            order_id=order_id,
            name=name,
            status__in=[Step.Status.PENDING, Step.Status.QUEUED, Step.Status.RETRYING],
        ).update(
            status=Step.Status.RETRYING,
            last_error=f"deferred: {reason}",
            retry_at=timezone.now() + timedelta(seconds=seconds),
        )
    )


@transaction.atomic
def step_claim(*, order_id: int, name: str, task_id: str) -> tuple[Claim, Step]:
    """Decide whether this delivery of a step's message runs it, and if so mark it running."""
    step = step_for_update(order_id=order_id, name=name).get()
    order = step.order
    if step.status == Step.Status.SUCCEEDED:
        return Claim.DONE, step
    if step.status in (Step.Status.FAILED, Step.Status.CANCELLED):
        return Claim.STOP, step
    if name in FORWARD and order.status in ENDED_ORDER and step.attempts == 0:
        # Never started before the cancel (or the failed payment): stop without any effect.
        # A step that had started may have had its effect; it runs to the end and its
        # compensation undoes it.
        step.status = Step.Status.CANCELLED
        step.finished_at = timezone.now()
        step.save(update_fields=["status", "finished_at"])
        return Claim.STOP, step
    parent = STEPS[name].after
    if (
        parent
        and not Step.objects.filter(
            order_id=order_id, name=parent, status=Step.Status.SUCCEEDED
        ).exists()
    ):
        return Claim.STOP, step
    if step.status == Step.Status.RUNNING:
        if claimer_alive(step.claimed_by, claimed_at=step.started_at):
            # A duplicate message while another process runs the step: that one finishes it.
            return Claim.STOP, step
        step.crashes += 1  # the process that was running it died
        if step.crashes >= settings.STEP_MAX_CRASHES:
            step.save(update_fields=["crashes"])
            return Claim.POISON, step
    step.status = Step.Status.RUNNING
    step.attempts += 1
    step.task_id = task_id
    step.claimed_by = this_process()
    step.started_at = timezone.now()
    step.retry_at = None
    step.save(
        update_fields=[
            "status",
            "attempts",
            "crashes",
            "task_id",
            "claimed_by",
            "started_at",
            "retry_at",
        ]
    )
    return Claim.RUN, step


class PoisonPill(Exception):
    """A step whose worker process died every time it ran it."""

    def __init__(self, step: Step) -> None:
        super().__init__(f"the worker died {step.crashes} times running this step")


def step_mark_succeeded(*, step: Step, result: dict) -> None:
    Step.objects.filter(pk=step.pk, status__in=OPEN).update(
        status=Step.Status.SUCCEEDED,
        result=result,
        last_error="",
        last_traceback="",
        finished_at=timezone.now(),
    )
    logger.info("step succeeded", extra={"order": step.order.number, "step": step.name})
    order_status_refresh(order_id=step.order_id)


def step_mark_retrying(*, step: Step, error: BaseException, countdown: float) -> None:
    Step.objects.filter(pk=step.pk, status__in=OPEN).update(
        status=Step.Status.RETRYING,
        last_error=_describe(error),
        last_traceback=_traceback(error),
        retry_at=timezone.now() + timedelta(seconds=countdown),
    )
    logger.warning(
        "step retrying in %.1fs: %s",
        countdown,
        error,
        extra={"order": step.order.number, "step": step.name, "attempt": step.attempts},
    )


def step_mark_failed(*, step: Step, error: BaseException) -> None:
    """Record a final failure (a dead letter); a failed payment fails the whole order."""
    Step.objects.filter(pk=step.pk, status__in=OPEN).update(
        status=Step.Status.FAILED,
        last_error=_describe(error),
        last_traceback=_traceback(error),
        finished_at=timezone.now(),
        retry_at=None,
    )
    logger.error(
        "step failed: %s",
        error,
        extra={"order": step.order.number, "step": step.name, "attempt": step.attempts},
    )
    if STEPS[step.name].fails_order:
        order_payment_fail(order_id=step.order_id)
    else:
        order_status_refresh(order_id=step.order_id)


def _describe(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"[:2000]


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))[-10000:]
