"""Prometheus metrics, served by /metrics in the text format.

All but the checkout latency are read when scraped, from where they are true for every
process: the step records, the broker and the Redis the workers share. So any web
process answers alike, and nothing is lost when a worker dies.

Step durations and queue waits are computed from the step records (started - queued,
finished - started) over the last METRICS_WINDOW_S, not observed in the workers: the
workers run elsewhere, and a histogram in their memory could be neither scraped nor
added up. A window makes them gauge histograms (the distribution of what happened
lately, which may shrink): `histogram_quantile(0.95, sum by (le)
(shopflow_step_duration_seconds_bucket))` gives the recent p95 without rate().
"""

import logging
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from config.schedule import JOBS
from engine.breaker import breaker_states
from ops.counters import job_last_successes, step_retry_totals
from ops.selectors import (
    Distribution,
    beat_jobs,
    dead_letters_by_step,
    duration_distributions,
    effects_unknown_by_step,
    runs_lost_by_step,
    steps_by_name_and_status,
)
from orders.models import Step
from orders.pipeline import ALL_STEPS
from orders.selectors import queue_stats
from webhooks.models import InboxEvent
from webhooks.selectors import inbox_by_partner_and_status
from webhooks.services import event_totals

logger = logging.getLogger(__name__)

DURATION_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
WAIT_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

REGISTRY = CollectorRegistry()

# Observed by the web process that answered (ops.middleware), in its own memory:
# under a server that runs several processes each counts its own requests and a scrape
# sees only the one that answers it. Such a deployment sets PROMETHEUS_MULTIPROC_DIR and
# serves a MultiProcessCollector instead (see prometheus-client's multiprocess mode).
CHECKOUT_LATENCY = Histogram(
    "shopflow_checkout_request_duration_seconds",
    "Time to answer a checkout request (the page's form post or the API), by route and code.",
    ["route", "code"],
    registry=REGISTRY,
)


