"""The cancellation lifecycle of a subscription, as rows with due times.

Cancelling creates one row per step (day 3 win-back email, day 7 second email,
day 14 freeze, day 30 suspend, day 90 archive); a periodic job runs the rows that
are due. "Day N" is counted on the customer's calendar and lands at 10:00 on their
wall clock, whatever the DST changes in between. Reactivating cancels what is
still pending. Each row runs once even when two workers pick it up together.
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications.services import email_enqueue
from shop.models import LifecycleStep, Subscription

LOCAL_HOUR = time(10, 0)
SCHEDULE = (
    (LifecycleStep.Kind.WINBACK, 3),
    (LifecycleStep.Kind.WINBACK_SECOND, 7),
    (LifecycleStep.Kind.FREEZE, 14),
    (LifecycleStep.Kind.SUSPEND, 30),
    (LifecycleStep.Kind.ARCHIVE, 90),
)
NEW_STATUS = {
    LifecycleStep.Kind.FREEZE: Subscription.Status.FROZEN,
    LifecycleStep.Kind.SUSPEND: Subscription.Status.SUSPENDED,
    LifecycleStep.Kind.ARCHIVE: Subscription.Status.ARCHIVED,
}
# A claim this old belongs to a run that died; the row may be taken again.
STALE_CLAIM = timedelta(minutes=10)


def lifecycle_due_at(*, cancelled_at: datetime, zone: str, days: int) -> datetime:
    """Day N after the cancel, at 10:00 on the customer's wall clock, in UTC."""
    tz = ZoneInfo(zone)
    local_day = cancelled_at.astimezone(tz).date() + timedelta(days=days)
    return datetime.combine(local_day, LOCAL_HOUR, tzinfo=tz).astimezone(UTC)


@transaction.atomic
def subscription_cancel(*, subscription_id: int, now: datetime | None = None) -> bool:
    """Cancel an active subscription and schedule its lifecycle; False if not active."""
    now = now or timezone.now()
    subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
    if subscription.status != Subscription.Status.ACTIVE:
        return False
    subscription.status = Subscription.Status.CANCELLED
    subscription.cancelled_at = now
    subscription.cycle += 1
    subscription.save(update_fields=["status", "cancelled_at", "cycle"])
    LifecycleStep.objects.bulk_create(
        LifecycleStep(
            subscription=subscription,
            cycle=subscription.cycle,
            kind=kind,
            due_at=lifecycle_due_at(cancelled_at=now, zone=subscription.timezone, days=days),
        )
        for kind, days in SCHEDULE
    )
    return True


@transaction.atomic
def subscription_reactivate(*, subscription_id: int) -> int:
    """Make the subscription active again; return how many pending steps were cancelled."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
    if subscription.status == Subscription.Status.ACTIVE:
        return 0
    subscription.status = Subscription.Status.ACTIVE
    subscription.save(update_fields=["status"])
    return LifecycleStep.objects.filter(
        subscription=subscription, status=LifecycleStep.Status.PENDING
    ).update(status=LifecycleStep.Status.CANCELLED)


def lifecycle_due_run(*, now: datetime | None = None, limit: int = 500) -> int:
    """Run the lifecycle steps that are due (or whose run died); return how many ran."""
    now = now or timezone.now()
    due = (
        LifecycleStep.objects.filter(
            Q(status=LifecycleStep.Status.PENDING)
            | Q(status=LifecycleStep.Status.RUNNING, claimed_at__lt=now - STALE_CLAIM),
            due_at__lte=now,
        )
        .order_by("due_at")
        .values_list("pk", "status", "claimed_at")[:limit]
    )
    ran = 0
    for pk, status, claimed_at in due:
        if _claim(pk=pk, status=status, claimed_at=claimed_at, now=now):
            _execute(pk=pk, now=now)
            ran += 1
    return ran


def _claim(*, pk: int, status: str, claimed_at: datetime | None, now: datetime) -> bool:
    """Take the row with a conditional update: of two workers, one wins."""
    return bool(
        LifecycleStep.objects.filter(pk=pk, status=status, claimed_at=claimed_at).update(
            status=LifecycleStep.Status.RUNNING, claimed_at=now
        )
    )


def _execute(*, pk: int, now: datetime) -> None:
    with transaction.atomic():
        step = LifecycleStep.objects.select_for_update().get(pk=pk)
        subscription = Subscription.objects.select_for_update().get(pk=step.subscription_id)
        if subscription.status == Subscription.Status.ACTIVE or step.cycle != subscription.cycle:
            # Reactivated (perhaps while this row was claimed): nothing more happens.
            step.status = LifecycleStep.Status.CANCELLED
            step.save(update_fields=["status"])
            return
        if step.kind in NEW_STATUS:
            subscription.status = NEW_STATUS[step.kind]
            subscription.save(update_fields=["status"])
            _done(step, now)
            return
    _email_send(step=step, subscription=subscription)  # outside the locks: SMTP is slow
    _done(step, now)


def _done(step: LifecycleStep, now: datetime) -> None:
    LifecycleStep.objects.filter(pk=step.pk).update(status=LifecycleStep.Status.DONE, done_at=now)


def _email_send(*, step: LifecycleStep, subscription: Subscription) -> None:
    email_enqueue(
        key=f"lifecycle-step:{step.pk}",
        template=step.kind,  # the win-back emails' templates are named after their steps
        to=subscription.email,
        context={"name": subscription.name, "product": subscription.product.name},
    )
