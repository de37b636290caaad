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

from engine.blame import next_run_queue, run_death_judge
from engine.dispatch import steps_dispatch_on_commit
from engine.liveness import database_now, holder_gone, lease_place
from engine.lock_objects import step_by_pk_for_update
from engine.models import StepRecord
from engine.pipeline import pipeline
from engine.steps import PoisonPill, step_lease_alive, step_mark_failed, step_requeue

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
    """Steps that should be moving and are not, as (pk, snapshot): running under a lease
    that ran out, queued or retrying long past their time, and pending ones that nothing
    is going to publish (from before ready steps)."""
    p = pipeline()
    steps = p.model.objects
    published_before = ago(now, settings.RECONCILE_QUEUED_AFTER_S)
    stale = steps.filter(
        Q(status=Status.RUNNING, lease_expires_at__lt=now)
        | Q(status=Status.QUEUED, published_at__lt=published_before)
        | Q(status=Status.RETRYING, retry_at__lt=ago(now, settings.RECONCILE_RETRYING_GRACE_S))
    )
    # Made pending by the code before the step records drove the graph (the canvas
    # published them): remove one release after it, with RENAMED_TASKS.
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


def unpublished_steps(*, now: datetime) -> list[Model]:
    """Steps made ready whose publish was lost (the process died between its commit and
    the publish, or the broker was down): queued, never published, for longer than a
    publish takes. One index holds exactly these (orders.Step's step_ready_unpublished)."""
    p = pipeline()
    ready = p.model.objects.filter(
        status=Status.QUEUED,
        published_at__isnull=True,
        queued_at__lt=ago(now, settings.RECONCILE_PENDING_AFTER_S),
    )
    return list(ready.select_related(p.subject).order_by("queued_at")[: settings.RECONCILE_BATCH])


def dead_leases(*, now: datetime) -> list[tuple[int, tuple]]:
    """Running steps whose run is over, as (pk, snapshot): their lease ran out (on the
    database's clock), or its holder is a process of this machine that is gone."""
    running = pipeline().model.objects.filter(status=Status.RUNNING)
    found = running.filter(Q(lease_expires_at__lt=now) | Q(lease_holder__startswith=lease_place()))
    rows = found.order_by("pk").values_list(*SNAPSHOT, "lease_holder", "lease_expires_at")
    return [
        (row[0], row[1 : len(SNAPSHOT)])
        for row in rows[: settings.RECONCILE_BATCH]
        if row[-1] is None
        or row[-1] < now
        or holder_gone(
            pipeline().model,
            pk=row[0],
            holder=row[-2],
            token=row[SNAPSHOT.index("lease_token")],
        )
    ]


# What must not have changed between finding a step lost and re-dispatching it.
SNAPSHOT = ("pk", "status", "published_at", "started_at", "retry_at", "lease_token")


def steps_reconcile(*, now: datetime | None = None) -> ReconcileReport:
    """Dispatch every lost step again, publish the ready ones never published, and
    dead-letter steps whose worker keeps dying."""
    p = pipeline()
    now = now or database_now()
    report = _steps_redispatch(lost_steps(now=now), now=now)
    for step in unpublished_steps(now=now):
        # Published as its first publish would have been: marked published after it
        # went out, so a broker still down leaves it for the next run.
        steps_dispatch_on_commit(
            subject_id=p.subject_id_of(step), names=(step.name,), queue=next_run_queue(step)
        )
        report.redispatched.append((str(p.subject_of(step)), step.name, "unpublished"))
    report.settled = p.hook("subjects_settle")(now=now)
    _report_log(report, "reconciled")
    return report


def steps_sweep() -> ReconcileReport:
    """Dispatch again the running steps whose lease is dead (engine/heartbeat.py runs it
    in every worker process, every few seconds)."""
    now = database_now()
    report = _steps_redispatch(dead_leases(now=now), now=now)
    _report_log(report, "swept")
    return report


def _steps_redispatch(found: list[tuple[int, tuple]], *, now: datetime) -> ReconcileReport:
    report = ReconcileReport()
    for pk, snapshot in found:
        poisoned = _step_reconcile(pk=pk, snapshot=snapshot, now=now, report=report)
        if poisoned:
            step_mark_failed(step=poisoned, error=PoisonPill(poisoned))
    return report


def _report_log(report: ReconcileReport, verb: str) -> None:
    if report.redispatched or report.poisoned or report.settled:
        logger.warning(
            "%s %d lost steps, dead-lettered %d poison pills, settled %d %ss",
            verb,
            len(report.redispatched),
            len(report.poisoned),
            len(report.settled),
            pipeline().subject,
        )


@transaction.atomic
def _step_reconcile(
    *, pk: int, snapshot: tuple, now: datetime, report: ReconcileReport
) -> Model | None:
    """Re-dispatch one lost step, alone; return it instead when it is a poison pill."""
    p = pipeline()
    step = step_by_pk_for_update(pk=pk).first()
    if step is None or tuple(getattr(step, f) for f in SNAPSHOT[1:]) != snapshot:
        return None  # it moved since we looked: not lost
    was = step.status
    if was == Status.RUNNING:
        if step_lease_alive(step, now=now):
            return None  # slow, not lost
        if run_death_judge(step):  # its worker died, or its run gave up
            step.save(update_fields=["crashes", "suspect"])
            report.poisoned.append((str(p.subject_of(step)), step.name))
            return step
    step_requeue(step, now=now)
    report.redispatched.append((str(p.subject_of(step)), step.name, was))
    return None
