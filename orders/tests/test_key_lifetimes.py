"""Key lifetimes (issue 16, finding 5): partners keep idempotency keys for a limited time
(Stripe: 24 hours), then the same key acts again and its look-up by key finds nothing.
A step that asks a partner about a call whose key may have been forgotten asks by
order instead, so a retry days later never charges, refunds or buys a label twice.
Against the real sandbox, told to forget its keys at once (key_ttl_s 0), with settings
that say the partner keeps them no longer than that."""

import os
import subprocess
import sys

import pytest

import partners
from engine.dead_letters import dead_letters_retry
from engine.steps import PoisonPill, step_claim, step_mark_failed
from fulfillment.models import Shipment
from fulfillment.tasks import erp_cancel, erp_sync, label_purchase, label_void
from orders.services.orders import order_cancel
from orders.tasks import payment_capture, payment_refund
from tests.factories import order_place, product_create
from tests.steps import answers_lost, deliver, effects

pytestmark = pytest.mark.django_db


def keys_forgotten(sandbox, settings, *names: str) -> None:
    """The partners forget every key they hold, as they do past their key retention, and
    the time since the keys were first sent is past the retention their settings declare."""
    sandbox.post("/control", json={"key_ttl_s": dict.fromkeys(names, 0)}).raise_for_status()
    settings.PARTNERS = {
        name: {**config, **({"key_retention_s": 0} if name in names else {})}
        for name, config in settings.PARTNERS.items()
    }


def made(sandbox, path: str, order) -> list[dict]:
    """What the partner lists under `path` for the order (its look-up by order)."""
    return sandbox.get(path, params={"order": order.number}).json()[path.rsplit("/", 1)[1]]


def test_each_partner_declares_how_long_it_keeps_keys_and_the_environment_overrides_it():
    read = "import django; django.setup(); from django.conf import settings as s; "
    read += "print(*(s.PARTNERS[n]['key_retention_s'] for n in s.PARTNER_NAMES))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}

    declared = subprocess.run(
        [sys.executable, "-c", read],
        env={**env, "CARRIER_KEY_RETENTION_S": "604800"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    # payment, erp, carrier, analytics: Stripe's 24 hours for all, unless told otherwise.
    assert declared == ["86400.0", "86400.0", "604800.0", "86400.0"]


def test_a_key_is_taken_as_maybe_forgotten_a_tenth_of_its_retention_early(settings):
    carrier = {**settings.PARTNERS["carrier"], "key_retention_s": 1000}
    settings.PARTNERS = {**settings.PARTNERS, "carrier": carrier}

    kept = [partners.key_retained("carrier", age_s=age) for age in (0, 899.9, 900, None)]

    assert kept == [True, True, False, False]  # None: no step record says when it was sent


def test_a_label_retried_after_the_carrier_forgot_its_key_buys_no_second_label(sandbox, settings):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    erp_sync.apply(args=(order.pk,))
    order.refresh_from_db()
    # The carrier sells the label; the worker dies before it records anything, and again
    # until the step is a dead letter.
    _, step = step_claim(subject_id=order.pk, name="label_purchase", task_id="dies-after-buying")
    partners.label_purchase(
        order_number=order.number,
        erp_reference=order.erp_reference,
        address=order.shipping_address,
    )
    step_mark_failed(step=step, error=PoisonPill(step))
    keys_forgotten(sandbox, settings, "carrier")

    report = dead_letters_retry(step_ids=[step.pk])  # days later, by hand
    label_purchase.apply(args=(order.pk,))

    assert report.retried == [(order.number, "label_purchase")]
    assert effects(sandbox, "carrier") == [("label", order.number)]
    (label,) = made(sandbox, "/carrier/labels", order)
    step.refresh_from_db()
    assert (step.status, step.result) == (
        "succeeded",
        {"tracking_number": label["tracking_number"]},
    )
    shipment = Shipment.objects.get(order=order)
    assert shipment.tracking_number == label["tracking_number"]
    assert shipment.label.read().decode() == label["label_zpl"]


def test_a_capture_retried_after_the_gateway_forgot_its_key_charges_the_card_once(
    sandbox, settings
):
    order = order_place((product_create(), 1)).order
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_capture, order)  # captured; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    keys_forgotten(sandbox, settings, "payment")

    deliver(payment_capture, order)

    assert effects(sandbox, "payment") == [("capture", order.number)]
    (capture,) = made(sandbox, "/payment/captures", order)
    order.refresh_from_db()
    assert (order.status, order.capture_id) == ("paid", capture["capture_id"])
    step = order.steps.get(name="payment_capture")
    assert (step.status, step.result) == ("succeeded", {"capture_id": capture["capture_id"]})


def test_an_erp_sync_retried_after_the_erp_forgot_its_key_makes_no_second_erp_order(
    sandbox, settings
):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(erp_sync, order)
    answers_lost(sandbox, effects=0, lookups=0)
    keys_forgotten(sandbox, settings, "erp")

    deliver(erp_sync, order)

    assert effects(sandbox, "erp") == [("order_sync", order.number)]
    (synced,) = made(sandbox, "/erp/orders", order)
    order.refresh_from_db()
    assert order.erp_reference == synced["erp_reference"] == "ERP-10000001"
    assert order.erp_acknowledged_at.isoformat() == synced["acknowledged_at"]


def test_a_refund_retried_after_the_gateway_forgot_its_key_refunds_once(sandbox, settings):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    order_cancel(order_id=order.pk, by_staff=True)
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_refund, order)  # refunded; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    keys_forgotten(sandbox, settings, "payment")

    deliver(payment_refund, order)

    assert effects(sandbox, "payment") == [("capture", order.number), ("refund", order.number)]
    (refund,) = made(sandbox, "/payment/refunds", order)
    step = order.steps.get(name="payment_refund")
    assert (step.status, step.result) == ("succeeded", {"refund_id": refund["refund_id"]})


