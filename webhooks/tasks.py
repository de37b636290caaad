from celery import shared_task

from engine.ticks import once_per_tick
from webhooks.services import events_sweep, order_events_process


# A batch of one order's events, each a few queries: seconds at most.
@shared_task(name="webhooks.order_events_process", soft_time_limit=60, time_limit=120)
def order_events_process_task(order_number: str) -> None:
    """Idempotent: an event is marked processed in the transaction that applies it, under
    the order's row lock; a second run finds nothing due."""
    delay = order_events_process(order_number=order_number)
    if delay is not None:  # events still wait (their order not committed yet, an error)
        # A bare publish, not on_commit: the service's transactions have committed by
        # now, and the task runs in none (a lost publish is the sweep's to find).
        order_events_process_task.apply_async(args=[order_number], countdown=delay)


# On the control queue beside the reconciliation: one query and a publish per order, so
# it holds a control process for milliseconds; killed within its minute like them.
@shared_task(name="webhooks.sweep_events", soft_time_limit=20, time_limit=25)
@once_per_tick("sweep_webhook_events", lease_s=50)
def sweep_events() -> int:
    """Idempotent: publishing an order whose events are not due runs nothing."""
    return len(events_sweep())
