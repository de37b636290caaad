from django.db import models
from django.utils import timezone

from engine.leases import Leased


class StepRecord(Leased):
    """One step of one subject's pipeline: the source of truth for its progress.

    Abstract: the domain's concrete model adds the foreign key to its subject (named
    by the pipeline's `subject`), its ordering, constraints and indexes.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        RETRYING = "retrying", "retrying"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
    # Not started, or waiting for its next try.
    WAITING = (Status.PENDING, Status.QUEUED, Status.RETRYING)

    name = models.CharField(max_length=32)
    position = models.PositiveSmallIntegerField()
    queue = models.CharField(max_length=16)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Deaths of its worker process blamed on it (engine/blame.py); past a limit the step
    # is a poison pill.
    crashes = models.PositiveSmallIntegerField(default=0)
    # The step's effect may be in place and nobody knows: a run holds it (and may die
    # mid-call), or its last attempt sent a request that got no answer. The next run
    # asks the partner first (the step's settle); an undo is made for it. Never reset
    # by a dead-letter retry: an effect of an earlier life is still there.
    effect_unknown = models.BooleanField(default=False)
    # The run holding it shares its process with other runs (a pool of threads), so the
    # process's death is not blamed on it.
    run_shared = models.BooleanField(default=False)
    # Its process died while it ran beside others: it runs again alone, on the quarantine
    # queue, where a death is its own.
    suspect = models.BooleanField(default=False)
    # Runs abandoned past the time limit in a pool of threads (engine/heartbeat.py).
    timeouts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_traceback = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # "host:pid/thread" of the run holding it, for people reading it (never judged).
    claimed_by = models.CharField(max_length=128, blank=True)
    # The run's lease (engine/leases.py: Leased): its holding process, a fencing token
    # that grows with every claim (each outcome write carries it), and an expiry set with
    # the database's clock and renewed by the holder's heartbeat.
    created_at = models.DateTimeField(default=timezone.now)
    # The first time, never reset (a dead-letter retry keeps it): the queue's age, the
    # start of the retry budget in time, and how old the step's idempotency key is at
    # the partner (orders/selectors.py step_key_age_s: past its retention, ask by order).
    queued_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)  # its latest message
    started_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class JobTick(Leased):
    """A periodic job's lease (engine/ticks.py): the tick that took it holds it while the job
    runs and for the rest of the job's interval, so a tick runs once across every beat and
    worker process, whatever became of Redis."""

    job = models.CharField(max_length=64, primary_key=True)
    # When the tick that holds it was taken, on the database's clock.
    taken_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.job} (token {self.lease_token})"
