"""Real Celery worker processes for system tests: started, pinged, stopped by PID."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

from config.celery import app
from config.queues import QUEUE_NAMES

ROOT = Path(__file__).resolve().parent.parent


def session_database_url() -> str:
    """The URL of the database this test session uses, for processes we start."""
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("system tests need PostgreSQL: set DATABASE_URL (make test does)")
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    """One `celery worker` process consuming the given queues."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        queues: tuple[str, ...] = QUEUE_NAMES,
        concurrency: int = 4,
        log_path: Path,
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.env = env
        self.queues = queues
        self.concurrency = concurrency
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 30) -> "WorkerProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                ",".join(self.queues),
                "-n",
                self.name,
                "--concurrency",
                str(self.concurrency),
                "--pool",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}; see {self.log_path}"
                )
            if app.control.ping(destination=[self.name], timeout=0.5):
                return self
        self.stop()
        raise RuntimeError(f"worker did not answer a ping within {timeout}s; see {self.log_path}")

    def stop(self, *, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
