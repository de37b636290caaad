"""Reads shared by /metrics, /readyz and the dashboard: step counts, windowed durations,
hourly activity and the periodic jobs."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, DateTimeField, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import TruncHour
from django.db.models.query import QuerySet
from django_celery_beat.models import PeriodicTask

from config.schedule import JOBS
from orders.models import DeadLetter, Order, Step

JOB_TASKS = frozenset(job.task for job in JOBS)


def steps_by_name_and_status() -> dict[tuple[str, str], int]:
    # order_by(): the model's default ordering would otherwise join the GROUP BY.
    rows = Step.objects.values_list("name", "status").annotate(n=Count("pk")).order_by()
    return {(name, status): n for name, status, n in rows}


def runs_lost_by_step() -> dict[str, tuple[int, int]]:
    """{step: (deaths blamed on it, runs abandoned past their time limit)} over the step
    records kept (the daily cleanup removes old ones)."""
    rows = Step.objects.values_list("name").annotate(Sum("crashes"), Sum("timeouts")).order_by()
    return {name: (crashes, timeouts) for name, crashes, timeouts in rows}


def dead_letters_by_step() -> dict[str, int]:
    return dict(DeadLetter.objects.values_list("name").annotate(n=Count("pk")).order_by())


def effects_unknown_by_step() -> dict[str, int]:
    """Steps waiting with an effect nobody knows (a running step's is unknown until it ends)."""
    unknown = Step.objects.filter(effect_unknown=True).exclude(status=Step.Status.RUNNING)
    return dict(unknown.values_list("name").annotate(n=Count("pk")).order_by())


def steps_finished_by_queue(*, since: datetime) -> dict[tuple[str, str], int]:
    """Steps that succeeded or failed since then, per (queue, status)."""
    rows = (
        Step.objects.filter(
            finished_at__gte=since, status__in=(Step.Status.SUCCEEDED, Step.Status.FAILED)
        )
        .values_list("queue", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {(queue, status): n for queue, status, n in rows}


@dataclass(frozen=True)
class Distribution:
    """Cumulative counts at or below each bound (the last one is all), and their sum."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    total_s: float


def duration_distributions(
    steps: QuerySet, *, start: str, end: str, by: str, bounds: tuple[float, ...]
) -> dict[str, Distribution]:
    """Distribution of `end - start` over the steps, per value of the `by` field, in one query."""
    took = ExpressionWrapper(F(end) - F(start), output_field=DurationField())
    per_bound = {
        f"le_{n}": Count("pk", filter=Q(took__lte=timedelta(seconds=bound)))
        for n, bound in enumerate(bounds)
    }
    rows = (
        steps.filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
        .annotate(took=took)
        .values(by)
        .annotate(count=Count("pk"), total=Sum("took"), **per_bound)
        .order_by()
    )
    return {
        row[by]: Distribution(
            buckets=tuple((bound, row[f"le_{n}"]) for n, bound in enumerate(bounds)),
            count=row["count"],
            total_s=row["total"].total_seconds(),
        )
        for row in rows
    }


def hourly_counts(rows: QuerySet, *, field: str, since: datetime) -> dict[datetime, int]:
    """How many rows have `field` in each hour since then, keyed by the hour's start (UTC)."""
    counts = (
        rows.filter(**{f"{field}__gte": since})
        .annotate(hour=TruncHour(field, output_field=DateTimeField()))
        .values_list("hour")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(counts)


def orders_per_hour(*, since: datetime) -> dict[datetime, int]:
    return hourly_counts(Order.objects.all(), field="created_at", since=since)


def failures_per_hour(*, since: datetime) -> dict[datetime, int]:
    """Steps that failed for good (dead letters), by the hour they failed."""
    return hourly_counts(DeadLetter.objects.all(), field="finished_at", since=since)


@dataclass(frozen=True)
class BeatJob:
    name: str
    task: str
    registered: bool  # with django-celery-beat (manage.py setup_periodic_tasks)
    schedule: str  # as registered, or as an operator edited it
    enabled: bool
    last_run_at: datetime | None  # when beat last sent it
    overdue_s: float  # how far past its due time it is; 0 when on time


def beat_jobs() -> list[BeatJob]:
    """Each job of config/schedule.py as beat has it: schedule, last run, lateness."""
    tasks = {t.task: t for t in PeriodicTask.objects.filter(task__in=JOB_TASKS)}
    jobs = []
    for job in JOBS:
        task = tasks.get(job.task)
        jobs.append(
            BeatJob(
                name=job.name,
                task=job.task,
                registered=task is not None,
                schedule=_schedule_text(task) if task else "",
                enabled=bool(task and task.enabled),
                last_run_at=task.last_run_at if task else None,
                overdue_s=_overdue_s(task) if task and task.enabled else 0.0,
            )
        )
    return jobs


def _schedule_text(task: PeriodicTask) -> str:
    """As the admin lists it: "every 60 seconds", "30 2 * * * (m/h/dM/MY/d) Europe/Berlin"."""
    return str(task.interval or task.crontab or task.solar or task.clocked)


def _overdue_s(task: PeriodicTask) -> float:
    # Beat counts a job that never ran from its last change; so does this.
    since = task.last_run_at or task.date_changed
    return max(0.0, -task.schedule.remaining_estimate(since).total_seconds())
