"""Reconciliation: find steps whose message was lost and dispatch them again.

The database is the source of truth, so a lost message (the web process died
between commit and publish, a worker was killed, the broker restarted without its
data) delays an order but never loses it. Dispatching a step that was not lost
after all is harmless: every step is idempotent.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, Exists, OuterRef, Q, Subquery, Value, When
from django.utils import timezone

from orders.liveness import claimer_alive
from orders.lock_objects import step_by_pk_for_update
from orders.models import Order, Step
from orders.pipeline import ALL_STEPS
from orders.services.dispatch import steps_dispatch_on_commit
from orders.services.orders import FORWARD_NAMES, order_status_refresh
from orders.services.steps import PoisonPill, step_mark_failed

logger = logging.getLogger(__name__)

PARENT = Case(
    *[When(name=spec.name, then=Value(spec.after)) for spec in ALL_STEPS if spec.after],
    default=Value(None),
    output_field=CharField(),
)


@dataclass
class ReconcileReport:
    redispatched: list[tuple[str, str, str]] = field(default_factory=list)  # (order, step, was)
    poisoned: list[tuple[str, str]] = field(default_factory=list)  # (order, step)
    settled: list[str] = field(default_factory=list)  # orders


def _ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


def lost_steps(*, now: datetime) -> list[tuple[int, tuple]]:
    """Steps that should be moving and are not, as (pk, snapshot): stale running, queued
    or retrying steps, and pending ones that nothing is going to publish."""
    stale = Step.objects.filter(
        Q(status=Step.Status.RUNNING, started_at__lt=_ago(now, settings.RECONCILE_RUNNING_AFTER_S))
        | Q(status=Step.Status.QUEUED, queued_at__lt=_ago(now, settings.RECONCILE_QUEUED_AFTER_S))
        | Q(
            status=Step.Status.RETRYING, retry_at__lt=_ago(now, settings.RECONCILE_RETRYING_GRACE_S)
        )
    )
    parents = Step.objects.filter(order=OuterRef("order"), name=OuterRef("parent"))
    pending_since = _ago(now, settings.RECONCILE_PENDING_AFTER_S)
    pending = (
        Step.objects.filter(status=Step.Status.PENDING)
        .annotate(
            parent=PARENT,
            parent_status=Subquery(parents.values("status")[:1]),
            parent_finished=Subquery(parents.values("finished_at")[:1]),
        )
        .filter(
            Q(parent__isnull=True, created_at__lt=pending_since)
            | Q(parent_status=Step.Status.SUCCEEDED, parent_finished__lt=pending_since)
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
    report.settled = orders_settle(now=now)
    if report.redispatched or report.poisoned or report.settled:
        logger.warning(
            "reconciled %d lost steps, dead-lettered %d poison pills, settled %d orders",
            len(report.redispatched),
            len(report.poisoned),
            len(report.settled),
        )
    return report


def orders_settle(*, now: datetime) -> list[str]:
    """Refresh paid orders whose forward steps have all finished: a worker killed between
    recording a step's outcome and refreshing its order left the order behind."""
    unfinished = Step.objects.filter(order=OuterRef("pk"), name__in=FORWARD_NAMES).exclude(
        status__in=Step.FINISHED
    )
    stuck = (
        Order.objects.filter(
            status=Order.Status.PAID,
            updated_at__lt=_ago(now, settings.RECONCILE_PENDING_AFTER_S),
        )
        .exclude(Exists(unfinished))
        .order_by("pk")
        .values_list("pk", "number")[: settings.RECONCILE_BATCH]
    )
    settled = []
    for pk, number in stuck:
        order_status_refresh(order_id=pk)
        if Order.objects.filter(pk=pk).exclude(status=Order.Status.PAID).exists():
            settled.append(number)
    return settled


@transaction.atomic
def _step_reconcile(
    *, pk: int, snapshot: tuple, now: datetime, report: ReconcileReport
) -> Step | None:
    """Re-dispatch one lost step; return it instead when it is a poison pill."""
    step = step_by_pk_for_update(pk=pk).first()
    if step is None or tuple(getattr(step, f) for f in SNAPSHOT[1:]) != snapshot:
        return None  # it moved since we looked: not lost
    was = step.status
    if was == Step.Status.RUNNING:
        if claimer_alive(step.claimed_by, claimed_at=step.started_at, now=now):
            return None  # slow, not lost
        step.crashes += 1  # its worker died
        if step.crashes >= settings.STEP_MAX_CRASHES:
            step.save(update_fields=["crashes"])
            report.poisoned.append((step.order.number, step.name))
            return step
    step.status = Step.Status.QUEUED
    step.queued_at = now  # not picked again before its deadline comes round
    step.save(update_fields=["status", "crashes", "queued_at"])
    steps_dispatch_on_commit(order_id=step.order_id, names=(step.name,))
    report.redispatched.append((step.order.number, step.name, was))
    return None
