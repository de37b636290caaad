"""Once per tick: a periodic job takes a lease in Redis before it runs.

Two beat processes (a deploy overlap, two machines) send the same tick twice; the
first run takes the lease, the second finds it taken, logs and returns. The lease
outlives the run (most of the interval), so a late duplicate of the same tick is
dropped too, and a job still running is not started again by the next tick.
"""

import logging
from functools import wraps

from kit.redis import shared_redis

logger = logging.getLogger(__name__)


def tick_take(job: str, *, lease_s: float) -> bool:
    """Take this tick of the job; False when another run already has it."""
    return bool(shared_redis().set(f"shopflow:job:{job}", 1, px=int(lease_s * 1000), nx=True))


def once_per_tick(job: str, *, lease_s: float):
    """Run the decorated job only if this tick is not taken; else return None."""

    def decorate(func):
        @wraps(func)
        def run(*args, **kwargs):
            if not tick_take(job, lease_s=lease_s):
                logger.info("job %s: this tick already ran elsewhere; skipping", job)
                return None
            return func(*args, **kwargs)

        return run

    return decorate
