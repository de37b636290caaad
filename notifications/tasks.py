from celery import shared_task

from notifications.alerts import alerts_check
from notifications.services import (
    order_cancelled_send,
    order_confirmation_send,
    payment_failed_send,
)
from orders.locks import once_per_tick
from orders.runner import STEP_TASK, step_run


@shared_task(
    name="notifications.send_order_confirmation", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def send_order_confirmation(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, order_id=order_id, name="confirmation_email", work=order_confirmation_send)


@shared_task(
    name="notifications.send_order_cancelled", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def send_order_cancelled(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, order_id=order_id, name="cancellation_email", work=order_cancelled_send)


@shared_task(
    name="notifications.send_payment_failed", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def send_payment_failed(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, order_id=order_id, name="payment_failed_email", work=payment_failed_send)


@shared_task(name="notifications.check_alerts", soft_time_limit=60, time_limit=90)
@once_per_tick("check_alerts", lease_s=50)
def check_alerts() -> int:
    """Idempotent: an open incident is mailed once; a second check finds it open."""
    return len(alerts_check())
