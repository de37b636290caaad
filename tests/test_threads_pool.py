"""The I/O-bound queues' workers run a pool of threads (Procfile): steps stay exactly-once
in effect when several run at once in one process, and a duplicate message is refused."""

import json
import uuid

import pytest

from harness.orders import orders_wait_settled
from harness.processes import queues_worker, wait_for
from orders.models import Order, Step
from orders.tasks import payment_capture
from tests.factories import checkout_body, product_create

pytestmark = pytest.mark.system


@pytest.fixture
def threads_worker(worker_env, tmp_path):
    process = queues_worker(
        env={**worker_env, "DATABASE_CONN_MAX_AGE": "60"},  # kept between tasks, as deployed
        log_path=tmp_path / "worker.log",
        concurrency=4,
        pool="threads",
    ).start()
    yield process
    process.stop()


def test_orders_complete_every_step_once_on_a_worker_with_a_pool_of_threads(
    client, threads_worker, sandbox
):
    product = product_create(stock=100)
    sandbox.post("/control", json={"latency_ms": [20, 80]}).raise_for_status()
    numbers = []
    for _ in range(8):
        response = client.post(
            "/api/v1/checkout",
            data=json.dumps(checkout_body((product.sku, 1))),
            content_type="application/json",
        )
        numbers.append(response.json()["number"])

    orders_wait_settled(numbers, timeout=90)

    assert set(Order.objects.values_list("status", flat=True)) == {"completed"}
    assert set(Step.objects.values_list("status", "attempts", "crashes")) == {("succeeded", 1, 0)}
    effects = sandbox.get("/ledger").json()["payment"]["effects"]
    assert sorted(e["order"] for e in effects) == sorted(numbers)


def test_a_duplicate_message_taken_by_another_thread_while_the_step_runs_does_nothing(
    client, threads_worker, sandbox
):
    product = product_create(stock=10)
    response = client.post(
        "/api/v1/checkout",
        data=json.dumps(checkout_body((product.sku, 1))),
        content_type="application/json",
    )
    order = Order.objects.get(number=response.json()["number"])
    orders_wait_settled([order.number], timeout=60)
    sandbox.post("/control", json={"latency_ms": [800, 800]}).raise_for_status()
    Step.objects.filter(order=order, name="payment_capture").update(status=Step.Status.QUEUED)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PLACED)

    task_id = str(uuid.uuid4())
    for _ in range(2):  # the same message twice at once: two threads of one process take it
        payment_capture.s(order.pk).set(task_id=task_id, queue="high").apply_async()
    wait_for(
        lambda: threads_worker.deliveries_ended(task_id) == 2,
        timeout=30,
        what="both deliveries run to their end",
    )

    step = Step.objects.get(order=order, name="payment_capture")
    # One more run than the first: the second delivery saw the first thread's claim alive
    # (before, a claim of the same process counted as over: it ran again, as a crash).
    assert (step.status, step.attempts, step.crashes) == ("succeeded", 2, 0)
    effects = sandbox.get("/ledger").json()["payment"]["effects"]
    assert [e["order"] for e in effects] == [order.number]
