"""The four queues and the routing of every task to one of them, in one place.

Separate queues (each with its own workers in the Procfile) keep a bulk backlog
from delaying a checkout's payment step.
"""

from kombu import Exchange, Queue

HIGH, MEDIUM, LOW, BULK = "high", "medium", "low", "bulk"
QUEUE_NAMES = (HIGH, MEDIUM, LOW, BULK)

_exchange = Exchange("shopflow", type="direct")

TASK_QUEUES = tuple(Queue(name, _exchange, routing_key=name) for name in QUEUE_NAMES)

TASK_ROUTES: dict[str, str] = {
    "orders.capture_payment": HIGH,
    "notifications.send_order_confirmation": HIGH,
    "fulfillment.sync_erp": MEDIUM,
    "fulfillment.render_invoice": MEDIUM,
    "fulfillment.purchase_label": MEDIUM,
    "orders.track_analytics": LOW,
    # Undoing a cancelled order's effects is as urgent as doing them.
    "orders.refund_payment": HIGH,
    "fulfillment.cancel_erp": MEDIUM,
    "fulfillment.void_label": MEDIUM,
    "notifications.send_order_cancelled": HIGH,
    "notifications.send_payment_failed": HIGH,
    # Housekeeping that recovery depends on: short, and must not wait behind a backlog.
    "orders.reconcile_steps": HIGH,
    "notifications.check_alerts": HIGH,
    "shop.run_subscription_lifecycle": LOW,
    "shop.retry_image_downloads": BULK,
    "shop.run_catalog_job": BULK,
    "shop.import_products": BULK,  # its name before issue 12 (shop/tasks.py)
    "shop.sync_stock_from_erp": BULK,
    "orders.export_orders": BULK,
    "orders.run_follow_ups": LOW,
    # Long, many rows: never in front of a checkout's steps.
    "orders.backfill_sales": BULK,
    "orders.cleanup_records": BULK,
    "orders.reconcile_payments": BULK,
}


def queue_for(task_name: str) -> str:
    """Return the queue a task is routed to; unknown tasks go to the medium queue."""
    return TASK_ROUTES.get(task_name, MEDIUM)


def celery_routes() -> dict[str, dict[str, str]]:
    return {name: {"queue": queue, "routing_key": queue} for name, queue in TASK_ROUTES.items()}
