"""A whole Shopflow on this machine for chaos tests: its own Redis (AOF on), a web
server, worker processes and the reconciliation loop, all real processes that a
test can kill and restart. Orders go in through the HTTP API."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from config.celery import app as celery_app
from config.devservices import redis_start
from tests.factories import checkout_body
from tests.workers import ROOT, WorkerProcess, process_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rig:
    def __init__(self, *, tmp_path: Path, sandbox_url: str, **env: str) -> None:
        self.tmp = tmp_path
        self.redis_port = free_port()
        self.redis: subprocess.Popen | None = None
        self.broker_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.env = {
            **process_env(broker_url=self.broker_url, sandbox_url=sandbox_url, tmp_path=tmp_path),
            # Lost-step deadlines for a test run: a dead worker on this machine is
            # seen at once (its pid is gone), so these only bound the wait.
            "RECONCILE_RUNNING_AFTER_S": "2",
            "RECONCILE_QUEUED_AFTER_S": "15",
            "RECONCILE_PENDING_AFTER_S": "3",
            "RECONCILE_RETRYING_GRACE_S": "5",
            "BREAKER_COOLDOWN_S": "1",
            "PAYMENT_TIMEOUT_S": "1",
            "ERP_TIMEOUT_S": "1",
            "CARRIER_TIMEOUT_S": "1",
            "ANALYTICS_TIMEOUT_S": "1",
            **env,
        }
        self.workers: list[WorkerProcess] = []
        self.processes: list[subprocess.Popen] = []
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    # --- processes -------------------------------------------------------------------

    def start(
        self,
        *,
        workers: int = 2,
        concurrency: int = 2,
        include: tuple[str, ...] = (),
        reconcile: bool = True,
    ):
        self.redis_up()
        for _ in range(workers):
            self.worker_add(concurrency=concurrency, include=include)
        self._spawn("web", "manage.py", "runserver", f"127.0.0.1:{self.web_port}", "--noreload")
        if reconcile:
            self._spawn("reconcile", "manage.py", "reconcile", "--every", "1")
        self._wait_for_web()
        return self

    def redis_up(self) -> None:
        self.redis = redis_start(port=self.redis_port, workdir=self.tmp / "redis", appendonly=True)

    def redis_restart(self, *, down_for: float) -> None:
        """Stop Redis cleanly (it writes its AOF), wait, start it again on the same data."""
        self.redis.send_signal(signal.SIGTERM)
        self.redis.wait(10)
        time.sleep(down_for)
        self.redis_up()

    def worker_add(self, *, concurrency: int = 2, include: tuple[str, ...] = ()) -> WorkerProcess:
        log = self.tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
        worker = WorkerProcess(
            env=self.env, log_path=log, concurrency=concurrency, include=include
        ).start()
        self.workers.append(worker)
        return worker

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.tmp / f"{name}.log", "ab") as log:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, *args],
                    cwd=ROOT,
                    env={**os.environ, **self.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def _wait_for_web(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.http.get("/api/v1/products")
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"web server did not answer; see {self.tmp / 'web.log'}")

    def stop(self) -> None:
        self.http.close()
        for worker in self.workers:
            worker.stop()
        for process in self.processes:
            process.terminate()
            process.wait(10)
        if self.redis and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(10)

    @contextmanager
    def producer(self):
        """Publish signatures to this rig's broker, as a web process or a worker would."""
        with celery_app.connection_for_write(self.broker_url) as connection:
            yield lambda signature: signature.apply_async(connection=connection)

    # --- orders ----------------------------------------------------------------------

    def checkout(self, items: list[tuple[str, int]], **overrides) -> dict:
        response = self.http.post(
            "/api/v1/checkout",
            json=checkout_body(*items, **overrides),
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text
        return response.json()

    def checkout_many(
        self, bodies: Iterable[list[tuple[str, int]]], *, concurrency: int = 8
    ) -> list[dict]:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(self.checkout, bodies))

    def cancel(self, token: str) -> httpx.Response:
        return self.http.post(f"/api/v1/orders/{token}/cancel", json={"reason": "chaos"})
