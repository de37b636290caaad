"""What `make test` and `make demo` bring on a bare machine (harness/): their own
PostgreSQL and Redis when none answers, Chromium or a message saying how to get it, and
a demo whose supervisor starts again whatever dies."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.browser import INSTALL_HINT, chromium_ensure
from harness.demo import Supervisor
from harness.ports import free_port, port_answers
from harness.postgres import postgres_answers
from harness.processes import Child, wait_for
from harness.procfile import ROOT
from harness.redis import redis_answers

pytestmark = pytest.mark.system

REPORT = """
import os, psycopg, redis
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).set("k", 1)
print("DATABASE_URL", os.environ["DATABASE_URL"])
print("CELERY_BROKER_URL", os.environ["CELERY_BROKER_URL"])
"""


def services_run(*, database_url: str, broker_url: str) -> tuple[dict[str, str], str]:
    """Run a small program under `harness.services run`, as `make test` runs pytest."""
    result = subprocess.run(
        [sys.executable, "-m", "harness.services", "run", "--", sys.executable, "-c", REPORT],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": database_url, "TEST_BROKER_URL": broker_url},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = ("DATABASE_URL ", "CELERY_BROKER_URL ")
    lines = [line for line in result.stdout.splitlines() if line.startswith(names)]
    seen = dict(line.split(" ", 1) for line in lines)
    return seen, result.stdout


def test_the_test_command_starts_its_own_postgres_and_redis_when_nothing_answers_and_stops_them():
    nothing = free_port()

    seen, output = services_run(
        database_url=f"postgres://postgres@127.0.0.1:{nothing}/test",
        broker_url=f"redis://127.0.0.1:{nothing}/15",
    )

    assert "PostgreSQL: nothing answers at" in output
    assert "Redis: nothing answers at" in output
    assert seen["DATABASE_URL"].endswith("/test")
    assert seen["CELERY_BROKER_URL"].endswith("/15")
    ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in seen.values()]
    assert nothing not in ports
    # Stopped afterwards, and the throwaway cluster's data is gone with it.
    assert not any(port_answers("127.0.0.1", port) for port in ports)
    assert not (ROOT / "var" / "test-postgres" / str(ports[0])).exists()


def test_the_test_command_uses_servers_that_answer_and_leaves_them_running():
    database_url, broker_url = os.environ["DATABASE_URL"], os.environ["CELERY_BROKER_URL"]

    seen, output = services_run(database_url=database_url, broker_url=broker_url)

    assert seen == {"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url}
    assert "started our own" not in output
    assert postgres_answers(database_url)
    assert redis_answers(broker_url)


def test_the_test_command_says_how_to_install_chromium_when_it_is_missing_and_cannot_install_it(
    monkeypatch, tmp_path
):
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, no apt-get

    with pytest.raises(SystemExit) as stopped:
        chromium_ensure()

    assert str(stopped.value) == f"[services] {INSTALL_HINT}"


@pytest.fixture
def short_dir():
    """A directory with a short path: a Unix socket's path is limited to ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_process_killed_under_the_demo_supervisor_is_started_again_and_the_others_keep_running(
    short_dir,
):
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    supervisor = Supervisor(
        {"worker_a": sleeper, "worker_b": sleeper},
        env={"PATH": os.environ["PATH"]},
        workdir=short_dir,
        stdout=(short_dir / "out.log").open("wb"),
    )
    try:
        supervisor.start(["worker_a", "worker_b"])
        killed = wait_for(lambda: supervisor.pid("worker_a"), timeout=30, what="worker_a up")
        other = wait_for(lambda: supervisor.pid("worker_b"), timeout=30, what="worker_b up")

        os.kill(killed, signal.SIGKILL)

        again = wait_for(
            lambda: supervisor.pid("worker_a") not in (0, killed) and supervisor.pid("worker_a"),
            timeout=30,
            what="worker_a started again",
        )
        assert supervisor.process.poll() is None
        assert supervisor.pid("worker_b") == other
        log = (short_dir / "supervisord.log").read_text()
        assert "exited: worker_a (terminated by SIGKILL; not expected)" in log
        assert f"spawned: 'worker_a' with pid {again}" in log
    finally:
        supervisor.stop()


def test_the_demo_database_left_running_by_a_killed_wrapper_is_taken_over_and_stopped_with_it(
    short_dir,
):
    port = free_port()
    url = f"postgres://postgres@127.0.0.1:{port}/shopflow"
    argv = [sys.executable, "-m", "harness.services", "postgres", "--url", url]
    argv += ["--dir", str(short_dir / "pg")]
    first = Child("postgres", argv, env={}, log_path=short_dir / "first.log")
    first.start()
    first.wait_until(lambda: postgres_answers(url), timeout=60)

    os.kill(first.pid, signal.SIGKILL)  # the wrapper only: its server runs on
    first.process.wait()
    second = Child("postgres", argv, env={}, log_path=short_dir / "second.log")
    second.start()
    second.wait_until(lambda: "taking over our PostgreSQL" in second.log(), timeout=30)
    assert postgres_answers(url)

    second.process.send_signal(signal.SIGTERM)
    second.process.wait(30)
    wait_for(lambda: not port_answers("127.0.0.1", port), timeout=30, what="server stopped")
