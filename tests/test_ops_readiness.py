"""/readyz against real processes: a Redis this test starts, stops and restarts, and a
real worker consuming every queue from it."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from harness.ports import free_port
from harness.processes import process_env, queues_worker
from harness.redis import redis_start
from tests.workers import session_database_url

pytestmark = [pytest.mark.system, pytest.mark.django_db]


class PrivateRedis:
    def __init__(self, workdir) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process = redis_start(port=self.port, workdir=workdir)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.process = redis_start(port=self.port, workdir=self.workdir)


@pytest.fixture
def redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def redis_worker(redis, sandbox_url, tmp_path):
    env = process_env(
        database_url=session_database_url(),
        broker_url=redis.url,
        sandbox_url=sandbox_url,
        tmp_path=tmp_path,
    )
    worker = queues_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1).start()
    yield worker
    worker.stop()


@pytest.fixture
def client(client, settings):
    """/readyz shows its checks to who may read /metrics: these requests carry its token."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {settings.METRICS_TOKEN}"
    return client


def readyz_until(client, status: int, *, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_readyz_is_503_while_redis_is_stopped_and_200_again_after_it_restarts(
    client, settings, redis, redis_worker
):
    settings.CELERY_BROKER_URL = redis.url
    settings.READY_TIMEOUT_S = 0.5
    call_command("setup_periodic_tasks")
    PeriodicTask.objects.update(last_run_at=timezone.now() - timedelta(seconds=5))

    ready = client.get("/readyz")
    redis.stop()
    stopped = client.get("/readyz")
    redis.restart()
    # The worker finds the broker again on its own reconnect schedule (2 s, then 4 s, ...).
    again = readyz_until(client, 200, timeout=30)

    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"]["workers"] == {
        "ok": True,
        "queues": {"high": 1, "medium": 1, "low": 1, "bulk": 1, "control": 1, "quarantine": 1},
    }
    assert stopped.status_code == 503
    assert stopped.json()["status"] == "unavailable"
    assert stopped.json()["checks"]["broker"]["ok"] is False
    assert stopped.json()["checks"]["workers"] == {
        "ok": False,
        "error": "the broker does not answer",
    }
    assert stopped.json()["checks"]["database"] == {"ok": True}
    assert again.status_code == 200, again.json()
    assert client.get("/healthz").status_code == 200  # liveness never depended on Redis
