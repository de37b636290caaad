"""Once per tick: a periodic job takes its lease in PostgreSQL before it runs.

Two beat processes (a deploy overlap, two machines) send the same tick twice, and a
worker may take a late copy; the first run takes the job's lease (engine/leases.py, a
JobTick row per job), the others find it held, log and return. The lease is held while
the job runs (the worker's heartbeat renews it, however long the job takes) and kept
for the rest of the job's interval after it ends, so a late duplicate of the same tick is
dropped too, and a job still running is not started again by the next tick. It lives in
the database, so a flushed or failed-over Redis changes nothing; its fencing token
counts the ticks that ran.
"""

import logging
from datetime import timedelta
from functools import wraps

from django.db.models import F
from django.db.models.functions import Greatest, Now

from engine.leases import Lease, lease_take, lease_write
from engine.models import JobTick

logger = logging.getLogger(__name__)


def tick_take(job: str, *, lease_s: float) -> Lease | None:
    """Take this tick of the job for at least `lease_s`; None when another run has it."""
    JobTick.objects.bulk_create([JobTick(job=job)], ignore_conflicts=True)
    return lease_take(JobTick, pk=job, hold_s=lease_s, taken_at=Now())


def tick_keep(lease: Lease, *, lease_s: float) -> None:
    """End the run and keep the tick for the rest of its `lease_s` from when it was taken:
    held by no process then (so no probe finds its holder gone), only by its expiry."""
    lease_write(
        lease,
        "tick kept",
        lease_holder="",
        lease_expires_at=Greatest(F("taken_at") + timedelta(seconds=lease_s), Now()),
    )


def once_per_tick(job: str, *, lease_s: float):
    """Run the decorated job only if this tick is not taken; else return None. `lease_s`
    is most of the job's interval: how long a tick keeps the job from running again."""

    def decorate(func):
        @wraps(func)
        def run(*args, **kwargs):
            lease = tick_take(job, lease_s=lease_s)
            if lease is None:
                logger.info("job %s: this tick already ran elsewhere; skipping", job)
                return None
            try:
                return func(*args, **kwargs)
            finally:  # a job that failed had its tick too; one killed lets its lease lapse
                tick_keep(lease, lease_s=lease_s)

        return run

    return decorate
