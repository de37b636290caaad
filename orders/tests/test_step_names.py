"""One name stem per step, from the pipeline declaration to its task, service and
partner call; the names a deploy leaves behind (queued messages, partners' keys) still
work."""

import ast
import inspect
import textwrap

import pytest

import partners
from config.celery import app as celery_app
from config.queues import RENAMED_TASKS, queue_for
from fulfillment import tasks as fulfillment_tasks
from orders import tasks as order_tasks
from orders.models import Order, Step
from orders.pipeline import ALL_STEPS, CANCELLATION, PIPELINE, STEP_BY_TASK
from orders.services.orders import order_cancel
from tests.factories import order_place, product_create


def _calls(function) -> dict[str, ast.Call]:
    """The calls in a function's body, by the name called (`f(...)` and `module.f(...)`)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr: node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }


@pytest.mark.parametrize("spec", ALL_STEPS, ids=lambda spec: spec.name)
def test_every_step_has_one_name_stem_from_declaration_to_task_and_service(spec):
    app_label, task_name = spec.task.split(".")
    tasks = {"orders": order_tasks, "fulfillment": fulfillment_tasks}[app_label]
    task = getattr(tasks, spec.name)

    step_run = _calls(task.run)["step_run"]
    arguments = {k.arg: k.value for k in step_run.keywords}
    service = getattr(tasks, f"order_{spec.name}")

    assert task_name == spec.name
    assert celery_app.tasks[spec.task] is task._get_current_object()
    assert (ast.literal_eval(arguments["name"]), arguments["work"].id) == (
        spec.name,
        f"order_{spec.name}",
    )
    if spec.partner:
        assert spec.name in _calls(service)
        assert callable(getattr(partners, spec.name))


def test_no_step_keeps_a_name_it_had_before_the_stems():
    before_stems = {"payment", "confirmation_email", "invoice", "label", "analytics"}
    before_stems |= {"refund", "cancellation_email", "payment_failed_email"}

    assert {spec.name for spec in ALL_STEPS} & before_stems == set()


@pytest.mark.parametrize("old, new", RENAMED_TASKS.items())
def test_an_old_task_name_runs_the_task_of_its_new_name_on_the_same_queue(old, new):
    router = celery_app.amqp.router

    assert celery_app.tasks[old].run.__func__ is celery_app.tasks[new].run.__func__
    assert queue_for(old) == queue_for(new)
    assert router.route({}, old)["queue"].name == router.route({}, new)["queue"].name
    # The log context and retry counts name the step for a message under the old name too.
    assert STEP_BY_TASK[old] is STEP_BY_TASK[new]


def test_every_step_task_had_its_name_before_the_stems_kept_as_an_alias():
    assert sorted(RENAMED_TASKS.values()) == sorted(spec.task for spec in ALL_STEPS)


@pytest.mark.django_db
def test_a_message_queued_under_the_old_task_name_still_runs_its_step(sandbox):
    order = order_place((product_create(stock=2), 1)).order
    old_name = {new: old for old, new in RENAMED_TASKS.items()}

    for spec in PIPELINE:
        celery_app.tasks[old_name[spec.task]].apply(args=(order.pk,))
    order_cancel(order_id=order.pk, reason="changed my mind", by_staff=True)  # it shipped
    for spec in CANCELLATION:
        celery_app.tasks[old_name[spec.task]].apply(args=(order.pk,))

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert list(order.steps.values_list("name", "status")) == [
        (spec.name, Step.Status.SUCCEEDED) for spec in PIPELINE + CANCELLATION
    ]


def _ledger_keys(sandbox) -> dict[str, list[tuple[str, str]]]:
    ledger = sandbox.get("/ledger").json()
    return {
        partner: [(e["kind"], e["key"]) for e in entry["effects"]]
        for partner, entry in ledger.items()
    }


@pytest.mark.django_db
def test_a_payment_started_before_the_rename_keeps_its_idempotency_key(sandbox):
    order = order_place((product_create(stock=2), 1)).order
    # Before the deploy the gateway took the capture, but its answer never came back.
    first = sandbox.post(
        "/payment/captures",
        json={
            "order": order.number,
            "amount_cents": order.total_cents,
            "currency": order.currency,
            "payment_token": order.payment_token,
        },
        headers={"Idempotency-Key": f"{order.number}:payment"},
    ).json()

    celery_app.tasks["orders.payment_capture"].apply(args=(order.pk,))

    order.refresh_from_db()
    assert order.capture_id == first["capture_id"]
    assert _ledger_keys(sandbox)["payment"] == [("capture", f"{order.number}:payment")]


@pytest.mark.django_db
def test_partner_keys_keep_the_step_names_they_were_first_sent_with(sandbox):
    order = order_place((product_create(stock=2), 1)).order
    for spec in PIPELINE:
        celery_app.tasks[spec.task].apply(args=(order.pk,))
    order_cancel(order_id=order.pk, reason="changed my mind", by_staff=True)  # it shipped
    for spec in CANCELLATION:
        celery_app.tasks[spec.task].apply(args=(order.pk,))

    n = order.number
    assert _ledger_keys(sandbox) == {
        "payment": [("capture", f"{n}:payment"), ("refund", f"{n}:refund")],
        "erp": [("order_sync", f"{n}:erp_sync"), ("order_cancel", f"{n}:erp_cancel")],
        "carrier": [("label", f"{n}:label"), ("label_void", f"{n}:label_void")],
        "analytics": [("event", f"{n}:analytics")],
    }
