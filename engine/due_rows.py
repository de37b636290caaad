"""Work that falls due at a time, kept as rows in the database: one model, one runner.

Long delays live in rows with a due time, not in the broker (a review request seven
days after an order, the steps of a cancelled subscription, an image's next download).
A periodic job runs `DueRows.run`: it claims the rows that are due, earliest first, a
batch at a time with `SELECT ... FOR UPDATE SKIP LOCKED`, so two runners at once never
claim one row, and hands each claimed row to the domain's work function. A claim is a
lease (engine/leases.py): renewed by the worker's heartbeat while the run lives, dead
once past its expiry on the database's clock, wherever the run was; the domain records
the row's outcome fenced by it (`due_row_finish`), so a run that lost its row changes
nothing. A row whose work raised is left alone for the error window, then taken again.

On SQLite (no row locks) two runners at once may both take a row; run one there.
"""

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from engine.leases import Lease, Leased, lease_end, lease_free, lease_write, leases_take
from engine.lock_objects import due_rows_for_update

logger = logging.getLogger(__name__)

# A row whose work raised waits this long before a run takes it again.
ERROR_WINDOW = timedelta(minutes=10)


class DueRow(Leased):
    """Work due at a time. Abstract: the domain's model adds what the work is about."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # The run that holds it holds its lease (engine/leases.py: Leased).
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def due_row_finish(*, lease: Lease, status: str, now: datetime) -> str:
    """Record how the row's run ended (done, failed or cancelled), fenced by its lease;
    return the status, or "stale" when another run holds the row now."""
    written = lease_write(lease, f"due row {status}", status=status, finished_at=now)
    return status if written else "stale"


def _claimed_as_running() -> dict[str, Any]:
    return {"status": DueRow.Status.RUNNING, "attempts": F("attempts") + 1}


@dataclass(frozen=True)
class DueRows:
    """The rows of one model that fall due, and the work that runs one of them.

    `work(lease, now)` runs the claimed row (`lease.pk`) and records its outcome on it
    under the lease (a status out of `waiting`, or a later due time: `due_row_finish`,
    `lease_write`); it returns the outcome's name. A model that is not
    a DueRow names its due field, its waiting statuses and what a claim writes.
    """

    model: type[models.Model]
    work: Callable[[Lease, datetime], str]
    waiting: tuple[str, ...] = (DueRow.Status.PENDING, DueRow.Status.RUNNING)
    due_field: str = "due_at"
    claim: Mapping[str, Any] = field(default_factory=_claimed_as_running)
    error_window: timedelta = ERROR_WINDOW
    # Small: a claimed row waits for those before it in its batch (its lease renewed by the
    # heartbeat meanwhile), and other runners take the next batches.
    batch: int = 10

    def run(self, *, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
        """Run up to `limit` due rows, earliest first; return how many ended in each outcome."""
        now = now or timezone.now()
        outcomes: Counter[str] = Counter()
        taken = 0
        while taken < limit:
            pks = self._claim(now=now, size=min(self.batch, limit - taken))
            if not pks:
                break
            taken += len(pks)
            for lease in pks:
                outcomes[self._run_one(lease=lease, now=now)] += 1
        return dict(outcomes)

    def _claim(self, *, now: datetime, size: int) -> list[Lease]:
        due = self.model._default_manager.filter(
            lease_free(), status__in=self.waiting, **{f"{self.due_field}__lte": now}
        )
        with transaction.atomic():
            locked = due_rows_for_update(rows=due, due_field=self.due_field)
            pks = list(locked.values_list("pk", flat=True)[:size])
            return leases_take(self.model, pks=pks, **self.claim)

    def _run_one(self, *, lease: Lease, now: datetime) -> str:
        try:
            return self.work(lease, now)
        except Exception as exc:
            logger.exception(
                "due row failed", extra={"model": self.model._meta.label, "row": lease.pk}
            )
            # Held by no run, for the error window: the next runs leave it alone till then.
            lease_write(
                lease,
                "due row error",
                last_error=f"{type(exc).__name__}: {exc}"[:1000],
                lease_holder="",
                lease_expires_at=Now() + self.error_window,
            )
            return "error"
        finally:
            lease_end(lease)  # its work wrote its outcome under the lease, or it lapses
