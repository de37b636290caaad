from celery import shared_task

from orders.runner import step_run
from orders.services.analytics import order_analytics_track
from orders.services.payment import order_payment_capture


# The gateway may take seconds under load; 30 s soft limit leaves room for a
# 5 s timeout plus retries of the connection inside httpx.
@shared_task(bind=True, name="orders.capture_payment", soft_time_limit=30, time_limit=60)
def capture_payment(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the gateway dedupes by order:payment key."""
    step_run(task=self, order_id=order_id, name="payment", work=order_payment_capture)


@shared_task(bind=True, name="orders.track_analytics", soft_time_limit=30, time_limit=60)
def track_analytics(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the collector dedupes by order:analytics key."""
    step_run(task=self, order_id=order_id, name="analytics", work=order_analytics_track)
