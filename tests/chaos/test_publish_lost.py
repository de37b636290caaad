"""The broker refuses the publish of the steps a step's success made ready, after that
success committed: they stay ready and unpublished in the step records, and the
reconciliation publishes them once the broker takes messages again, each once
(engine/dispatch.py)."""

import re
from collections import Counter

import pytest
import redis

from harness.orders import orders_wait_settled
from harness.processes import wait_for
from harness.rig import Rig
from orders.models import Order, Step
from orders.pipeline import PIPELINE
from tests.chaos.helpers import duplicates, effects_per_order
from tests.factories import product_create
from tests.workers import session_database_url

pytestmark = pytest.mark.chaos

PAYMENT_SUCCESSORS = {spec.name: spec.task for spec in PIPELINE if spec.after == "payment_capture"}


def test_a_broker_refusing_the_publish_after_a_steps_commit_has_the_reconciliation_send_each_once(
    transactional_db, sandbox, sandbox_url, tmp_path
):
    # The gateway answers in 3 s, within its timeout: the broker refuses meanwhile.
    rig = Rig(
        tmp_path=tmp_path,
        database_url=session_database_url(),
        sandbox_url=sandbox_url,
        PAYMENT_TIMEOUT_S="10",
    )
    try:
        _publish_refused_during_the_payment(rig, sandbox)
    finally:
        rig.stop()


def _publish_refused_during_the_payment(rig: Rig, sandbox) -> None:
    rig.start(copies=0)  # the web server and the reconciliation loop
    workers = rig.procfile_start("worker_high", "worker_medium", "worker_low")
    broker = redis.Redis.from_url(rig.broker_url)
    sandbox.post("/control", json={"latency_ms": [3000, 3000]}).raise_for_status()
    number = rig.checkout([(product_create(stock=5).sku, 1)])["number"]
    order = Order.objects.get(number=number)
    payment = Step.objects.filter(order=order, name="payment_capture")
    wait_for(lambda: payment.filter(status="running").exists(), timeout=60, what="payment running")

    # Redis takes no message (kombu publishes with LPUSH) while its consumers stay
    # connected: stopping Redis would also end the pools of threads' consuming for good
    # (celery/celery#8030; the consumer watchdog's alert, README "When things fail").
    broker.execute_command("ACL", "SETUSER", "default", "-lpush")
    ready = Step.objects.filter(
        order=order, name__in=PAYMENT_SUCCESSORS, status="queued", published_at__isnull=True
    )
    wait_for(
        lambda: payment.filter(status="succeeded").exists() and ready.count() == 4,
        timeout=60,
        what="the payment recorded and its four successors ready, not published",
    )
    # The reconciliation tries too, and fails: they stay unpublished.
    wait_for(
        lambda: f"re-dispatched {number}" in rig.log("reconcile"),
        timeout=60,
        what="a reconciliation run while the broker refuses",
    )
    assert ready.count() == 4
    sandbox.post("/control", json={"latency_ms": [0, 0]}).raise_for_status()
    broker.execute_command("ACL", "SETUSER", "default", "+lpush")
    orders_wait_settled([number], timeout=120)

    order.refresh_from_db()
    assert order.status == "completed"
    assert set(order.steps.values_list("status", "attempts")) == {("succeeded", 1)}
    received = Counter(
        task
        for worker in workers
        for task in re.findall(r"Task ([\w.]+)\[[\w-]+\] received", worker.log())
    )
    assert {name: received[task] for name, task in PAYMENT_SUCCESSORS.items()} == {
        name: 1 for name in PAYMENT_SUCCESSORS
    }
    ledger = sandbox.get("/ledger").json()
    assert effects_per_order(ledger, "payment", "capture") == Counter({number: 1})
    assert duplicates(ledger) == []
