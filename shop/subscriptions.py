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
from django.utils import timezone

from engine.due_rows import DueRows, due_row_finish
from engine.leases import Lease
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
    return sum(DUE_LIFECYCLE_STEPS.run(now=now, limit=limit).values())


def _lifecycle_step_run(lease: Lease, now: datetime) -> str:
    with transaction.atomic():
        step = LifecycleStep.objects.select_for_update().get(pk=lease.pk)
        subscription = Subscription.objects.select_for_update().get(pk=step.subscription_id)
        if subscription.status == Subscription.Status.ACTIVE or step.cycle != subscription.cycle:
            # Reactivated (perhaps while this row was claimed): nothing more happens.
            return due_row_finish(lease=lease, status=LifecycleStep.Status.CANCELLED, now=now)
        if step.kind in NEW_STATUS:
            subscription.status = NEW_STATUS[step.kind]
            subscription.save(update_fields=["status"])
            return due_row_finish(lease=lease, status=LifecycleStep.Status.DONE, now=now)
    _email_send(step=step, subscription=subscription)  # outside the locks: SMTP is slow
    return due_row_finish(lease=lease, status=LifecycleStep.Status.DONE, now=now)


def _email_send(*, step: LifecycleStep, subscription: Subscription) -> None:
    email_enqueue(
        key=f"lifecycle-step:{step.pk}",
        template=step.kind,  # the win-back emails' templates are named after their steps
        to=subscription.email,
        context={"name": subscription.name, "product": subscription.product.name},
    )


DUE_LIFECYCLE_STEPS = DueRows(model=LifecycleStep, work=_lifecycle_step_run)
