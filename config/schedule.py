"""The periodic jobs beat runs, in one place; `manage.py setup_periodic_tasks` registers them.

Each: name shown in the admin, Celery task, interval in seconds, `expires` in seconds
(a tick not picked up by then is dropped, not piled up), description.
"""

from typing import NamedTuple


class Job(NamedTuple):
    name: str
    task: str
    every_s: int
    expires_s: int
    description: str


JOBS: tuple[Job, ...] = (
    Job(
        "Reconcile lost pipeline steps",
        "orders.reconcile_steps",
        60,
        50,
        "Re-dispatch steps stuck queued/running past their deadline and pending steps whose "
        "dispatch was lost; dead-letter poison pills. Safe to run twice.",
    ),
    Job(
        "Check dead letters, breakers and queues",
        "notifications.check_alerts",
        60,
        50,
        "Email ops once per incident: dead letters above threshold, a partner's circuit "
        "breaker open, a queue backlog or its oldest waiting step above threshold.",
    ),
    Job(
        "Subscription cancellation lifecycle",
        "shop.run_subscription_lifecycle",
        300,
        240,
        "Run the due steps of cancelled subscriptions: day 3 and day 7 win-back emails, "
        "day 14 freeze, day 30 suspend, day 90 archive, at 10:00 in the customer's time zone.",
    ),
)
