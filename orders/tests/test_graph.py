"""Step records drive the graph: a step's success marks, in its own transaction, the
steps now ready; each is published after the commit as a message of its own, with no
canvas; a publish lost after the commit is found as "ready, not published" and sent once.

Messages are published for real to the tests' broker and delivered here the way a
worker runs them (Celery's tracer, with the message's own chain and callbacks)."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from celery import chain, group, signature
from celery.app.trace import build_tracer
from celery.signals import before_task_publish
from django.utils import timezone

import fulfillment.tasks  # noqa: F401  (the step tasks, registered as a worker has them)
import orders.tasks  # noqa: F401
from config.celery import app
from engine.reconcile import steps_reconcile
from orders.models import Order, Step
from orders.pipeline import PIPELINE
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db

TASKS = [spec.task for spec in PIPELINE]


@dataclass
class Message:
    task: str
    id: str
    args: list
    kwargs: dict
    embed: dict  # callbacks, errbacks, chain, chord


@pytest.fixture
def broker():
    """Every task message the test publishes, in order (and nothing left in the queues)."""
    sent: list[Message] = []

    def capture(sender=None, body=None, headers=None, **kwargs) -> None:
        args, kwargs_, embed = body
        sent.append(Message(headers["task"], headers["id"], list(args), kwargs_, embed))

    app.control.purge()
    before_task_publish.connect(capture, weak=False)
    yield sent
    before_task_publish.disconnect(capture)
    app.control.purge()


def deliver(message: Message, capture_on_commit, *, commit: bool = True) -> None:
    """Run one message as a worker would, its transaction's commit included (or, with
    commit=False, the process dying right after the commit, before anything after it)."""
    task = app.tasks[message.task]
    tracer = build_tracer(task.name, task, app=app, eager=True, propagate=True)
    # is_eager only keeps Celery's Django fixup from closing the test's connection.
    request = {"id": message.id, "task": message.task, "is_eager": True, **message.embed}
    with capture_on_commit(execute=commit):
        tracer(message.id, message.args, message.kwargs, request)


def deliver_all(broker: list[Message], capture_on_commit, start: int = 0) -> list[Message]:
    """Deliver every message published, those the deliveries publish too; return them."""
    n = start
    while n < len(broker):
        deliver(broker[n], capture_on_commit)
        n += 1
    return broker[start:]


def placed(capture_on_commit, **kwargs) -> Order:
    with capture_on_commit(execute=True):
        return order_place((product_create(), 1), **kwargs).order


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def ledger_effects(sandbox, partner: str) -> list[str]:
    return [e["kind"] for e in sandbox.get("/ledger").json()[partner]["effects"]]


def test_checkout_publishes_only_the_payment_step(broker, django_capture_on_commit_callbacks):
    order = placed(django_capture_on_commit_callbacks)

    assert [(m.task, m.args) for m in broker] == [("orders.payment_capture", [order.pk])]
    steps = {s.name: s for s in order.steps.all()}
    assert steps["payment_capture"].status == "queued"
    assert steps["payment_capture"].published_at is not None
    assert {s.status for name, s in steps.items() if name != "payment_capture"} == {"pending"}


def test_no_step_message_carries_a_chain_or_callbacks_and_every_step_runs_once(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)

    delivered = deliver_all(broker, django_capture_on_commit_callbacks)

    assert sorted(m.task for m in delivered) == sorted(TASKS)
    assert all(m.args == [order.pk] and m.kwargs == {} for m in delivered)
    assert [(m.embed["chain"], m.embed["callbacks"]) for m in delivered] == [(None, None)] * 6
    order.refresh_from_db()
    assert order.status == "completed"
    assert set(order.steps.values_list("status", "attempts")) == {("succeeded", 1)}


def test_a_step_success_marks_its_successors_ready_in_its_own_transaction(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)

    deliver(broker[0], django_capture_on_commit_callbacks, commit=False)

    states = dict(order.steps.values_list("name", "status"))
    assert states == {
        "payment_capture": "succeeded",
        "confirmation_email_send": "queued",
        "erp_sync": "queued",
        "invoice_render": "queued",
        "label_purchase": "pending",  # waits for the ERP sync
        "analytics_track": "queued",
    }
    assert order.steps.filter(status="queued", published_at__isnull=True).count() == 4
    assert len(broker) == 1  # the process died before publishing them


def test_a_lost_publish_after_a_successful_step_is_sent_once_by_the_reconciliation(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)
    deliver(broker[0], django_capture_on_commit_callbacks, commit=False)

    with django_capture_on_commit_callbacks(execute=True):
        first = steps_reconcile(now=later(61))
    with django_capture_on_commit_callbacks(execute=True):
        second = steps_reconcile(now=later(62))

    lost = ["analytics_track", "confirmation_email_send", "erp_sync", "invoice_render"]
    assert sorted(first.redispatched) == [(order.number, name, "unpublished") for name in lost]
    assert second.redispatched == []
    assert sorted(m.task for m in broker[1:]) == sorted(TASKS[1:4] + TASKS[5:])
    assert not order.steps.filter(status="queued", published_at__isnull=True).exists()
    deliver_all(broker, django_capture_on_commit_callbacks, start=1)
    order.refresh_from_db()
    assert order.status == "completed"


def test_a_ready_step_is_not_published_by_the_reconciliation_before_its_publish_could_be_late(
    sandbox, broker, django_capture_on_commit_callbacks
):
    placed(django_capture_on_commit_callbacks)
    deliver(broker[0], django_capture_on_commit_callbacks, commit=False)

    with django_capture_on_commit_callbacks(execute=True):
        report = steps_reconcile(now=later(30))

    assert report.redispatched == []
    assert len(broker) == 1


def test_a_duplicate_publish_runs_the_step_once(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)

    deliver(broker[0], django_capture_on_commit_callbacks)
    deliver(broker[0], django_capture_on_commit_callbacks)

    assert ledger_effects(sandbox, "payment") == ["capture"]
    assert order.steps.get(name="payment_capture").attempts == 1
    # Its successors went out once, from the first run's commit.
    assert sorted(m.task for m in broker[1:]) == sorted(TASKS[1:4] + TASKS[5:])


def test_a_redelivery_after_a_death_between_commit_and_publish_publishes_the_ready_steps(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)
    deliver(broker[0], django_capture_on_commit_callbacks, commit=False)

    deliver(broker[0], django_capture_on_commit_callbacks)  # acks_late: delivered again

    assert ledger_effects(sandbox, "payment") == ["capture"]
    assert sorted(m.task for m in broker[1:]) == sorted(TASKS[1:4] + TASKS[5:])
    assert not order.steps.filter(status="queued", published_at__isnull=True).exists()


def test_a_message_from_before_the_deploy_carrying_the_canvas_runs_the_pipeline_from_the_records(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)
    broker.clear()
    # As the code before this release published it: the nested canvas, every step pending.
    order.steps.update(status="pending", published_at=None)
    step = {spec.name: signature(spec.task, args=(order.pk,), immutable=True) for spec in PIPELINE}
    chain(
        step["payment_capture"],
        group(
            step["confirmation_email_send"],
            chain(step["erp_sync"], step["label_purchase"]),
            step["invoice_render"],
            step["analytics_track"],
        ),
    ).apply_async()
    assert broker[0].embed["chain"]  # the old message carries what follows

    delivered = deliver_all(broker, django_capture_on_commit_callbacks)

    assert sorted(m.task for m in delivered) == sorted(TASKS)
    assert [(m.embed["chain"], m.embed["callbacks"]) for m in delivered[1:]] == [(None, None)] * 5
    order.refresh_from_db()
    assert order.status == "completed"
    assert ledger_effects(sandbox, "payment") == ["capture"]


def test_a_message_from_before_the_deploy_carrying_callbacks_publishes_no_copy(
    sandbox, broker, django_capture_on_commit_callbacks
):
    order = placed(django_capture_on_commit_callbacks)
    deliver(broker[0], django_capture_on_commit_callbacks)
    erp = next(m for m in broker if m.task == "fulfillment.erp_sync")
    erp.embed = {
        **erp.embed,
        "callbacks": [dict(signature("fulfillment.label_purchase", args=(order.pk,)))],
    }

    deliver(erp, django_capture_on_commit_callbacks)

    assert [m.task for m in broker].count("fulfillment.label_purchase") == 1
    assert Step.objects.get(order=order, name="label_purchase").status == "queued"
