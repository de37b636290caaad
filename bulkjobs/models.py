from django.db import models

from engine.leases import Leased


class BulkJob(Leased):
    """What every bulk job records: rows counted as they commit, a message, when it was made
    and when it ended, and the lease of the run that works on it (bulkjobs/services.py). A
    kind declares its own `status` field (queued and running, then its end states) and
    lists those end states in FINISHED."""

    ACTIVE = ("queued", "running")
    FINISHED: tuple[str, ...] = ()

    rows_total = models.PositiveIntegerField(default=0)
    # Rows committed so far: a re-run resumes after them.
    rows_done = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def progress_total(self) -> int | None:
        """How many rows the job will count, or None while that is not known yet."""
        return self.rows_total or None
