"""What the admin's operations dashboard shows, with the alert thresholds applied.

Each section is read on its own: when the broker or Redis does not answer, its section
shows the error and the rest of the page still shows.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from engine.breaker import breaker_states
from ops.consumers import queues_consumption
from ops.counters import job_last_successes
from ops.selectors import (
    BeatJob,
    beat_jobs,
    dead_letters_by_step,
    failures_per_hour,
    orders_per_hour,
    steps_by_name_and_status,
    steps_finished_by_queue,
)
from orders.models import Step
from orders.pipeline import ALL_STEPS
from orders.selectors import queue_stats

STATUSES = tuple(Step.Status.values)
THRESHOLDS = ("ALERT_DEAD_LETTERS", "ALERT_QUEUE_DEPTH", "ALERT_JOB_LATE_S")


@dataclass(frozen=True)
class Section:
    value: object = None
    error: str = ""


def _read(read: Callable[[], object]) -> Section:
    try:
        return Section(read())
    except Exception as exc:  # shown in its section instead of failing the page
        return Section(error=f"{exc.__class__.__name__}: {exc}")


@dataclass(frozen=True)
class QueueRow:
    name: str
    depth: int
    oldest_wait_s: float
    max_wait_s: float | None  # the queue's promise
    taken_ago_s: float | None  # its live workers' last take; None: no live worker
    stalled: tuple[str, ...]  # live workers with a free slot that take nothing
    succeeded_last_hour: int
    failed_last_hour: int
    depth_alert: bool
    age_alert: bool


def queue_rows(*, now: datetime) -> list[QueueRow]:
    finished = steps_finished_by_queue(since=now - timedelta(hours=1))
    stats = queue_stats()
    consumption = queues_consumption({queue.name: queue.depth for queue in stats})
    return [
        QueueRow(
            name=queue.name,
            depth=queue.depth,
            oldest_wait_s=queue.oldest_wait_s,
            max_wait_s=queue.max_wait_s,
            taken_ago_s=consumed.taken_ago_s,
            stalled=tuple(c.node for c in consumed.stalled),
            succeeded_last_hour=finished.get((queue.name, Step.Status.SUCCEEDED), 0),
            failed_last_hour=finished.get((queue.name, Step.Status.FAILED), 0),
            depth_alert=queue.depth > settings.ALERT_QUEUE_DEPTH,
            age_alert=queue.late,
        )
        for queue, consumed in zip(stats, consumption, strict=True)
    ]


def step_rows() -> list[tuple[str, list[tuple[str, int]]]]:
    """(step, [(status, count), ...]) for each step that has records, in pipeline order."""
    counts = steps_by_name_and_status()
    names = [spec.name for spec in ALL_STEPS if any((spec.name, s) in counts for s in STATUSES)]
    return [(name, [(s, counts.get((name, s), 0)) for s in STATUSES]) for name in names]


@dataclass(frozen=True)
class DeadLetters:
    total: int
    by_step: list[tuple[str, int]]
    alert: bool


def dead_letters() -> DeadLetters:
    by_step = dead_letters_by_step()
    total = sum(by_step.values())
    return DeadLetters(
        total=total,
        by_step=[(spec.name, by_step[spec.name]) for spec in ALL_STEPS if spec.name in by_step],
        alert=total > settings.ALERT_DEAD_LETTERS,
    )


@dataclass(frozen=True)
class JobRow:
    job: BeatJob
    last_success_at: datetime | None
    late: bool


def job_rows(*, successes: dict[str, datetime]) -> list[JobRow]:
    return [
        JobRow(
            job=job,
            last_success_at=successes.get(job.task),
            late=job.overdue_s > settings.ALERT_JOB_LATE_S,
        )
        for job in beat_jobs()
    ]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    baseline: int
    peak: int
    orders: list[Bar]
    failures: list[Bar]
    hour_marks: list[tuple[float, str]]


CHART_WIDTH, CHART_HEIGHT = 720, 180
CHART_LEFT, CHART_TOP, CHART_BOTTOM = 36, 12, 22


def activity_chart(*, now: datetime, hours: int = 24) -> Chart:
    """Orders placed and steps failed for good, per hour, as SVG bars (this hour last)."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    orders, failures = orders_per_hour(since=start), failures_per_hour(since=start)
    peak = max(1, *orders.values(), *failures.values())
    baseline = CHART_HEIGHT - CHART_BOTTOM
    plot_height = baseline - CHART_TOP
    slot = (CHART_WIDTH - CHART_LEFT) / hours

    def bar(n: int, value: int, offset: float, title: str) -> Bar:
        height = value / peak * plot_height
        x = CHART_LEFT + n * slot + offset * slot
        return Bar(
            round(x, 1), round(baseline - height, 1), round(0.4 * slot, 1), round(height, 1), title
        )

    order_bars, failure_bars, marks = [], [], []
    for n in range(hours):
        hour = start + timedelta(hours=n)
        placed, failed = orders.get(hour, 0), failures.get(hour, 0)
        title = (
            f"{hour:%H:00}–{hour + timedelta(hours=1):%H:00} UTC: "
            f"{placed} orders, {failed} failed steps"
        )
        order_bars.append(bar(n, placed, 0.1, title))
        failure_bars.append(bar(n, failed, 0.5, title))
        if n % 6 == 0:
            marks.append((round(CHART_LEFT + n * slot, 1), f"{hour:%H:00}"))
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        left=CHART_LEFT,
        top=CHART_TOP,
        baseline=baseline,
        peak=peak,
        orders=order_bars,
        failures=failure_bars,
        hour_marks=marks,
    )


@dataclass(frozen=True)
class Overview:
    generated_at: datetime
    thresholds: dict[str, float]
    queues: Section
    statuses: tuple[str, ...]
    steps: Section
    dead_letters: Section
    breakers: Section
    jobs: Section
    job_successes_error: str
    chart: Section


def dashboard_overview() -> Overview:
    now = timezone.now()
    successes = _read(job_last_successes)
    return Overview(
        generated_at=now,
        thresholds={name: getattr(settings, name) for name in THRESHOLDS},
        queues=_read(lambda: queue_rows(now=now)),
        statuses=STATUSES,
        steps=_read(step_rows),
        dead_letters=_read(dead_letters),
        breakers=_read(breaker_states),
        jobs=_read(lambda: job_rows(successes=successes.value or {})),
        job_successes_error=successes.error,
        chart=_read(lambda: activity_chart(now=now)),
    )
