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

    def countdown(self, retries_done: int, *, endless: bool = False) -> float | None:
        """Seconds to wait before the next try, or None when retries are used up; endless
        keeps trying at the last delay (what cannot be given up, only asked again)."""
        if retries_done < 0 or (retries_done >= len(self.delays) and not endless):
            return None
        delay = self.delays[min(retries_done, len(self.delays) - 1)]
        delay *= settings.PIPELINE_RETRY_DELAY_SCALE
        # Jitter spreads the retries of many orders that failed together.
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)
