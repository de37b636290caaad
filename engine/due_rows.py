"""Work that falls due at a time, kept as rows in the database: one model, one runner.

Long delays live in rows with a due time, not in the broker (a review request seven
days after an order, the steps of a cancelled subscription, an image's next download).
A periodic job runs `DueRows.run`: it claims the rows that are due, earliest first, a
batch at a time with `SELECT ... FOR UPDATE SKIP LOCKED`, so two runners at once never
claim one row, and hands each claimed row to the domain's work function. A claim older
than the stale window belongs to a run that died, and the row is taken again.

On SQLite (no row locks) two runners at once may both take a row; run one there.
"""

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from engine.lock_objects import due_rows_for_update

logger = logging.getLogger(__name__)

# A claim this old belongs to a run that died; the row may be taken again. No row's
# work takes this long.
STALE_CLAIM = timedelta(minutes=10)


class DueRow(models.Model):
    """Work due at a time. Abstract: the domain's model adds what the work is about."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    due_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # When the run that holds it claimed it; cleared when that run is over.
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def due_row_finish(*, row: DueRow, status: str, now: datetime) -> str:
    """Record how the row's run ended (done, failed or cancelled); return the status."""
    row.status, row.finished_at = status, now
    type(row).objects.filter(pk=row.pk).update(status=status, finished_at=now)
    return status


def _claimed_as_running() -> dict[str, Any]:
    return {"status": DueRow.Status.RUNNING, "attempts": F("attempts") + 1}


@dataclass(frozen=True)
class DueRows:
    """The rows of one model that fall due, and the work that runs one of them.

    `work(pk, now)` runs the claimed row and records its outcome on it (a status out of
    `waiting`, or a later due time); it returns the outcome's name. A model that is not
    a DueRow names its due field, its waiting statuses and what a claim writes.
    """

    model: type[models.Model]
    work: Callable[[int, datetime], str]
    waiting: tuple[str, ...] = (DueRow.Status.PENDING, DueRow.Status.RUNNING)
    due_field: str = "due_at"
    claim: Mapping[str, Any] = field(default_factory=_claimed_as_running)
    stale: timedelta = STALE_CLAIM
    # Small: a claimed row waits for those before it in its batch, and its claim must not
    # go stale meanwhile (a batch of the slowest work, an email or a download of 10 s
    # at most, stays well inside STALE_CLAIM).
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
            for pk in pks:
                outcomes[self._run_one(pk=pk, now=now)] += 1
        return dict(outcomes)

    def _claim(self, *, now: datetime, size: int) -> list[int]:
        due = self.model._default_manager.filter(
            Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - self.stale),
            status__in=self.waiting,
            **{f"{self.due_field}__lte": now},
        )
        with transaction.atomic():
            locked = due_rows_for_update(rows=due, due_field=self.due_field)
            pks = list(locked.values_list("pk", flat=True)[:size])
            self.model._default_manager.filter(pk__in=pks).update(claimed_at=now, **self.claim)
        return pks

    def _run_one(self, *, pk: int, now: datetime) -> str:
        rows = self.model._default_manager.filter(pk=pk, claimed_at=now)
        try:
            outcome = self.work(pk, now)
        except Exception as exc:
            # The claim stays: the row is taken again after the stale window.
            logger.exception("due row failed", extra={"model": self.model._meta.label, "row": pk})
            rows.update(last_error=f"{type(exc).__name__}: {exc}"[:1000])
            return "error"
        rows.update(claimed_at=None)
        return outcome
