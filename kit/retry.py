"""Retry policies: the delays before each retry of a transient failure."""

import random
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RetryPolicy:
    """Delays before each retry of a transient failure, and a budget in time: past its
    delays a step keeps retrying at the last one while it was first queued less than
    budget_s ago (a partner down for ten minutes does not fail an order that a
    count of attempts would). Out of both means failed."""

    delays: tuple[float, ...]
    jitter: float = 0.2
    budget_s: float = 0.0

    @classmethod
    def exponential(
        cls, *, base: float, cap: float, retries: int, budget_s: float = 0.0
    ) -> "RetryPolicy":
        return cls(delays=tuple(min(cap, base * 2**n) for n in range(retries)), budget_s=budget_s)

    def countdown(
        self,
        retries_done: int,
        *,
        endless: bool = False,
        elapsed_s: float = 0.0,
        retry_after_s: float | None = None,
    ) -> float | None:
        """Seconds to wait before the next try, or None when retries are used up.

        elapsed_s: since the step was first queued; within the budget the last delay
        repeats. endless keeps trying at the last delay whatever the time (what cannot be
        given up, only asked again). retry_after_s: the partner said when to come back
        (429, 503 with Retry-After): never sooner than that."""
        scale = settings.PIPELINE_RETRY_DELAY_SCALE
        beyond = retries_done >= len(self.delays)
        within_budget = elapsed_s < self.budget_s * settings.PIPELINE_RETRY_BUDGET_SCALE
        if retries_done < 0 or (beyond and not endless and not within_budget):
            return None
        delay = self.delays[min(retries_done, len(self.delays) - 1)] * scale
        # Jitter spreads the retries of many orders that failed together.
        delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(delay, retry_after_s or 0.0)
