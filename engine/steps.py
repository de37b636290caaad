"""The step record's state machine: queued → running → succeeded / retrying / failed.

Every change is written when it happens, so the subject's page, the admin and the
reconciliation see the truth; the broker only carries messages. The domain hears of
each outcome through its pipeline's hooks.
"""

import enum
import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from engine.liveness import claimer_alive, this_process
from engine.lock_objects import step_for_update
from engine.models import StepRecord
from engine.pipeline import pipeline
from kit.errors import TransientError

logger = logging.getLogger(__name__)
Status = StepRecord.Status


class Claim(enum.Enum):
    RUN = "run"  # this delivery does the work
    DONE = "done"  # already succeeded: nothing to do, let the steps after it go on
    STOP = "stop"  # must not run now (finished badly, cancelled, or running elsewhere)
    POISON = "poison"  # workers keep dying on it: dead-letter it instead of running it again


# Statuses a late outcome may overwrite; never a finished step's.
OPEN = (Status.PENDING, Status.QUEUED, Status.RUNNING, Status.RETRYING)


def _log_extra(step: Model, **fields) -> dict:
    p = pipeline()
    return {p.subject: str(p.subject_of(step)), "step": step.name, **fields}


def step_mark_queued(*, subject_id: int, name: str, task_id: str) -> None:
    pipeline().steps_of(subject_id).filter(name=name, status=Status.PENDING).update(
        status=Status.QUEUED, task_id=task_id, queued_at=timezone.now()
    )


def step_defer(*, subject_id: int, name: str, seconds: float, reason: str) -> bool:
    """Put a waiting step off without counting an attempt; False if it is not waiting."""
    return bool(
        pipeline()
        .steps_of(subject_id)
        .filter(name=name, status__in=StepRecord.WAITING)
        .update(
            status=Status.RETRYING,
            last_error=f"deferred: {reason}",
            retry_at=timezone.now() + timedelta(seconds=seconds),
        )
    )


@transaction.atomic
def step_claim(*, subject_id: int, name: str, task_id: str) -> tuple[Claim, Model]:
    """Decide whether this delivery of a step's message runs it, and if so mark it running."""
    p = pipeline()
    step = step_for_update(subject_id=subject_id, name=name).get()
    if step.status == Status.SUCCEEDED:
        return Claim.DONE, step
    if step.status in (Status.FAILED, Status.CANCELLED):
        return Claim.STOP, step
    if step.attempts == 0 and p.hook("subject_ended")(step=step):
        # Never started before its subject ended (cancelled, failed): stop without any
        # effect. A step that had started may have had its effect; it runs to the end
        # and its compensation undoes it.
        step.status = Status.CANCELLED
        step.finished_at = timezone.now()
        step.save(update_fields=["status", "finished_at"])
        return Claim.STOP, step
    parent = p.steps[name].after
    if parent and not p.steps_of(subject_id).filter(name=parent, status=Status.SUCCEEDED).exists():
        return Claim.STOP, step
    if step.status == Status.RUNNING:
        if claimer_alive(step.claimed_by, claimed_at=step.started_at):
            # A duplicate message while another process runs the step: that one finishes it.
            return Claim.STOP, step
        step.crashes += 1  # the process that was running it died
        if step.crashes >= settings.STEP_MAX_CRASHES:
            step.save(update_fields=["crashes"])
            return Claim.POISON, step
    step.status = Status.RUNNING
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

    def __init__(self, step: Model) -> None:
        super().__init__(f"the worker died {step.crashes} times running this step")


def step_mark_succeeded(*, step: Model, result: dict) -> None:
    p = pipeline()
    p.model.objects.filter(pk=step.pk, status__in=OPEN).update(
        status=Status.SUCCEEDED,
        result=result,
        last_error="",
        last_traceback="",
        finished_at=timezone.now(),
    )
    logger.info("step succeeded", extra=_log_extra(step))
    p.hook("step_succeeded")(step=step)


def step_mark_retrying(*, step: Model, error: BaseException, countdown: float) -> None:
    pipeline().model.objects.filter(pk=step.pk, status__in=OPEN).update(
        status=Status.RETRYING,
        last_error=_describe(error),
        last_traceback=_traceback(error),
        retry_at=timezone.now() + timedelta(seconds=countdown),
    )
    logger.warning(
        "step retrying in %.1fs: %s",
        countdown,
        error,
        extra=_log_extra(step, attempt=step.attempts),
    )


def step_mark_failed(*, step: Model, error: BaseException) -> None:
    """Record a final failure (a dead letter) and tell the domain."""
    p = pipeline()
    p.model.objects.filter(pk=step.pk, status__in=OPEN).update(
        status=Status.FAILED,
        last_error=_describe(error),
        last_traceback=_traceback(error),
        finished_at=timezone.now(),
        retry_at=None,
    )
    logger.error("step failed: %s", error, extra=_log_extra(step, attempt=step.attempts))
    p.hook("step_failed")(step=step)


class WaitingForStep(TransientError):
    """A compensation must wait: the step it undoes is still running."""


def step_effect_await(*, subject: Model, name: str) -> bool:
    """Whether the finished forward step's effect is in place (so undo it). Raises
    WaitingForStep, a transient error the runner retries, while the step may still run."""
    p = pipeline()
    status = p.model.objects.values_list("status", flat=True).get(
        **{p.subject: subject, "name": name}
    )
    if status in (Status.RUNNING, *StepRecord.WAITING):
        raise WaitingForStep(f"waiting for {name} to finish before undoing it")
    return status == Status.SUCCEEDED


def _describe(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"[:2000]


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))[-10000:]
