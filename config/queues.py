"""The queues and the routing of every task to one of them, in one place.

Separate queues (each with its own workers in the Procfile) keep a bulk backlog
from delaying a checkout's payment step. The four pipeline queues carry the work;
the control queue carries the housekeeping that recovery depends on (the
reconciliation, the alert check), so no pipeline backlog is ever in front of it.
"""

from kombu import Exchange, Queue

HIGH, MEDIUM, LOW, BULK = "high", "medium", "low", "bulk"
CONTROL = "control"
# Steps whose process died while they ran beside others, each run again alone by a
# prefork worker of concurrency 1 (engine/blame.py). No task is routed here.
QUARANTINE = "quarantine"
QUEUE_NAMES = (HIGH, MEDIUM, LOW, BULK, CONTROL, QUARANTINE)

_exchange = Exchange("shopflow", type="direct")

TASK_QUEUES = tuple(Queue(name, _exchange, routing_key=name) for name in QUEUE_NAMES)

TASK_ROUTES: dict[str, str] = {
    "orders.payment_capture": HIGH,
    "orders.confirmation_email_send": HIGH,
    "fulfillment.erp_sync": MEDIUM,
    "fulfillment.invoice_render": MEDIUM,
    "fulfillment.label_purchase": MEDIUM,
    "orders.analytics_track": LOW,
    # Undoing a cancelled order's effects is as urgent as doing them.
    "orders.payment_refund": HIGH,
    "fulfillment.erp_cancel": MEDIUM,
    "fulfillment.label_void": MEDIUM,
    "orders.cancellation_email_send": HIGH,
    "orders.payment_failed_email_send": HIGH,
    # Housekeeping that recovery depends on: short, and must never wait behind a backlog
    # or a hung pool of the pipeline. On high, a backlog past the ticks' expires (50 s)
    # dropped every tick, and a high pool whose threads all hung stopped them.
    "orders.reconcile_steps": CONTROL,
    "notifications.check_alerts": CONTROL,
    "webhooks.sweep_events": CONTROL,  # partners' events whose message was lost
    "shop.run_subscription_lifecycle": LOW,
    "shop.retry_image_downloads": BULK,
    "shop.run_catalog_job": BULK,
    "shop.import_products": BULK,  # its name before issue 12 (shop/tasks.py)
    "shop.sync_stock_from_erp": BULK,
    "orders.export_orders": BULK,
    "orders.run_follow_ups": LOW,
    # A partner's events: a delivery or a dispute shown within minutes is its promise.
    "webhooks.order_events_process": MEDIUM,
    # Long, many rows: never in front of a checkout's steps.
    "orders.backfill_sales": BULK,
    "orders.cleanup_records": BULK,
    "orders.reconcile_payments": BULK,
}


# The step tasks' names before issue 12 gave each step one name stem, and the name each
# became. A message queued before the deploy (a chain's later steps, a retry's countdown)
# still carries the old name: the task runs under it too (kit.tasks.renamed_shared_task)
# and a retry under it goes back to the same queue. Remove these one release after the
# rename, once no queue and no retry countdown can still hold a message under them.
RENAMED_TASKS: dict[str, str] = {
    "orders.capture_payment": "orders.payment_capture",
    "notifications.send_order_confirmation": "orders.confirmation_email_send",
    "fulfillment.sync_erp": "fulfillment.erp_sync",
    "fulfillment.render_invoice": "fulfillment.invoice_render",
    "fulfillment.purchase_label": "fulfillment.label_purchase",
    "orders.track_analytics": "orders.analytics_track",
    "orders.refund_payment": "orders.payment_refund",
    "fulfillment.cancel_erp": "fulfillment.erp_cancel",
    "fulfillment.void_label": "fulfillment.label_void",
    "notifications.send_order_cancelled": "orders.cancellation_email_send",
    "notifications.send_payment_failed": "orders.payment_failed_email_send",
}


def queue_for(task_name: str) -> str:
    """Return the queue a task is routed to; unknown tasks go to the medium queue."""
    return TASK_ROUTES.get(RENAMED_TASKS.get(task_name, task_name), MEDIUM)


def celery_routes() -> dict[str, dict[str, str]]:
    return {
        name: {"queue": queue_for(name), "routing_key": queue_for(name)}
        for name in (*TASK_ROUTES, *RENAMED_TASKS)
    }
