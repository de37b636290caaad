"""Readiness: can the shop do its work? The database answers, the broker answers, every
queue has a worker that answers, and beat has sent a periodic job recently."""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from kombu import Connection
from kombu.pidbox import Mailbox

from config.celery import app as celery_app
from config.queues import QUEUE_NAMES
from orders.ops.selectors import JOB_TASKS


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
            return {
                "broker": Check(False, {"error": _describe(exc)}),
                "workers": Check(False, {"error": "the broker does not answer"}),
            }
        return {"broker": Check(True), "workers": _guarded(lambda: workers_check(broker, timeout))}


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


def beat_check(*, now: datetime) -> Check:
    """Beat is alive when it sent one of the enabled jobs recently."""
    newest = PeriodicTask.objects.filter(enabled=True, task__in=JOB_TASKS).aggregate(
        newest=Max("last_run_at")
    )["newest"]
    limit = settings.READY_BEAT_MAX_AGE_S
    if newest is None:
        return Check(False, {"error": "beat has not sent any periodic job", "max_age_s": limit})
    age = (now - newest).total_seconds()
    detail: dict[str, object] = {
        "last_run_at": newest.isoformat(),
        "age_s": round(age, 1),
        "max_age_s": limit,
    }
    if age > limit:
        detail["error"] = f"beat has sent no periodic job for {age:.0f}s"
    return Check(age <= limit, detail)
