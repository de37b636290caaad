from celery import shared_task

from bulkjobs.services import bulk_job_look_again
from engine.reconcile import steps_reconcile
from engine.runner import STEP_TASK, step_run
from engine.ticks import once_per_tick
from kit.tasks import renamed_shared_task
from orders.services.analytics import order_analytics_track
from orders.services.backfill import sales_backfill
from orders.services.cleanup import records_cleanup
from orders.services.emails import (
    order_cancellation_email_send,
    order_confirmation_email_send,
    order_payment_failed_email_send,
)
from orders.services.exports import order_export_run
from orders.services.follow_ups import follow_ups_due_run
from orders.services.payment import order_payment_capture, order_payment_refund
from orders.services.payment_report import payments_reconcile

# Each step's task bears its step's name stem (orders/pipeline.py); renamed_shared_task
# also registers it under the name it had before, for one release (RENAMED_TASKS in
# config/queues.py).


# The gateway may take seconds under load; 30 s soft limit leaves room for a
# 5 s timeout plus retries of the connection inside httpx.
@renamed_shared_task(name="orders.payment_capture", soft_time_limit=30, time_limit=60, **STEP_TASK)
def payment_capture(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the gateway dedupes by order:payment key."""
    step_run(task=self, subject_id=order_id, name="payment_capture", work=order_payment_capture)


@renamed_shared_task(name="orders.analytics_track", soft_time_limit=30, time_limit=60, **STEP_TASK)
def analytics_track(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the collector dedupes by order:analytics key."""
    step_run(task=self, subject_id=order_id, name="analytics_track", work=order_analytics_track)


@renamed_shared_task(name="orders.payment_refund", soft_time_limit=30, time_limit=60, **STEP_TASK)
def payment_refund(self, order_id: int) -> None:
    """Idempotent: outcome recorded on the step; the gateway dedupes by order:refund key."""
    step_run(task=self, subject_id=order_id, name="payment_refund", work=order_payment_refund)


@renamed_shared_task(
    name="orders.confirmation_email_send", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def confirmation_email_send(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(
        task=self,
        subject_id=order_id,
        name="confirmation_email_send",
        work=order_confirmation_email_send,
    )


@renamed_shared_task(
    name="orders.cancellation_email_send", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def cancellation_email_send(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(
        task=self,
        subject_id=order_id,
        name="cancellation_email_send",
        work=order_cancellation_email_send,
    )


@renamed_shared_task(
    name="orders.payment_failed_email_send", soft_time_limit=30, time_limit=60, **STEP_TASK
)
def payment_failed_email_send(self, order_id: int) -> None:
    """Idempotent: the outbox row is unique per (order, kind); a sent email is not resent."""
    step_run(
        task=self,
        subject_id=order_id,
        name="payment_failed_email_send",
        work=order_payment_failed_email_send,
    )


# Bounded by RECONCILE_BATCH per run; the next tick picks up the rest. Killed within its
# minute, so the control worker (Procfile) never has two of them in its two processes.
@shared_task(name="orders.reconcile_steps", soft_time_limit=45, time_limit=55)
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
@shared_task(name="orders.export_orders", bind=True, soft_time_limit=1800, time_limit=1900)
def export_orders(self, export_id: int) -> str:
    """Idempotent: one live writer resumes the one file (a copy that finds it held looks
    again after the lease); the outbox row is unique per export."""
    export = order_export_run(export_id=export_id)
    if not export.is_finished:  # another run holds it
        return bulk_job_look_again(task=self, job=export)
    return export.status
