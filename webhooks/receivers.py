from datetime import timedelta

from django.conf import settings
from django.dispatch import receiver

from orders.signals import cleanup_targets
from webhooks.models import InboxEvent


@receiver(cleanup_targets)
def webhook_events_past_retention(sender, *, now, **kwargs):
    """Processed and ignored events past WEBHOOK_RETENTION_DAYS; failed ones stay for ops."""
    return {
        "processed webhook events": InboxEvent.objects.filter(
            status__in=InboxEvent.DONE,
            processed_at__lt=now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS),
        )
    }
