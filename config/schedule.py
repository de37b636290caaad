"""The periodic jobs beat runs, in one place; `manage.py setup_periodic_tasks` registers them.

Each job: the name shown in the admin, its Celery task, either an interval in
seconds or a crontab ("minute hour day-of-month month day-of-week") read in the
job's time zone, an `expires` in seconds (a tick not picked up by then is dropped,
not piled up), and a description.
"""

import os
from typing import NamedTuple

# Nightly jobs run at night where the shop's operators are.
NIGHT_ZONE = os.environ.get("SHOPFLOW_SCHEDULE_TIMEZONE", "Europe/Berlin")


class Job(NamedTuple):
    name: str
    task: str
    expires_s: int
    description: str
    every_s: int | None = None
    cron: str | None = None
    timezone: str = "UTC"


JOBS: tuple[Job, ...] = (
    Job(
        "Reconcile lost pipeline steps",
        "orders.reconcile_steps",
        expires_s=50,
        every_s=60,
        description="Re-dispatch steps stuck queued/running past their deadline and pending "
        "steps whose dispatch was lost; dead-letter poison pills. Safe to run twice.",
    ),
    Job(
        "Check dead letters, breakers and queues",
        "notifications.check_alerts",
        expires_s=50,
        every_s=60,
        description="Email ops once per incident: dead letters above threshold, a partner's "
        "circuit breaker open, a queue backlog or its oldest waiting step above threshold.",
    ),
    Job(
        "Subscription cancellation lifecycle",
        "shop.run_subscription_lifecycle",
        expires_s=240,
        every_s=300,
        description="Run the due steps of cancelled subscriptions: day 3 and day 7 win-back "
        "emails, day 14 freeze, day 30 suspend, day 90 archive, at 10:00 in the customer's "
        "time zone.",
    ),
    Job(
        "Nightly sales backfill",
        "orders.backfill_sales",
        expires_s=3 * 3600,
        cron="30 2 * * *",
        timezone=NIGHT_ZONE,
        description="Recompute the per-day sales and per-product/per-channel snapshots of every "
        "day with orders changed since the last run (watermark on Order.updated_at).",
    ),
    Job(
        "Daily cleanup",
        "orders.cleanup_records",
        expires_s=3 * 3600,
        cron="0 4 * * *",
        timezone=NIGHT_ZONE,
        description="Delete expired idempotency keys, finished steps of ended orders and sent "
        "emails past their retention (settings), in batches. Dead letters are kept.",
    ),
    Job(
        "Nightly payment reconciliation report",
        "orders.reconcile_payments",
        expires_s=3 * 3600,
        cron="0 3 * * *",
        timezone=NIGHT_ZONE,
        description="Compare the gateway's captures with the orders: paid but not fulfilled "
        "after a day, charged without a paid order (or charged twice). Shown in Admin › "
        "Discrepancies until resolved.",
    ),
    Job(
        "Product image download retry",
        "shop.retry_image_downloads",
        expires_s=240,
        every_s=300,
        description="Download product images given as URLs that are due: new ones and failed "
        "ones after their backoff (5 min, 15 min, 1 h, 6 h); then marked broken.",
    ),
    Job(
        "Stock sync from the ERP's warehouse feed",
        "shop.sync_stock_from_erp",
        expires_s=1800,
        cron="15 * * * *",
        timezone=NIGHT_ZONE,
        description="Every hour, set each product's stock to the warehouse's count less the "
        "units of orders the warehouse had not been told of when it counted (a bulk job "
        "with progress in Admin › Bulk catalog jobs).",
    ),
    Job(
        "Order follow-ups: review requests and loyalty points",
        "orders.run_follow_ups",
        expires_s=240,
        every_s=300,
        description="Send the review request 7 days after the carrier reported the parcel "
        "delivered (14 days after the label when no delivery is reported; none when it was "
        "returned) and credit its loyalty points after the 14-day return window; cancelled "
        "orders get neither.",
    ),
    Job(
        "Sweep waiting webhook events",
        "webhooks.sweep_events",
        expires_s=50,
        every_s=60,
        description="Publish again the orders whose partner events are due and were not "
        "processed (a lost message, a killed worker). Safe to run twice.",
    ),
)