class PipelineCollector:
    """Read the pipeline's state at scrape time; a source that fails drops only its metrics."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "shopflow_metrics_source_up",
            "Whether this scrape could read the source (1) or not (0).",
            labels=["source"],
        )
        for source, read in (
            ("database", _database_metrics),
            ("broker", _broker_metrics),
            ("redis", _redis_metrics),
        ):
            try:
                metrics = list(read())
            except Exception as exc:
                # No traceback: while a source is down, every scrape would log one.
                logger.warning("metrics: cannot read the %s: %r", source, exc)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from metrics
        yield up


def _database_metrics() -> Iterator[Metric]:
    steps = GaugeMetricFamily(
        "shopflow_steps", "Step records by step and status.", labels=["step", "status"]
    )
    counts = steps_by_name_and_status()
    for spec in ALL_STEPS:
        for status in Step.Status.values:
            steps.add_metric([spec.name, status], counts.get((spec.name, status), 0))
    yield steps

    dead = GaugeMetricFamily(
        "shopflow_dead_letters", "Steps that failed for good, by step.", labels=["step"]
    )
    letters = dead_letters_by_step()
    for spec in ALL_STEPS:
        dead.add_metric([spec.name], letters.get(spec.name, 0))
    yield dead

    unknown = GaugeMetricFamily(
        "shopflow_effects_unknown",
        "Steps, not running, whose last request got no answer and which the partner has "
        "not yet been able to settle (or whose worker died mid-call), by step.",
        labels=["step"],
    )
    unsettled = effects_unknown_by_step()
    for spec in ALL_STEPS:
        unknown.add_metric([spec.name], unsettled.get(spec.name, 0))
    yield unknown
    crashes = CounterMetricFamily(
        "shopflow_step_crashes",
        "Worker deaths blamed on a step that ran alone in its process (engine/blame.py), "
        "by step, over the step records kept.",
        labels=["step"],
    )
    abandoned = CounterMetricFamily(
        "shopflow_step_runs_abandoned",
        "Runs abandoned past their time limit in a pool of threads and run again "
        "(engine/heartbeat.py), by step, over the step records kept.",
        labels=["step"],
    )
    lost = runs_lost_by_step()
    for spec in ALL_STEPS:
        blamed, timed_out = lost.get(spec.name, (0, 0))
        crashes.add_metric([spec.name], blamed)
        abandoned.add_metric([spec.name], timed_out)
    yield crashes
    yield abandoned

    since = timezone.now() - timedelta(seconds=settings.METRICS_WINDOW_S)
    yield _gauge_histogram(
        "shopflow_step_duration_seconds",
        f"Run time of the last attempt of steps that finished in the last "
        f"{settings.METRICS_WINDOW_S:g}s, by step.",
        "step",
        duration_distributions(
            Step.objects.filter(
                finished_at__gte=since, status__in=(Step.Status.SUCCEEDED, Step.Status.FAILED)
            ),
            start="started_at",
            end="finished_at",
            by="name",
            bounds=DURATION_BOUNDS,
        ),
    )
    # First attempts only: a retried step's start is its last retry's, after its backoff.
    yield _gauge_histogram(
        "shopflow_step_queue_wait_seconds",
        f"Time from queued to started of steps first started in the last "
        f"{settings.METRICS_WINDOW_S:g}s, by queue.",
        "queue",
        duration_distributions(
            Step.objects.filter(started_at__gte=since, attempts=1),
            start="queued_at",
            end="started_at",
            by="queue",
            bounds=WAIT_BOUNDS,
        ),
    )

    inbox = GaugeMetricFamily(
        "shopflow_webhook_inbox_events",
        "Partner events in the inbox by partner and status (processed ones until the cleanup).",
        labels=["partner", "status"],
    )
    stored = inbox_by_partner_and_status()
    for partner in settings.WEBHOOK_PARTNERS:
        for status in InboxEvent.Status.values:
            inbox.add_metric([partner, status], stored.get((partner, status), 0))
    yield inbox

    last_run = GaugeMetricFamily(
        "shopflow_beat_job_last_run_timestamp_seconds",
        "When beat last sent each periodic job (Unix time).",
        labels=["job", "task"],
    )
    for job in beat_jobs():
        if job.last_run_at:
            last_run.add_metric([job.name, job.task], job.last_run_at.timestamp())
    yield last_run


def _gauge_histogram(
    name: str, documentation: str, label: str, distributions: dict[str, Distribution]
) -> GaugeHistogramMetricFamily:
    family = GaugeHistogramMetricFamily(name, documentation, labels=[label])
    for value, distribution in sorted(distributions.items()):
        buckets = [(floatToGoString(bound), n) for bound, n in distribution.buckets]
        family.add_metric([value], [*buckets, ("+Inf", distribution.count)], distribution.total_s)
    return family


def _broker_metrics() -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "shopflow_queue_depth", "Messages waiting in the broker, by queue.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "shopflow_queue_oldest_wait_seconds",
        "How long the oldest step queued on each queue has waited.",
        labels=["queue"],
    )
    promise = GaugeMetricFamily(
        "shopflow_queue_max_wait_seconds",
        "Each queue's promise: the longest a step may wait on it (QUEUE_MAX_WAIT_S).",
        labels=["queue"],
    )
    for queue in queue_stats():
        depth.add_metric([queue.name], queue.depth)
        oldest.add_metric([queue.name], queue.oldest_wait_s)
        if queue.max_wait_s is not None:
            promise.add_metric([queue.name], queue.max_wait_s)
    yield depth
    yield oldest
    yield promise


def _redis_metrics() -> Iterator[Metric]:
    retries = CounterMetricFamily(
        "shopflow_step_retries",
        "Retries after a failed attempt (not breaker deferrals), by step and its partner.",
        labels=["step", "partner"],
    )
    totals = step_retry_totals()
    for spec in ALL_STEPS:
        retries.add_metric([spec.name, spec.partner or "none"], totals.get(spec.name, 0))
    yield retries

    is_open = GaugeMetricFamily(
        "shopflow_breaker_open",
        "1 while a partner's circuit breaker is open or probing (calls held back).",
        labels=["partner"],
    )
    failures = GaugeMetricFamily(
        "shopflow_breaker_recent_failures",
        "Failures a partner's breaker counts in its current window.",
        labels=["partner"],
    )
    probes = CounterMetricFamily(
        "shopflow_breaker_probes",
        "Probes sent to a partner since its breaker opened (one per cool-down at most).",
        labels=["partner"],
    )
    for breaker in breaker_states():
        is_open.add_metric([breaker.partner], int(breaker.tripped))
        failures.add_metric([breaker.partner], breaker.failures)
        probes.add_metric([breaker.partner], breaker.probes)
    yield is_open
    yield failures
    yield probes

    events = CounterMetricFamily(
        "shopflow_webhook_events",
        "Partner events by partner, type and outcome: received (stored, duplicates not "
        "counted), processed, ignored (a type we do not act on), retrying (an attempt that "
        "must wait: its order not there yet, an error), failed (for good).",
        labels=["partner", "type", "outcome"],
    )
    for (partner, kind, outcome), n in sorted(event_totals().items()):
        events.add_metric([partner, kind, outcome], n)
    yield events

    last_success = GaugeMetricFamily(
        "shopflow_beat_job_last_success_timestamp_seconds",
        "When a worker last finished each periodic job without error (Unix time).",
        labels=["job", "task"],
    )
    successes = job_last_successes()
    for job in JOBS:
        if job.task in successes:
            last_success.add_metric([job.name, job.task], successes[job.task].timestamp())
    yield last_success


REGISTRY.register(PipelineCollector())
