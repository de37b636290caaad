"""The watchdog for workers that live but no longer consume (issue 13): the Procfile's
worker_high, made to stop consuming with Celery's own cancel_consumer while messages
wait, as a worker does after the broker-reconnect faults of celery/celery#8091: an alert,
red on the dashboard, and /readyz failing; a worker whose slots are all busy is none."""

import re

import pytest
import redis

from config.celery import app
from config.queues import HIGH
from harness.backlog import backlog_publish, hold, holds_release, slots_hang
from harness.processes import procfile_worker, wait_for
from notifications.models import Alert
from ops.alerts import alerts_check
from ops.consumers import consumers_live, queues_consumption

pytestmark = pytest.mark.system

STALL_S = 3
HIGH_THREADS = 8  # worker_high's --concurrency in the Procfile


@pytest.fixture
def high_worker(worker_env, tmp_path, settings):
    settings.CONSUMER_STALL_S = STALL_S
    env = {**worker_env, "CONSUMER_BEACON_S": "1"}
    worker = procfile_worker(
        "worker_high", env=env, log_dir=tmp_path, include=("harness.backlog",)
    ).start()
    wait_for(
        lambda: [c for c in consumers_live() if c.node == worker.node],
        timeout=30,
        what="the worker's first beacon",
    )
    yield worker
    redis.Redis.from_url(app.conf.broker_url).delete(HIGH)
    holds_release(redis_url=app.conf.broker_url)
    worker.stop()


def stalls() -> list:
    return [c for c in alerts_check() if c.kind == Alert.Kind.QUEUE_STALLED]


def high_depth() -> int:
    return redis.Redis.from_url(app.conf.broker_url).llen(HIGH)


def test_a_live_worker_that_stops_consuming_while_messages_wait_raises_an_alert_and_shows_red(
    high_worker, staff_client
):
    node = high_worker.node
    [reply] = app.control.cancel_consumer(HIGH, destination=[node], reply=True)
    assert "ok" in reply[node], reply
    backlog_publish(broker_url=app.conf.broker_url, signature=hold.si(0).set(queue=HIGH), count=5)

    [stall] = wait_for(stalls, timeout=60, what="the stalled-queue alert")
    page = staff_client.get("/admin/operations/").content.decode()
    ready = staff_client.get("/readyz")

    assert stall.subject == HIGH
    assert re.fullmatch(
        rf"Messages have waited on high for \d+s and its live workers {re.escape(node)} "
        rf"\(8 of 8 slots free\) took none of them in {STALL_S}s: they no longer consume the "
        r"queue \(a known Celery fault after a broker reconnect\)\. Restart them\.",
        stall.message,
    )
    assert Alert.objects.filter(kind="queue_stalled", subject=HIGH, resolved_at=None).count() == 1
    assert f'<td class="num ops-alert">stalled: {node}</td>' in page
    assert ready.status_code == 503
    assert ready.json()["checks"]["consumers"] == {
        "ok": False,
        "stalled": {"high": [node]},
        "error": f"high not consumed by {node}",
    }
    assert high_depth() == 5

    app.control.add_consumer(HIGH, destination=[node], reply=True)
    wait_for(lambda: high_depth() == 0, timeout=60, what="the worker consuming again")
    wait_for(lambda: not stalls(), timeout=60, what="the alert resolved")
    assert Alert.objects.get(kind="queue_stalled", subject=HIGH).resolved_at is not None
    assert staff_client.get("/readyz").json()["checks"]["consumers"] == {"ok": True}


def test_a_worker_whose_every_slot_is_busy_is_not_taken_for_a_stalled_one(high_worker):
    slots_hang(broker_url=app.conf.broker_url, queue=HIGH, slots=HIGH_THREADS, waiting=5)

    def past_the_window():
        [high] = queues_consumption({HIGH: high_depth()})
        return high if high.waiting_for_s >= STALL_S and high.taken_ago_s >= STALL_S else None

    high = wait_for(past_the_window, timeout=60, what="messages waiting past the stall window")

    assert high.stalled == ()
    assert stalls() == []
    assert high_depth() == 5
