"""The housekeeping recovery depends on runs on the control queue's own worker: the
Procfile's worker_high and worker_control, the high queue backed up or its threads all
hung, and the alert check and the reconciliation still run (issue 13, finding 5)."""

from datetime import timedelta

import pytest
import redis

from config.celery import app
from config.queues import CONTROL, HIGH, QUEUE_NAMES, queue_for
from config.schedule import JOBS
from harness.backlog import backlog_publish, hold, holds_release, holds_running, slots_hang
from harness.processes import children_start, children_stop, procfile_worker, wait_for
from harness.procfile import WorkerSpec, procfile_worker_specs
from notifications.models import Alert, OutboxEmail
from orders.models import Step
from tests.factories import order_place, product_create

HIGH_THREADS = 8  # worker_high's --concurrency in the Procfile


@pytest.fixture
def workers(worker_env, tmp_path):
    env = {**worker_env, "ALERT_QUEUE_DEPTH": "10"}
    workers = [
        procfile_worker(name, env=env, log_dir=tmp_path, include=("harness.backlog",))
        for name in ("worker_high", "worker_control")
    ]
    children_start(workers)
    yield workers
    redis.Redis.from_url(app.conf.broker_url).delete(HIGH)
    holds_release(redis_url=app.conf.broker_url)
    children_stop(workers)


def tick(task: str) -> None:
    """Send a periodic job's tick as beat does: routed by its name, with its expires."""
    (job,) = [job for job in JOBS if job.task == task]
    app.send_task(job.task, expires=job.expires_s)


def high_alert_fired() -> Alert | None:
    return Alert.objects.filter(
        kind=Alert.Kind.QUEUE_DEPTH, subject=HIGH, resolved_at__isnull=True
    ).first()


def alert_email_sent() -> bool:
    return OutboxEmail.objects.filter(
        kind=OutboxEmail.Kind.OPS_ALERT, status=OutboxEmail.Status.SENT
    ).exists()


def test_the_reconciliation_and_the_alert_check_run_on_a_prefork_control_worker_of_their_own():
    specs = procfile_worker_specs()

    assert {queue_for(t) for t in ("orders.reconcile_steps", "notifications.check_alerts")} == {
        CONTROL
    }
    assert specs["worker_control"] == WorkerSpec(queues=(CONTROL,), concurrency=2, pool="prefork")
    assert [name for name, spec in specs.items() if CONTROL in spec.queues] == ["worker_control"]
    assert {queue for spec in specs.values() for queue in spec.queues} == set(QUEUE_NAMES)


@pytest.mark.system
def test_alerts_keep_firing_while_thousands_of_messages_back_up_the_high_queue(workers):
    broker = redis.Redis.from_url(app.conf.broker_url)
    # A second each on eight threads: the backlog takes the high pool six minutes.
    backlog_publish(
        broker_url=app.conf.broker_url, signature=hold.si(1.0).set(queue=HIGH), count=3000
    )
    wait_for(
        lambda: holds_running(redis_url=app.conf.broker_url) >= HIGH_THREADS,
        timeout=30,
        what="the high pool working through the backlog",
    )

    tick("notifications.check_alerts")

    alert = wait_for(high_alert_fired, timeout=45, what="the high queue's backlog alert")
    assert alert.message.endswith("messages wait on queue high (threshold 10).")
    assert int(alert.message.split()[0]) > 2000
    wait_for(alert_email_sent, timeout=30, what="the alert's email to ops")
    assert broker.llen(HIGH) > 2000


@pytest.mark.system
def test_alerts_and_the_reconciliation_keep_running_while_every_high_thread_hangs(workers):
    slots_hang(broker_url=app.conf.broker_url, queue=HIGH, slots=HIGH_THREADS, waiting=20)
    order = order_place((product_create(), 1)).order
    payment = Step.objects.filter(order=order, name="payment_capture")
    long_ago = payment.get().created_at - timedelta(minutes=20)
    # As if its message had been lost twenty minutes ago: the reconciliation must
    # publish it again.
    payment.update(status=Step.Status.QUEUED, queued_at=long_ago, published_at=long_ago)

    tick("orders.reconcile_steps")
    tick("notifications.check_alerts")

    alert = wait_for(high_alert_fired, timeout=45, what="the high queue's backlog alert")
    assert alert.message.endswith("messages wait on queue high (threshold 10).")
    wait_for(
        lambda: payment.filter(published_at__gt=long_ago).exists(),
        timeout=45,
        what="the lost payment step published again",
    )
    assert payment.values_list("status", "queued_at").get() == (Step.Status.QUEUED, long_ago)
    assert holds_running(redis_url=app.conf.broker_url) == HIGH_THREADS