def test_a_cancelled_order_whose_capture_key_the_gateway_forgot_is_still_refunded(
    sandbox, settings
):
    order = order_place((product_create(), 1)).order
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_capture, order)  # captured; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    order_cancel(order_id=order.pk, by_staff=True)
    keys_forgotten(sandbox, settings, "payment")

    payment_capture.apply(args=(order.pk,))  # its retry: cancelled, its undo made
    payment_refund.apply(args=(order.pk,))

    assert effects(sandbox, "payment") == [("capture", order.number), ("refund", order.number)]
    (capture,) = made(sandbox, "/payment/captures", order)
    assert capture["refunded"] is True
    order.refresh_from_db()
    assert (order.status, order.capture_id) == ("cancelled", capture["capture_id"])


@pytest.mark.parametrize(
    ("forward", "undo", "partner", "kinds"),
    [
        (erp_sync, erp_cancel, "erp", ["order_sync", "order_cancel"]),
        (label_purchase, label_void, "carrier", ["label", "label_void"]),
    ],
    ids=["erp_cancel", "label_void"],
)
def test_an_undo_after_the_partner_forgot_the_forward_key_still_undoes_the_effect(
    sandbox, settings, forward, undo, partner, kinds
):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    if forward is label_purchase:
        erp_sync.apply(args=(order.pk,))
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(forward, order)  # done at the partner; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    order_cancel(order_id=order.pk, by_staff=True)
    keys_forgotten(sandbox, settings, partner)

    forward.apply(args=(order.pk,))  # its retry: cancelled, its undo made
    undo.apply(args=(order.pk,))

    assert [kind for kind, _ in effects(sandbox, partner)][-2:] == kinds
    step = order.steps.get(name=undo.name.partition(".")[2])
    assert step.status == "succeeded"
    assert "skipped" not in step.result
