"""A real worker with LOG_FORMAT=json: what a log shipper would read from it."""

import json

import pytest

from harness.orders import orders_wait_settled
from harness.processes import queues_worker
from orders.pipeline import PIPELINE
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.system


@pytest.fixture
def json_worker(worker_env, tmp_path):
    env = {**worker_env, "LOG_FORMAT": "json"}
    process = queues_worker(env=env, log_path=tmp_path / "worker.log").start()
    yield process
    process.stop()


def test_a_worker_logs_json_lines_and_each_task_line_names_its_order_step_and_attempt(
    client, json_worker
):
    product = product_create()
    response = client.post(
        "/api/v1/checkout",
        data=json.dumps(checkout_body((product.sku, 1))),
        content_type="application/json",
    )
    number = response.json()["number"]
    orders_wait_settled([number], timeout=60)
    json_worker.stop()

    # Celery prints its start-up banner and its shutdown notice itself, not through logging.
    lines = json_worker.log().splitlines()
    logged = lines[next(n for n, line in enumerate(lines) if line.startswith("{")) :]
    assert [line for line in logged if not line.startswith("{")] == [
        "",
        "worker: Warm shutdown (MainProcess)",
    ]
    records = [json.loads(line) for line in logged if line.startswith("{")]
    finished = [
        r for r in records if r["logger"] == "celery.app.trace" and "succeeded" in r["message"]
    ]
    assert sorted((r["order"], r["step"], r["attempt"]) for r in finished) == sorted(
        (number, spec.name, 1) for spec in PIPELINE
    )
    # Lines of the main process (a task received) belong to no task; the pool's all do.
    assert all("order" in r for r in records if r["logger"] == "engine.steps")
