from celery import shared_task

from notifications.services import order_confirmation_send
from orders.runner import step_run


@shared_task(
    bind=True, name="notifications.send_order_confirmation", soft_time_limit=30, time_limit=60
)
def send_order_confirmation(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, order_id=order_id, name="confirmation_email", work=order_confirmation_send)
