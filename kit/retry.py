"""Retry policies: the delays before each retry of a transient failure."""

import random
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RetryPolicy:
    """Delays before each retry of a transient failure; out of delays means failed."""

    delays: tuple[float, ...]
    jitter: float = 0.2

    @classmethod
    def exponential(cls, *, base: float, cap: float, retries: int) -> "RetryPolicy":
        return cls(delays=tuple(min(cap, base * 2**n) for n in range(retries)))

    def countdown(self, retries_done: int) -> float | None:
        """Seconds to wait before the next try, or None when retries are used up."""
        if not 0 <= retries_done < len(self.delays):
            return None
        delay = self.delays[retries_done] * settings.PIPELINE_RETRY_DELAY_SCALE
        # Jitter spreads the retries of many orders that failed together.
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)
