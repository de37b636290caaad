"""Every worker process's heartbeat: a daemon thread that, every STEP_HEARTBEAT_S,
renews the leases the process holds (engine/leases.py: one UPDATE per table of them)
and sweeps for running steps whose lease is dead, anywhere (engine/reconcile.py:
steps_sweep).

Why a sweep in every worker rather than only a job on a queue: a thread of its own is
not behind any backlog and needs no pool slot, so a full or hung high queue cannot
starve it, and it runs wherever any worker runs, so losing any one machine leaves the
others sweeping. The sweep is one indexed query for expired running steps (and this
machine's running steps, whose holders it can probe); a step is re-queued under its row
lock, so two sweepers never re-dispatch it twice. The minute-by-minute reconciliation
stays for lost messages of steps that are not running.

The thread is bounded by the database: it blocks only on its own connection, dropped
and opened again after an error.
"""

import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection

from engine.leases import leases_extend
from engine.liveness import lease_drop, leases_held, tables_held
from engine.pipeline import pipeline
from engine.reconcile import steps_sweep

logger = logging.getLogger(__name__)

_started: dict[int, threading.Thread] = {}  # by the pid that started it (prefork forks)


def heartbeat_start() -> None:
    """Start this process's heartbeat, once."""
    if _started.get(os.getpid()):
        return
    thread = threading.Thread(target=_beat, name="step-lease-heartbeat", daemon=True)
    _started[os.getpid()] = thread
    thread.start()


def _beat() -> None:
    while True:
        time.sleep(settings.STEP_HEARTBEAT_S)
        try:
            leases_renew()
            steps_sweep()
        except Exception:
            logger.exception("step lease heartbeat failed; next beat on a new connection")
            connection.close()


def leases_renew() -> int:
    """Extend every lease this process holds by STEP_LEASE_S on the database's clock, one
    statement per table of held leases (steps, outbox emails, exports, bulk jobs, due
    rows, periodic jobs); return how many. A step run past the hard time limit is
    abandoned: a pool of threads cannot stop it, so its lease is left to lapse and the
    step runs again elsewhere, its late outcome fenced off."""
    steps = pipeline().model
    oldest = time.monotonic() - settings.CELERY_TASK_TIME_LIMIT
    for pk, (_, claimed_at) in leases_held(steps).items():
        if claimed_at < oldest:
            lease_drop(steps, pk)
            logger.error("step run abandoned past its time limit", extra={"step_pk": pk})
    return sum(leases_extend(table) for table in tables_held())
