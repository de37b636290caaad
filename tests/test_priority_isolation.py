"""Priority isolation for real: the Procfile's workers (one per queue), a deep backlog
of real bulk-queue messages, and a checkout that must not wait behind it."""

import json
import time

import pytest
import redis

from config.celery import app
from config.queues import BULK
from harness.backlog import bulk_backlog_publish, bulk_runs_by_worker
from harness.orders import orders_wait_settled
from harness.processes import children_start, children_stop, procfile_workers
from orders.models import Order
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.system

BACKLOG = 4000
# CPU per bulk job: the backlog would keep the bulk worker busy for minutes.
JOB_MS = 50


@pytest.fixture
def workers(worker_env, tmp_path):
    workers = procfile_workers(env=worker_env, log_dir=tmp_path, include=("harness.backlog",))
    children_start(workers.values())
    yield workers
    redis.Redis.from_url(app.conf.broker_url).delete(BULK)  # the bulk worker stops after its job
    children_stop(workers.values())


def test_a_checkout_completes_while_a_deep_bulk_backlog_still_waits(client, workers, sandbox):
    product = product_create(stock=10)
    broker = redis.Redis.from_url(app.conf.broker_url)
    bulk_backlog_publish(broker_url=app.conf.broker_url, count=BACKLOG, ms=JOB_MS)
    _wait_until_bulk_work_runs()

    response = client.post(
        "/api/v1/checkout",
        data=json.dumps(checkout_body((product.sku, 1))),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    number = response.json()["number"]
    orders_wait_settled([number], timeout=60)
    # Runs first: a job counts its run after it was taken off the queue, so the runs
    # read before the queue's length never exceed what was taken by then.
    runs = bulk_runs_by_worker(redis_url=app.conf.broker_url)
    still_waiting = broker.llen(BULK)

    order = Order.objects.get(number=number)
    assert order.status == "completed", list(
        order.steps.values_list("name", "status", "last_error")
    )
    assert dict(order.steps.values_list("name", "status")) == {
        "payment_capture": "succeeded",
        "confirmation_email_send": "succeeded",
        "erp_sync": "succeeded",
        "invoice_render": "succeeded",
        "label_purchase": "succeeded",
        "analytics_track": "succeeded",
    }
    assert still_waiting > 0.9 * BACKLOG
    assert list(runs) == [workers["worker_bulk"].node]
    assert 1 <= runs[workers["worker_bulk"].node] <= BACKLOG - still_waiting


def _wait_until_bulk_work_runs(timeout: float = 30) -> None:
    """The backlog is being worked on, not just sitting there, when the order comes in."""
    deadline = time.monotonic() + timeout
    while not bulk_runs_by_worker(redis_url=app.conf.broker_url):
        if time.monotonic() > deadline:
            raise AssertionError(f"no bulk job ran within {timeout}s")
        time.sleep(0.05)
