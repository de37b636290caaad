"""Dead letters: steps that failed for good, kept until a person handles them."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet

from engine.dispatch import steps_dispatch_on_commit
from engine.lock_objects import step_by_pk_for_update
from engine.models import StepRecord
from engine.pipeline import pipeline


@dataclass
class RetryReport:
    retried: list[tuple[str, str]] = field(default_factory=list)  # (subject, step)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, step, why)


def dead_letters_select(*, step: str | None = None, since: datetime | None = None) -> QuerySet:
    p = pipeline()
    letters = (
        p.model.objects.filter(status=StepRecord.Status.FAILED)
        .select_related(p.subject)
        .order_by("finished_at")
    )
    if step:
        letters = letters.filter(name=step)
    if since:
        letters = letters.filter(finished_at__gte=since)
    return letters


def dead_letters_retry(*, step_ids: list[int]) -> RetryReport:
    """Give dead letters a fresh set of attempts and dispatch them (and what waits on them).

    Safe to repeat: a step that is no longer dead is skipped, and the steps are idempotent.
    """
    report = RetryReport()
    for pk in step_ids:
        _dead_letter_retry(pk=pk, report=report)
    return report


@transaction.atomic
def _dead_letter_retry(*, pk: int, report: RetryReport) -> None:
    p = pipeline()
    step = step_by_pk_for_update(pk=pk).first()
    if step is None or step.status != StepRecord.Status.FAILED:
        return
    why_not = p.hook("subject_reopen")(step=step)
    if why_not:
        report.skipped.append((str(p.subject_of(step)), step.name, why_not))
        return
    # A fresh set of attempts for its retry policy; what its first life did stays: its
    # started_at (it has been attempted) and effect_unknown (its first new attempt asks
    # the partner first, and a cancel before it runs makes its undo).
    step.status = StepRecord.Status.QUEUED  # ready: published after the commit
    step.published_at = None
    step.attempts = 0
    step.crashes = 0
    step.last_error = ""
    step.retry_at = None
    step.finished_at = None
    step.save(
        update_fields=[
            "status",
            "published_at",
            "attempts",
            "crashes",
            "last_error",
            "retry_at",
            "finished_at",
        ]
    )
    steps_dispatch_on_commit(subject_id=p.subject_id_of(step), names=(step.name,))
    report.retried.append((str(p.subject_of(step)), step.name))
