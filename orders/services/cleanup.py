"""Daily cleanup: purge what is past its retention, in small batches.

Each batch is its own short statement, so no table is locked for long. Dead
letters and failed webhook events stay until a person handles them; expired order
exports lose their file but keep their row (who exported what, when).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from notifications.models import OutboxEmail
from orders.models import IdempotencyKey, Order, Step
from orders.services.exports import export_files_remove
from orders.signals import cleanup_targets


@dataclass
class CleanupReport:
    deleted: dict[str, int] = field(default_factory=dict)


def delete_in_batches(queryset: QuerySet, *, batch: int) -> int:
    """Delete the rows of a queryset a batch of primary keys at a time."""
    deleted = 0
    while pks := list(queryset.values_list("pk", flat=True)[:batch]):
        deleted += (
            queryset.model.objects.filter(pk__in=pks).delete()[1].get(queryset.model._meta.label, 0)
        )
    return deleted


def records_cleanup(*, now: datetime | None = None) -> CleanupReport:
    now = now or timezone.now()
    batch = settings.CLEANUP_BATCH
    targets = {
        "expired idempotency keys": IdempotencyKey.objects.filter(expires_at__lt=now),
        "finished steps of ended orders": Step.objects.filter(
            order__status__in=Order.FINAL_STATUSES,
            status__in=[Step.Status.SUCCEEDED, Step.Status.CANCELLED],
            finished_at__lt=now - timedelta(days=settings.STEP_RETENTION_DAYS),
        ),
        "sent emails": OutboxEmail.objects.filter(
            status=OutboxEmail.Status.SENT,
            sent_at__lt=now - timedelta(days=settings.EMAIL_RETENTION_DAYS),
        ),
    }
    # The apps above the orders name their own (processed webhook events).
    for _, theirs in cleanup_targets.send(sender=None, now=now):
        targets.update(theirs)
    deleted = {name: delete_in_batches(qs, batch=batch) for name, qs in targets.items()}
    deleted["expired export files"] = export_files_remove(now=now, batch=batch)
    return CleanupReport(deleted=deleted)
