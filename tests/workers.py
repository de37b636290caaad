"""Real Celery worker processes for system tests: started, pinged, stopped by PID."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
from django.db import connection

from config.queues import QUEUE_NAMES
from orders.models import Order, Step

ROOT = Path(__file__).resolve().parent.parent


def session_database_url() -> str:
    """The URL of the database this test session uses, for processes we start."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("system tests need PostgreSQL: set DATABASE_URL (make test does)")
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(*, broker_url: str, sandbox_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for the processes a test starts: its database, broker, sandbox, files."""
    return {
        "DATABASE_URL": session_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "CELERY_BROKER_URL": broker_url,
        "SHOPFLOW_REDIS_URL": broker_url,
        "SANDBOX_URL": sandbox_url,
        "SHOPFLOW_MEDIA_ROOT": str(tmp_path / "media"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "PIPELINE_RETRY_DELAY_SCALE": "0.01",
    }


class WorkerProcess:
    """One `celery worker` process (and its pool) consuming the given queues."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        log_path: Path,
        queues: tuple[str, ...] = QUEUE_NAMES,
        concurrency: int = 4,
        include: tuple[str, ...] = (),
        pool: str = "prefork",
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.env = env
        self.queues = queues
        self.concurrency = concurrency
        self.include = include
        self.pool = pool
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 30) -> "WorkerProcess":
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", ",".join(self.queues), "-n", self.name,
            "--concurrency", str(self.concurrency), "--pool", self.pool,
            "--without-gossip", "--without-mingle", "-l", "info",
        ]  # fmt: skip
        if self.include:
            command += ["--include", ",".join(self.include)]
        with open(self.log_path, "ab") as log:
            # Its own session, so a test can kill the worker with its whole pool.
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}; see {self.log_path}"
                )
            if f"{self.name} ready." in self.log():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not ready within {timeout}s; see {self.log_path}")

    def pool_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def kill(self) -> list[int]:
        """SIGKILL the worker and its pool at once; return the pids that died."""
        pids = [self.process.pid, *self.pool_pids()]
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return pids

    def stop(self, *, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def orders_wait_settled(numbers: list[str], *, timeout: float) -> None:
    """Wait until every order reached its end and no step of it can still move.

    Pending steps of an order that needs attention wait on a failed step: they
    move only when a person retries it.
    """
    deadline = time.monotonic() + timeout
    ended = (
        Order.Status.COMPLETED,
        Order.Status.PAYMENT_FAILED,
        Order.Status.CANCELLED,
        Order.Status.NEEDS_ATTENTION,
    )
    orders = Order.objects.filter(number__in=numbers)
    moving = (
        Step.objects.filter(order__number__in=numbers)
        .exclude(status__in=Step.FINISHED)
        .exclude(status=Step.Status.PENDING, order__status=Order.Status.NEEDS_ATTENTION)
    )
    while time.monotonic() < deadline:
        if orders.filter(status__in=ended).count() == len(numbers) and not moving.exists():
            return
        time.sleep(0.25)
    rows = list(moving.values_list("order__number", "name", "status", "last_error")[:20])
    raise AssertionError(f"not settled in {timeout}s; steps still moving: {rows}")
