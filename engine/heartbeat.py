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

The heartbeat thread is bounded by the database: it blocks only on its own connection,
dropped and opened again after an error.

Time limits in a pool of threads: Celery enforces none there (a thread cannot be killed
or interrupted from outside in Python), so the heartbeat does. A run still going past its
task's hard time limit is abandoned: its lease is no longer renewed, the abandonment is
counted on the step (`timeouts`, shown in /metrics as shopflow_step_runs_abandoned and
logged as "step run abandoned past its time limit"), and the step is queued again at
once to run elsewhere; whatever the late run writes is fenced off by its token. The
thread itself stays busy until its blocking call returns, which bounds it: every partner
call has its own timeout (PAYMENT_TIMEOUT_S, ...), and a step abandoned STEP_MAX_CRASHES
times is dead-lettered (RunTimedOut), so no step can hold more than that many threads. A
prefork pool process is killed at its hard limit by the pool itself, a death blamed on
its step (engine/blame.py).
"""

import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from engine.leases import leases_extend
from engine.liveness import leases_held, tables_held
from engine.pipeline import pipeline
from engine.reconcile import steps_sweep
from engine.steps import RunTimedOut, step_abandon, step_mark_failed

logger = logging.getLogger(__name__)

_started: dict[int, threading.Thread] = {}  # by the pid that started it (prefork forks)


def heartbeat_start() -> None:
    """Start this process's heartbeat, once."""
    if _started.get(os.getpid()):
        return
    thread = threading.Thread(target=_beat, name="step-lease-heartbeat", daemon=True)
    _started[os.getpid()] = thread
    thread.start()


def children_watch_start() -> None:
    """In a prefork worker's main process, sweep as soon as a pool process dies."""
    if _watching.get(os.getpid()):
        return
    thread = threading.Thread(target=_children_watch, name="pool-child-watch", daemon=True)
    _watching[os.getpid()] = thread
    thread.start()


_watching: dict[int, threading.Thread] = {}


def _children_watch() -> None:
    """Wait for a child to die and sweep for the steps it held at once.

    The pool finds a dead pool process by its sentinel pipe, which closes as the process
    exits, and then asks the kernel for its exit status; a pool process with a thread of
    its own (its lease heartbeat) closes the pipe before the kernel reports it dead, and
    the pool misses it until its 5-second maintenance timer (billiard), so the message
    waited up to 5 s for its redelivery. waitid(WNOWAIT) wakes when the child is a
    zombie, without reaping it (the pool still does), and the sweep takes a zombie for
    dead (engine/liveness.py).
    """
    seen: set[int] = set()
    while True:
        try:
            died = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            return  # no children: not a prefork worker's main process
        if died is None or died.si_pid in seen:
            time.sleep(0.05)  # reported until the pool reaps it
            seen &= set(_children())
            continue
        seen.add(died.si_pid)
        try:
            steps_sweep()
        except Exception:
            logger.exception("sweep after a pool process died failed; the heartbeat retries")
            connection.close()


def _children() -> list[int]:
    try:
        return [
            int(pid)
            for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
        ]
    except OSError:
        return []


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
    rows, periodic jobs); return how many. A step run past its time limit is abandoned
    first (see above)."""
    now = time.monotonic()
    for pk, (token, claimed_at, time_limit) in leases_held(pipeline().model).items():
        if time_limit is None or now - claimed_at <= time_limit:
            continue
        if timed_out := step_abandon(pk=pk, token=token, time_limit=time_limit):
            step_mark_failed(step=timed_out, error=RunTimedOut(timed_out))
    return sum(leases_extend(table) for table in tables_held())
