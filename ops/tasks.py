from celery import shared_task

from engine.ticks import once_per_tick
from ops.alerts import alerts_check


# Keeps its name from when alerts lived in notifications: the beat schedule's
# PeriodicTask rows and the routes name it. Killed within its minute, as the
# reconciliation is: the control worker's two processes are one for each.
@shared_task(name="notifications.check_alerts", soft_time_limit=45, time_limit=55)
@once_per_tick("check_alerts", lease_s=50)
def check_alerts() -> int:
    """Idempotent: an open incident is mailed once; a second check finds it open."""
    return len(alerts_check())
