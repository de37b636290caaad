"""Three outcomes for a side effect: succeeded, failed (the partner said no), unknown (the
request went out and no answer came). An unknown is settled by asking the partner by
idempotency key, never taken for "nothing happened". Against the real sandbox, whose
control endpoint loses answers."""

from unittest import mock

import pytest
from django.core import mail

import partners
from fulfillment.models import Shipment
from fulfillment.tasks import erp_sync, label_purchase
from orders.tasks import payment_capture
from tests.factories import order_place, product_create
from tests.steps import answers_lost, deliver, effects

pytestmark = pytest.mark.django_db


def test_capture_with_every_answer_lost_is_settled_not_failed(sandbox):
    product = product_create(stock=5)
    order = order_place((product, 2)).order
    answers_lost(sandbox, effects=600, lookups=600)

    for _ in range(8):  # past the urgent policy's six tries
        retry = deliver(payment_capture, order)

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.attempts, step.effect_unknown) == ("retrying", 8, True)
    assert step.last_error.startswith(
        f"PartnerOutcomeUnknown: payment look-up of {order.number}:payment unanswered: "
        "RemoteProtocolError"
    )
    # Out of the policy's delays, it is asked again at the last one (16 s, scaled).
    assert retry.call_args.kwargs["countdown"] == pytest.approx(16 * 0.001, rel=0.2)
    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.status, order.stock_state, product.stock) == ("placed", "reserved", 3)
    assert mail.outbox == []
    assert effects(sandbox, "payment") == [("capture", order.number)]

    answers_lost(sandbox, effects=0, lookups=0)
    calls = sandbox.get("/ledger").json()["payment"]["calls"]
    deliver(payment_capture, order)

    step.refresh_from_db()
    order.refresh_from_db()
    (capture,) = sandbox.get("/payment/captures").json()["captures"]
    assert (step.status, step.effect_unknown, step.result) == (
        "succeeded",
        False,
        {"capture_id": capture["capture_id"]},
    )
    assert (order.status, order.capture_id) == ("paid", capture["capture_id"])
    # Settled by the look-up: no capture was sent again.
    assert sandbox.get("/ledger").json()["payment"]["calls"] == calls
    assert effects(sandbox, "payment") == [("capture", order.number)]


def test_an_unknown_capture_the_gateway_never_saw_is_sent_again_after_the_lookup(sandbox):
    order = order_place((product_create(), 1)).order
    lost = partners.PartnerOutcomeUnknown("payment sent no answer: ReadTimeout timed out")

    with mock.patch("partners.payment_capture", side_effect=lost):
        deliver(payment_capture, order)
    deliver(payment_capture, order)

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.attempts, step.effect_unknown) == ("succeeded", 2, False)
    assert effects(sandbox, "payment") == [("capture", order.number)]
    order.refresh_from_db()
    assert order.status == "paid"


def test_a_decline_whose_answer_was_lost_fails_the_payment_once_the_lookup_finds_it(sandbox):
    order = order_place((product_create(), 1), payment_token="tok_decline").order
    answers_lost(sandbox, effects=600, lookups=0)

    deliver(payment_capture, order)
    answers_lost(sandbox, effects=0, lookups=0)
    deliver(payment_capture, order)

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.attempts, step.effect_unknown) == ("failed", 2, False)
    assert step.last_error == (
        "PartnerRejected: payment refused (402 card_declined): The card was declined."
    )
    order.refresh_from_db()
    assert order.status == "payment_failed"
    assert effects(sandbox, "payment") == []


def test_a_transient_failure_that_surely_did_not_send_is_not_unknown(sandbox):
    order = order_place((product_create(), 1)).order
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()

    deliver(payment_capture, order)

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.effect_unknown) == ("retrying", False)
    assert step.last_error == "PartnerUnavailable: payment answered 503"


def test_an_erp_sync_and_a_label_whose_answers_were_lost_are_settled_by_lookup(sandbox):
    order = order_place((product_create(), 1)).order
    deliver(payment_capture, order)
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(erp_sync, order)
    answers_lost(sandbox, effects=0, lookups=0)
    deliver(erp_sync, order)
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(label_purchase, order)
    answers_lost(sandbox, effects=0, lookups=0)
    deliver(label_purchase, order)

    order.refresh_from_db()
    steps = dict(order.steps.values_list("name", "attempts"))
    assert (steps["erp_sync"], steps["label_purchase"]) == (2, 2)
    assert order.steps.get(name="erp_sync").result == {"erp_reference": order.erp_reference}
    assert order.erp_reference == "ERP-10000001"
    shipment = Shipment.objects.get(order=order)
    assert shipment.tracking_number.startswith("1Z")
    assert order.number in shipment.label.read().decode()
    ledger = sandbox.get("/ledger").json()
    assert (ledger["erp"]["calls"], ledger["carrier"]["calls"]) == (1, 1)
    assert effects(sandbox, "erp") == [("order_sync", order.number)]
    assert effects(sandbox, "carrier") == [("label", order.number)]
