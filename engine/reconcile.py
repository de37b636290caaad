"""Reconciliation: find steps whose message was lost and dispatch them again.

The database is the source of truth, so a lost message (the web process died
between commit and publish, a worker was killed, the broker restarted without its
data) delays a subject but never loses it. Dispatching a step that was not lost
after all is harmless: every step is idempotent. Then the domain's subjects_settle
hook brings up to date the subjects left behind.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Model, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from engine.dispatch import steps_dispatch_on_commit
from engine.liveness import claimer_alive
from engine.lock_objects import step_by_pk_for_update
from engine.models import StepRecord
from engine.pipeline import pipeline
from engine.steps import PoisonPill, step_mark_failed

logger = logging.getLogger(__name__)
Status = StepRecord.Status


@dataclass
class ReconcileReport:
    redispatched: list[tuple[str, str, str]] = field(default_factory=list)  # (subject, step, was)
    poisoned: list[tuple[str, str]] = field(default_factory=list)  # (subject, step)
    settled: list[str] = field(default_factory=list)  # subjects


def ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


def lost_steps(*, now: datetime) -> list[tuple[int, tuple]]:
    """Steps that should be moving and are not, as (pk, snapshot): stale running, queued
    or retrying steps, and pending ones that nothing is going to publish."""
    p = pipeline()
    steps = p.model.objects
    stale = steps.filter(
        Q(status=Status.RUNNING, started_at__lt=ago(now, settings.RECONCILE_RUNNING_AFTER_S))
        | Q(status=Status.QUEUED, queued_at__lt=ago(now, settings.RECONCILE_QUEUED_AFTER_S))
        | Q(status=Status.RETRYING, retry_at__lt=ago(now, settings.RECONCILE_RETRYING_GRACE_S))
    )
    parent = Case(
        *[When(name=spec.name, then=Value(spec.after)) for spec in p.all_steps if spec.after],
        default=Value(None),
        output_field=CharField(),
    )
    parents = steps.filter(**{p.subject: OuterRef(p.subject)}, name=OuterRef("parent"))
    pending_since = ago(now, settings.RECONCILE_PENDING_AFTER_S)
    pending = (
        steps.filter(status=Status.PENDING)
        .annotate(
            parent=parent,
            parent_status=Subquery(parents.values("status")[:1]),
            parent_finished=Subquery(parents.values("finished_at")[:1]),
        )
        .filter(
            Q(parent__isnull=True, created_at__lt=pending_since)
            | Q(parent_status=Status.SUCCEEDED, parent_finished__lt=pending_since)
        )
    )
    limit = settings.RECONCILE_BATCH
    return [
        (row[0], row[1:])
        for queryset in (stale, pending)
        for row in queryset.order_by("pk").values_list(*SNAPSHOT)[:limit]
    ]


# What must not have changed between finding a step lost and re-dispatching it.
SNAPSHOT = ("pk", "status", "queued_at", "started_at", "retry_at")


def steps_reconcile(*, now: datetime | None = None) -> ReconcileReport:
    """Dispatch every lost step again; dead-letter steps whose worker keeps dying."""
    now = now or timezone.now()
    report = ReconcileReport()
    for pk, snapshot in lost_steps(now=now):
        poisoned = _step_reconcile(pk=pk, snapshot=snapshot, now=now, report=report)
        if poisoned:
            step_mark_failed(step=poisoned, error=PoisonPill(poisoned))
    report.settled = pipeline().hook("subjects_settle")(now=now)
    if report.redispatched or report.poisoned or report.settled:
        logger.warning(
            "reconciled %d lost steps, dead-lettered %d poison pills, settled %d %ss",
            len(report.redispatched),
            len(report.poisoned),
            len(report.settled),
            pipeline().subject,
        )
    return report


@transaction.atomic
def _step_reconcile(
    *, pk: int, snapshot: tuple, now: datetime, report: ReconcileReport
) -> Model | None:
    """Re-dispatch one lost step; return it instead when it is a poison pill."""
    p = pipeline()
    step = step_by_pk_for_update(pk=pk).first()
    if step is None or tuple(getattr(step, f) for f in SNAPSHOT[1:]) != snapshot:
        return None  # it moved since we looked: not lost
    was = step.status
    if was == Status.RUNNING:
        if claimer_alive(step.claimed_by, claimed_at=step.started_at, now=now):
            return None  # slow, not lost
        step.crashes += 1  # its worker died
        if step.crashes >= settings.STEP_MAX_CRASHES:
            step.save(update_fields=["crashes"])
            report.poisoned.append((str(p.subject_of(step)), step.name))
            return step
    step.status = Status.QUEUED
    step.queued_at = now  # not picked again before its deadline comes round
    step.save(update_fields=["status", "crashes", "queued_at"])
    steps_dispatch_on_commit(subject_id=p.subject_id_of(step), names=(step.name,))
    report.redispatched.append((str(p.subject_of(step)), step.name, was))
    return None
