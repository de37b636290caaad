"""Cancelling mid-pipeline: steps not started stop, steps done are compensated, once."""

import json

import pytest
from django.core import mail

from engine.steps import step_claim, step_mark_succeeded
from fulfillment.services import order_erp_sync, order_invoice_render, order_label_purchase
from fulfillment.tasks import erp_cancel, erp_sync, invoice_render, label_purchase, label_void
from orders.models import Order, Step
from orders.pipeline import CANCELLATION, PIPELINE
from orders.selectors import order_cancel_key
from orders.services.analytics import order_analytics_track
from orders.services.emails import order_confirmation_email_send
from orders.services.orders import order_cancel
from orders.services.payment import order_payment_capture
from orders.tasks import (
    analytics_track,
    cancellation_email_send,
    confirmation_email_send,
    payment_capture,
    payment_refund,
)
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db

FORWARD_TASKS = {
    "payment_capture": payment_capture,
    "confirmation_email_send": confirmation_email_send,
    "erp_sync": erp_sync,
    "invoice_render": invoice_render,
    "label_purchase": label_purchase,
    "analytics_track": analytics_track,
}
WORK = {
    "payment_capture": order_payment_capture,
    "confirmation_email_send": order_confirmation_email_send,
    "erp_sync": order_erp_sync,
    "invoice_render": order_invoice_render,
    "label_purchase": order_label_purchase,
    "analytics_track": order_analytics_track,
}
COMPENSATION_TASKS = (payment_refund, erp_cancel, label_void, cancellation_email_send)
# The partner effect each forward step has, and the effect that undoes it.
UNDO = {"capture": "refund", "order_sync": "order_cancel", "label": "label_void"}
UNDO_STEP = {spec.undoes: spec.name for spec in CANCELLATION if spec.undoes}


def effect_kinds(sandbox, order: Order) -> list[str]:
    ledger = sandbox.get("/ledger").json()
    return sorted(
        e["kind"]
        for partner in ("payment", "erp", "carrier")
        for e in ledger[partner]["effects"]
        if e["order"] == order.number
    )


@pytest.mark.parametrize("running", [spec.name for spec in PIPELINE])
def test_cancel_while_a_step_runs_compensates_exactly_what_was_done_once(sandbox, running):
    product = product_create(stock=5)
    order = order_place((product, 2)).order
    order_index = [spec.name for spec in PIPELINE].index(running)
    for spec in PIPELINE[:order_index]:
        FORWARD_TASKS[spec.name].apply(args=(order.pk,))
    _, step = step_claim(subject_id=order.pk, name=running, task_id="the-running-delivery")

    # Staff, who may cancel at any stage (the customer only until the ERP sync starts).
    order_cancel(order_id=order.pk, reason="customer changed their mind", by_staff=True)
    # The delivery that was running finishes after the cancel.
    step_mark_succeeded(step=step, result=WORK[running](step.order))
    for task in FORWARD_TASKS.values():
        task.apply(args=(order.pk,))
    made = set(order.steps.values_list("name", flat=True))
    for task in (*COMPENSATION_TASKS, *COMPENSATION_TASKS):  # each twice: once in effect
        if task.name.partition(".")[2] in made:
            task.apply(args=(order.pk,))

    done = effect_kinds(sandbox, order)
    forward = [kind for kind in done if kind in UNDO]
    assert sorted(done) == sorted(forward + [UNDO[kind] for kind in forward])
    assert len(done) == len(set(done))  # each effect and each undo once
    statuses = dict(order.steps.values_list("name", "status"))
    started = {spec.name for spec in PIPELINE[: order_index + 1]}
    assert {n: s for n, s in statuses.items() if n in FORWARD_TASKS} == {
        name: "succeeded" if name in started else "cancelled" for name in FORWARD_TASKS
    }
    # An undo for each step that had its effect, made when that step finished.
    assert {n: s for n, s in statuses.items() if n not in FORWARD_TASKS} == {
        "cancellation_email_send": "succeeded",
        **{UNDO_STEP[name]: "succeeded" for name in started if name in UNDO_STEP},
    }
    order.refresh_from_db()
    product.refresh_from_db()
    # Once the ERP sync started the units may have shipped: they stay off sale.
    if "erp_sync" in started:
        assert (order.status, order.stock_state, product.stock) == ("cancelled", "committed", 3)
    else:
        assert (order.status, order.stock_state, product.stock) == ("cancelled", "released", 5)
    subjects = [m.subject for m in mail.outbox]
    assert subjects.count(f"Your order {order.number} is cancelled") == 1


def test_a_step_that_starts_after_the_cancel_stops_without_effect(sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    order_cancel(order_id=order.pk)

    erp_sync.apply(args=(order.pk,))

    erp = order.steps.get(name="erp_sync")
    assert (erp.status, erp.attempts) == ("cancelled", 0)
    assert sandbox.get("/ledger").json()["erp"]["effects"] == []


def test_cancel_api_cancels_once_and_answers_the_same_again(client, sandbox):
    order = order_place((product_create(stock=3), 1)).order
    url = f"/api/v1/orders/{order.token}/cancel"
    key = order_cancel_key(order=order)

    first = client.post(
        url,
        data=json.dumps({"cancel_key": key, "reason": "ordered twice"}),
        content_type="application/json",
    )
    second = client.post(url, data={"cancel_key": key}, content_type="application/json")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    # Nothing had started: nothing to undo, the customer is told.
    assert [s["step"] for s in second.json()["steps"]][-1:] == ["cancellation_email_send"]
    order.refresh_from_db()
    assert order.cancel_reason == "ordered twice"
    assert Step.objects.filter(order=order).count() == 7


def test_cancel_api_refuses_an_order_whose_payment_failed(client, sandbox):
    order = order_place((product_create(), 1), payment_token="tok_decline").order
    payment_capture.apply(args=(order.pk,))

    response = client.post(
        f"/api/v1/orders/{order.token}/cancel",
        data={"cancel_key": order_cancel_key(order=order)},
        content_type="application/json",
    )

    assert response.status_code == 409
    assert response.json() == {
        "errors": {"status": ["An order whose payment failed cannot be cancelled."]}
    }


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ("{", None),
        ("[]", {"body": ["Expected a JSON object."]}),
        (
            '{"cancel_key": "%s", "reason": 5}',
            {"reason": ["Must be a string of at most 500 characters."]},
        ),
        (
            json.dumps({"cancel_key": "%s", "reason": "x" * 501}),
            {"reason": ["Must be a string of at most 500 characters."]},
        ),
    ],
)
def test_cancel_api_refuses_bad_bodies_with_400(client, sandbox, body, errors):
    order = order_place((product_create(), 1)).order
    if "%s" in body:
        body = body.replace("%s", order_cancel_key(order=order))

    response = client.post(
        f"/api/v1/orders/{order.token}/cancel", data=body, content_type="application/json"
    )

    assert response.status_code == 400
    if errors:
        assert response.json() == {"errors": errors}
    else:
        assert list(response.json()["errors"]) == ["body"]
    order.refresh_from_db()
    assert order.status == "placed"


def test_cancel_api_answers_404_for_an_unknown_token(client):
    response = client.post("/api/v1/orders/nope/cancel", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {"errors": {"token": ["No order with this token."]}}
