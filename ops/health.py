"""Readiness: can the shop do its work? The database answers, the broker answers, every
queue has a worker that answers and no live worker of a queue has stopped consuming it,
and beat has started or sent a periodic job recently."""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from celery import current_app as celery_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from kombu import Connection
from kombu.pidbox import Mailbox

from config.queues import QUEUE_NAMES
from ops.consumers import queues_consumption
from ops.selectors import JOB_TASKS
from orders.models import BeatStart
from orders.selectors import queue_stats


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks.values())

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "checks": {name: {"ok": c.ok, **c.detail} for name, c in self.checks.items()},
        }


def readiness(*, broker_url: str, timeout: float | None = None) -> Readiness:
    """Run every check; each waits at most `timeout` seconds for an answer."""
    timeout = settings.READY_TIMEOUT_S if timeout is None else timeout
    return Readiness(
        {
            "database": _guarded(database_check),
            **broker_checks(broker_url=broker_url, timeout=timeout),
            "consumers": _guarded(consumers_check),
            "beat": _guarded(lambda: beat_check(now=timezone.now())),
        }
    )


def _guarded(check: Callable[[], Check]) -> Check:
    # A probe must answer with what failed, never with a 500.
    try:
        return check()
    except Exception as exc:
        return Check(False, {"error": _describe(exc)})


def _describe(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


def database_check() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check(True)


def broker_checks(*, broker_url: str, timeout: float) -> dict[str, Check]:
    with celery_app.connection_for_write(broker_url, connect_timeout=timeout) as broker:
        try:
            broker.ensure_connection(max_retries=0)
        except Exception as exc:
            cache.delete(_WORKERS_KEY)  # after an outage, ask the workers again
            return {
                "broker": Check(False, {"error": _describe(exc)}),
                "workers": Check(False, {"error": "the broker does not answer"}),
            }
        return {"broker": Check(True), "workers": _workers_cached(broker, timeout)}


_WORKERS_KEY = "ops:readyz:workers"


def _workers_cached(broker: Connection, timeout: float) -> Check:
    """The worker ping's answer, kept READY_WORKERS_CACHE_S in the default cache (each
    web process's own): a ping is a broadcast to every worker that waits up to
    `timeout`, so requests must not send one each."""
    cached = cache.get(_WORKERS_KEY)
    if cached is not None:
        return Check(*cached)
    check = _guarded(lambda: workers_check(broker, timeout))
    cache.set(_WORKERS_KEY, (check.ok, check.detail), settings.READY_WORKERS_CACHE_S)
    return check


@functools.cache
def _control_mailbox() -> Mailbox:
    # Celery's own control mailbox publishes on the app's broker whatever connection it
    # is given; this one publishes on the connection it is given. One per process, so
    # the replies come back on one reply queue.
    conf = celery_app.conf
    return Mailbox(
        conf.control_exchange,
        type="fanout",
        accept=conf.accept_content,
        serializer=conf.task_serializer,
    )


def workers_check(broker: Connection, timeout: float) -> Check:
    """Ask every worker which queues it consumes; each queue needs one that answers."""
    replies = _control_mailbox()(broker).multi_call("active_queues", timeout=timeout)
    consumers: dict[str, list[str]] = {name: [] for name in QUEUE_NAMES}
    for reply in replies:
        for worker, queues in reply.items():
            for queue in queues:
                if queue["name"] in consumers:
                    consumers[queue["name"]].append(worker)
    missing = [name for name, workers in consumers.items() if not workers]
    detail: dict[str, object] = {"queues": {name: len(w) for name, w in consumers.items()}}
    if missing:
        detail["error"] = f"no worker answers for {', '.join(missing)}"
    return Check(not missing, detail)


def consumers_check() -> Check:
    """No queue is stalled: messages wait and a live worker of it with a free slot takes
    none (ops/consumers.py). The alert check says so too, but it runs on the control
    queue, so a control worker that stalled could not; a probe from outside can."""
    depths = {queue.name: queue.depth for queue in queue_stats()}
    stalled = {
        c.queue: [worker.node for worker in c.stalled]
        for c in queues_consumption(depths)
        if c.stalled
    }
    if not stalled:
        return Check(True)
    error = "; ".join(f"{queue} not consumed by {', '.join(w)}" for queue, w in stalled.items())
    return Check(False, {"stalled": stalled, "error": error})


def beat_start_record(*, process: str, at: datetime) -> None:
    """Mark beat started: its sign of life until the first job it sends."""
    BeatStart.objects.update_or_create(pk=1, defaults={"process": process, "started_at": at})


def beat_check(*, now: datetime) -> Check:
    """Beat is alive when it started, or sent one of the enabled jobs, within the limit.

    A running beat sends a job at least every minute (the fastest job's interval), so
    its newest send stays within READY_BEAT_MAX_AGE_S. Until its first send, which is a
    minute after `setup_periodic_tasks`, its start mark stands in for one.
    """
    limit = settings.READY_BEAT_MAX_AGE_S
    enabled = PeriodicTask.objects.filter(enabled=True, task__in=JOB_TASKS)
    if not enabled.exists():
        error = "no periodic job is enabled (manage.py setup_periodic_tasks registers them)"
        return Check(False, {"error": error, "max_age_s": limit})
    sent = enabled.aggregate(newest=Max("last_run_at"))["newest"]
    started = BeatStart.objects.values_list("started_at", flat=True).first()
    if sent is None and started is None:
        error = "beat has not started: no start mark and no periodic job sent"
        return Check(False, {"error": error, "max_age_s": limit})
    detail: dict[str, object] = {}
    if started is not None:
        detail["started_at"] = started.isoformat()
    if sent is not None:
        detail["last_run_at"] = sent.isoformat()
    sign = max(at for at in (sent, started) if at is not None)
    age = (now - sign).total_seconds()
    detail |= {"age_s": round(age, 1), "max_age_s": limit}
    if age > limit:
        detail["error"] = (
            f"beat has sent no periodic job for {age:.0f}s"
            if sign == sent
            else f"beat started {age:.0f}s ago and has sent no periodic job since"
        )
    return Check(age <= limit, detail)
