from celery import shared_task

from engine.reconcile import steps_reconcile
from engine.runner import STEP_TASK, step_run
from kit.leases import once_per_tick
from orders.services.analytics import order_analytics_track
from orders.services.backfill import sales_backfill
from orders.services.cleanup import records_cleanup
from orders.services.emails import (
    order_cancelled_send,
    order_confirmation_send,
    payment_failed_send,
)
from orders.services.exports import order_export_run
from orders.services.follow_ups import follow_ups_due_run
from orders.services.payment import order_payment_capture, order_payment_refund
from orders.services.payment_report import payments_reconcile


# The gateway may take seconds under load; 30 s soft limit leaves room for a
# 5 s timeout plus retries of the connection inside httpx.
@shared_task(name="orders.capture_payment", soft_time_limit=30, time_limit=60, **STEP_TASK)
def capture_payment(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the gateway dedupes by order:payment key."""
    step_run(task=self, subject_id=order_id, name="payment", work=order_payment_capture)


@shared_task(name="orders.track_analytics", soft_time_limit=30, time_limit=60, **STEP_TASK)
def track_analytics(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the collector dedupes by order:analytics key."""
    step_run(task=self, subject_id=order_id, name="analytics", work=order_analytics_track)


@shared_task(name="orders.refund_payment", soft_time_limit=30, time_limit=60, **STEP_TASK)
def refund_payment(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the gateway dedupes by order:refund key."""
    step_run(task=self, subject_id=order_id, name="refund", work=order_payment_refund)


# The order's emails keep their "notifications." task names: the routes and the
# pipeline name them, and messages already queued under them still find their task.
@shared_task(
    name="notifications.send_order_confirmation", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def send_order_confirmation(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, subject_id=order_id, name="confirmation_email", work=order_confirmation_send)


@shared_task(
    name="notifications.send_order_cancelled", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def send_order_cancelled(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, subject_id=order_id, name="cancellation_email", work=order_cancelled_send)


@shared_task(
    name="notifications.send_payment_failed", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def send_payment_failed(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(task=self, subject_id=order_id, name="payment_failed_email", work=payment_failed_send)


# Bounded by RECONCILE_BATCH per run; the next tick picks up the rest.
@shared_task(name="orders.reconcile_steps", soft_time_limit=120, time_limit=180)
@once_per_tick("reconcile_steps", lease_s=50)
def reconcile_steps() -> int:
    """Idempotent: re-dispatching a step that was not lost is a no-op for the step."""
    return len(steps_reconcile().redispatched)


# Day-sized batches in one transaction each; a year of changes fits in the limit.
@shared_task(name="orders.backfill_sales", soft_time_limit=3000, time_limit=3300)
@once_per_tick("backfill_sales", lease_s=3600)
def backfill_sales() -> int:
    """Idempotent: recomputes whole days from the orders; a second run finds nothing new."""
    return sales_backfill().days


@shared_task(name="orders.cleanup_records", soft_time_limit=3000, time_limit=3300)
@once_per_tick("cleanup_records", lease_s=3600)
def cleanup_records() -> dict:
    """Idempotent: deletes what is past retention; a second run finds nothing to delete."""
    return records_cleanup().deleted


@shared_task(name="orders.reconcile_payments", soft_time_limit=600, time_limit=660)
@once_per_tick("reconcile_payments", lease_s=3600)
def reconcile_payments() -> int:
    """Idempotent: a discrepancy is recorded once and resolved when it no longer holds."""
    return len(payments_reconcile())


# Hundreds of due rows per run at most; the next tick takes the rest.
@shared_task(name="orders.run_follow_ups", soft_time_limit=240, time_limit=280)
@once_per_tick("run_follow_ups", lease_s=240)
def run_follow_ups() -> int:
    """Idempotent: each due row is claimed with a conditional update; emails and points once."""
    return follow_ups_due_run()


# Hundreds of thousands of orders in batches of EXPORT_BATCH fit well inside the limit.
@shared_task(name="orders.export_orders", soft_time_limit=1800, time_limit=1900)
def export_orders(export_id: int) -> str:
    """Idempotent: one live writer resumes the one file; the outbox row is unique per export."""
    return order_export_run(export_id=export_id).status
