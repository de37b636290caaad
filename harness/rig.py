"""A whole Shopflow on this machine for chaos tests and benchmarks: its own Redis (AOF
on), a web server, worker processes and the reconciliation loop, all real processes
that can be killed and restarted. Orders go in through the HTTP API."""

import signal
import sys
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from config.celery import app as celery_app
from harness.ports import free_port, port_answers
from harness.processes import (
    Child,
    Worker,
    children_start,
    children_stop,
    process_env,
    procfile_worker,
    queues_worker,
)
from harness.procfile import procfile_worker_names
from harness.redis import redis_start


def checkout_body(*items: tuple[str, int], **overrides: Any) -> dict[str, Any]:
    """The JSON body of an API checkout of (sku, quantity) items."""
    body = {
        "email": "ada@example.com",
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical St",
            "city": "London",
            "postal_code": "N1 7AA",
            "country": "GB",
        },
        "payment_token": "tok_visa",
    }
    body.update(overrides)
    return body


class Rig:
    def __init__(self, *, tmp_path: Path, database_url: str, sandbox_url: str, **env: str) -> None:
        self.tmp = tmp_path
        self.redis_port = free_port()
        self.redis = None
        self.broker_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.env = {
            **process_env(
                database_url=database_url,
                broker_url=self.broker_url,
                sandbox_url=sandbox_url,
                tmp_path=tmp_path,
            ),
            # Lost-step deadlines for a test run: a dead worker on this machine is
            # seen at once (its pid is gone), so these only bound the wait.
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
        self.workers: list[Worker] = []
        self.processes: list[Child] = []
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    # --- processes -------------------------------------------------------------------

    def start(
        self, *, copies: int = 1, include: tuple[str, ...] = (), reconcile: bool = True
    ) -> "Rig":
        """Start Redis, the web server, the reconciliation loop (unless told not to) and
        `copies` of each of the Procfile's worker lines, as written."""
        self.redis_up()
        self.processes.append(
            self._child(
                "web",
                "runserver", f"127.0.0.1:{self.web_port}", "--noreload",
                ready=lambda: port_answers("127.0.0.1", self.web_port),
            )
        )  # fmt: skip
        if reconcile:
            self.processes.append(self._child("reconcile", "reconcile", "--every", "1"))
        children_start(self.processes)
        for _ in range(copies):
            self.procfile_start(*procfile_worker_names(), include=include)
        return self

    def prefork_start(self, *, workers: int, concurrency: int) -> list[Worker]:
        """Start prefork workers that each consume every queue (not the Procfile's lines)."""
        started = [
            queues_worker(
                env=self.env,
                log_path=self.tmp / f"worker-{uuid.uuid4().hex[:6]}.log",
                concurrency=concurrency,
            )
            for _ in range(workers)
        ]
        children_start(started)
        self.workers += started
        return started

    def procfile_start(
        self,
        *names: str,
        machine: str | None = None,
        clock_offset_s: float | None = None,
        include: tuple[str, ...] = (),
    ) -> list[Worker]:
        """Start the Procfile's worker lines `names` as written (their pools and
        concurrency), on `machine` (a host name of their own) and with a wall clock
        clock_offset_s seconds off, when given."""
        log_dir = self.tmp / f"workers-{uuid.uuid4().hex[:6]}"  # two of one line, two logs
        log_dir.mkdir()
        started = [
            procfile_worker(
                name,
                env=self.env,
                log_dir=log_dir,
                include=include,
                machine=machine,
                clock_offset_s=clock_offset_s,
            )
            for name in names
        ]
        children_start(started)
        self.workers += started
        return started

    def redis_up(self) -> None:
        self.redis = redis_start(port=self.redis_port, workdir=self.tmp / "redis", appendonly=True)

    def redis_restart(self, *, down_for: float) -> None:
        """Stop Redis cleanly (it writes its AOF), wait, start it again on the same data."""
        self.redis.send_signal(signal.SIGTERM)
        self.redis.wait(10)
        time.sleep(down_for)
        self.redis_up()

    def log(self, name: str) -> str:
        """What the rig's process `name` (web, reconcile) wrote since it started."""
        return next(child for child in self.processes if child.name == name).log()

    def _child(self, name: str, *command: str, ready=None) -> Child:
        argv = [sys.executable, "manage.py", *command]
        return Child(name, argv, env=self.env, log_path=self.tmp / f"{name}.log", ready=ready)

    def stop(self) -> None:
        self.http.close()
        children_stop([*self.workers, *self.processes])
        if self.redis and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(10)

    @contextmanager
    def producer(self):
        """Publish signatures to this rig's broker, as a web process or a worker would.
        A test's own publish: no transaction of the shop's to wait for."""
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

    def cancel(self, token: str, *, cancel_key: str) -> httpx.Response:
        return self.http.post(
            f"/api/v1/orders/{token}/cancel", json={"cancel_key": cancel_key, "reason": "chaos"}
        )
