"""A periodic job's tick runs once however many beat and worker processes send or take it:
its lease is a row in PostgreSQL (engine/ticks.py), held while the job runs and kept for the
rest of its interval, so neither a late duplicate nor a flushed Redis runs it twice."""

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models.functions import Now

from config.celery import app
from engine.heartbeat import leases_renew
from engine.models import JobTick
from engine.ticks import once_per_tick
from harness.processes import wait_for
from kit.redis import shared_redis

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("shared_state_in_test_redis"),
]

# One tick of a job in a process of its own: it waits for the go file, then takes the tick.
TICK = """
import os, sys, time
import django

django.setup()
from engine.ticks import once_per_tick

runs, ready, go = sys.argv[1:4]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.01)


@once_per_tick("test-tick", lease_s=300)
def job():
    with open(runs, "a") as file:
        file.write(f"{os.getpid()}\\n")


job()
"""


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def ticks_at_once(tmp_path: Path, name: str, *, processes: int) -> None:
    """Send one tick to `processes` processes at once (two beats, or a beat's duplicate)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": database_url(),
        "SHOPFLOW_REDIS_URL": app.conf.broker_url,
        "DATABASE_CONN_MAX_AGE": "0",
    }
    go = tmp_path / f"{name}.go"
    ready = [tmp_path / f"{name}.{n}.ready" for n in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TICK, str(tmp_path / "runs"), str(r), str(go)],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        for r in ready
    ]
    try:
        wait_for(lambda: all(r.exists() for r in ready), timeout=60, what="every process ready")
        go.touch()
        codes = [child.wait(timeout=60) for child in children]
    finally:
        for child in children:
            child.kill()
    assert codes == [0] * processes


def runs(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs"
    return path.read_text().split() if path.exists() else []


def test_a_tick_runs_once_across_two_processes_and_again_once_after_redis_is_flushed(tmp_path):
    ticks_at_once(tmp_path, "first", processes=2)
    assert len(runs(tmp_path)) == 1

    shared_redis().flushdb()  # the tests' own Redis database: the broker loses everything
    ticks_at_once(tmp_path, "late", processes=2)  # the same tick, sent again late

    assert len(runs(tmp_path)) == 1
    tick = JobTick.objects.get(job="test-tick")
    assert tick.lease_token == 1


def test_a_job_still_running_past_its_interval_is_not_started_by_the_next_tick():
    started, release = threading.Event(), threading.Event()
    runs = []

    @once_per_tick("long-job", lease_s=1)
    def job():
        runs.append(threading.get_ident())
        started.set()
        release.wait(30)

    def worker_thread():
        try:
            job()
        finally:
            connection.close()

    thread = threading.Thread(target=worker_thread)
    thread.start()
    try:
        started.wait(30)
        # Its interval is over while it still runs; the heartbeat holds its lease.
        JobTick.objects.filter(job="long-job").update(lease_expires_at=Now() - timedelta(seconds=1))
        assert leases_renew() == 1
        next_tick = job()
    finally:
        release.set()
        thread.join()

    assert (next_tick, len(runs)) == (None, 1)


def test_a_late_duplicate_of_a_tick_is_dropped_and_the_next_interval_runs_the_job_again():
    runs = []

    @once_per_tick("died", lease_s=60)
    def job():
        runs.append(1)
        return "ran"

    assert job() == "ran"
    assert job() is None  # the rest of its interval: a late duplicate is dropped
    JobTick.objects.filter(job="died").update(lease_expires_at=Now() - timedelta(seconds=1))
    # (its interval is over)

    assert (job(), len(runs)) == ("ran", 2)
