"""Key lifetimes (issue 16, finding 5): partners keep idempotency keys for a limited time
(Stripe: 24 hours), then the same key acts again and its look-up by key finds nothing.
A step that asks a partner about a call whose key may have been forgotten asks by
order instead, so a retry days later never charges, refunds or buys a label twice.
Against the real sandbox, told to forget its keys at once (key_ttl_s 0), with settings
that say the partner keeps them no longer than that."""

import logging
import os
import subprocess
import sys
from datetime import timedelta
from importlib import import_module

import httpx
import pytest
from django.apps import apps
from django.db.models.functions import Now
from django.utils import timezone

import partners
from engine.dead_letters import dead_letters_retry
from engine.steps import PoisonPill, step_abandon, step_claim, step_mark_failed
from fulfillment.models import Shipment
from fulfillment.tasks import erp_cancel, erp_sync, label_purchase, label_void
from orders.pipeline import ORDER_PIPELINE
from orders.selectors import step_key_age_s
from orders.services.orders import order_cancel
from orders.services.payment import order_payment_capture_settle
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


# --- the reviewer's attacks (issue 16, finding 5, review) -----------------------------------

# Within the partners' realistic retention (24 hours, less a tenth: 21.6 hours) and past it.
WITHIN, PAST = timedelta(hours=20), timedelta(hours=23)


def queued_ago(order, name: str, ago: timedelta) -> None:
    """The step was first queued (and its key first sent) `ago` before now."""
    order.steps.filter(name=name).update(queued_at=Now() - ago)


def refund_post(sandbox, order, *, amount_cents: int, key: str) -> dict:
    """A refund made at the gateway by someone else than the pipeline (ops, by hand)."""
    body = {"capture_id": order.capture_id, "amount_cents": amount_cents, "order": order.number}
    response = sandbox.post("/payment/refunds", json=body, headers={"Idempotency-Key": key})
    response.raise_for_status()
    return response.json()


def shipped_and_cancelled():
    """An order captured, synced and labelled, then cancelled by staff: its three undos made."""
    order = order_place((product_create(), 1)).order
    for task in (payment_capture, erp_sync, label_purchase):
        task.apply(args=(order.pk,))
    order_cancel(order_id=order.pk, by_staff=True)
    order.refresh_from_db()
    return order


@pytest.mark.parametrize("undo", ["payment_refund", "erp_cancel", "label_void"])
def test_an_undo_step_knows_how_long_ago_its_key_was_first_sent(sandbox, undo):
    order = shipped_and_cancelled()

    age = step_key_age_s(order_id=order.pk, name=undo)

    assert age is not None and 0 <= age < 60
    assert order.steps.get(name=undo).queued_at is not None  # its retry budget in time too


def test_a_refund_whose_answer_was_lost_adopts_its_own_refund_not_a_goodwill_refund_ops_made(
    sandbox,
):
    order = order_place((product_create(price_cents=1000), 1)).order
    payment_capture.apply(args=(order.pk,))
    order.refresh_from_db()
    goodwill = refund_post(sandbox, order, amount_cents=100, key="ops-goodwill")
    order_cancel(order_id=order.pk, by_staff=True)
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_refund, order)  # refunded in full; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)

    deliver(payment_refund, order)

    refunds = made(sandbox, "/payment/refunds", order)
    (ours,) = [r for r in refunds if r["refund_id"] != goodwill["refund_id"]]
    assert (ours["capture_id"], ours["amount_cents"]) == (order.capture_id, order.total_cents)
    step = order.steps.get(name="payment_refund")
    assert (step.status, step.result) == ("succeeded", {"refund_id": ours["refund_id"]})


def asked(monkeypatch) -> list[str]:
    """How each look-up asked the partner: "by key" or "by order"."""
    how: list[str] = []
    by_key, by_order = partners._find_by_key, partners._find_by_order

    def key(*args, **kwargs):
        how.append("by key")
        return by_key(*args, **kwargs)

    def order(*args, **kwargs):
        how.append("by order")
        return by_order(*args, **kwargs)

    monkeypatch.setattr(partners, "_find_by_key", key)
    monkeypatch.setattr(partners, "_find_by_order", order)
    return how


@pytest.mark.parametrize(("ago", "how"), [(WITHIN, "by key"), (PAST, "by order")])
def test_a_capture_settled_asks_by_key_within_the_retention_and_by_order_past_it(
    sandbox, monkeypatch, ago, how
):
    order = order_place((product_create(), 1)).order
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_capture, order)  # captured; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    queued_ago(order, "payment_capture", ago)
    asks = asked(monkeypatch)

    deliver(payment_capture, order)

    assert asks == [how]
    (capture,) = made(sandbox, "/payment/captures", order)
    order.refresh_from_db()
    assert (order.status, order.capture_id) == ("paid", capture["capture_id"])
    assert effects(sandbox, "payment") == [("capture", order.number)]


@pytest.mark.parametrize(("ago", "how"), [(WITHIN, "by key"), (PAST, "by order")])
def test_a_refund_settled_measures_its_own_key_age_not_the_captures(sandbox, monkeypatch, ago, how):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    queued_ago(order, "payment_capture", timedelta(days=30))  # the capture's key: long gone
    order_cancel(order_id=order.pk, by_staff=True)
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_refund, order)
    answers_lost(sandbox, effects=0, lookups=0)
    queued_ago(order, "payment_refund", ago)
    asks = asked(monkeypatch)

    deliver(payment_refund, order)

    assert asks == [how]
    (refund,) = made(sandbox, "/payment/refunds", order)
    step = order.steps.get(name="payment_refund")
    assert (step.status, step.result) == ("succeeded", {"refund_id": refund["refund_id"]})


def test_a_settle_of_a_step_whose_record_is_gone_asks_by_order(sandbox, monkeypatch):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    (capture,) = made(sandbox, "/payment/captures", order)
    order.steps.filter(name="payment_capture").delete()  # the cleanup deleted it
    asks = asked(monkeypatch)

    assert order_payment_capture_settle(order) == {"capture_id": capture["capture_id"]}
    assert asks == ["by order"]


def test_a_capture_look_up_by_order_adopts_no_capture_that_was_refunded(sandbox, settings):
    order = order_place((product_create(), 1)).order
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(payment_capture, order)  # captured; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    (first,) = made(sandbox, "/payment/captures", order)
    order.capture_id = first["capture_id"]
    refund_post(sandbox, order, amount_cents=order.total_cents, key="ops-refund")  # ops, by hand
    keys_forgotten(sandbox, settings, "payment")

    deliver(payment_capture, order)

    captures = made(sandbox, "/payment/captures", order)
    assert [c["refunded"] for c in captures] == [True, False]
    order.refresh_from_db()
    assert (order.status, order.capture_id) == ("paid", captures[1]["capture_id"])


def test_a_refund_look_up_by_order_adopts_no_partial_refund_and_refunds_in_full(sandbox, settings):
    order = order_place((product_create(price_cents=1000), 1)).order
    payment_capture.apply(args=(order.pk,))
    order.refresh_from_db()
    refund_post(sandbox, order, amount_cents=100, key="ops-goodwill")
    order_cancel(order_id=order.pk, by_staff=True)
    keys_forgotten(sandbox, settings, "payment")
    order.steps.filter(name="payment_refund").update(effect_unknown=True)  # its answer lost

    deliver(payment_refund, order)

    amounts = [r["amount_cents"] for r in made(sandbox, "/payment/refunds", order)]
    assert amounts == [100, order.total_cents]


@pytest.mark.parametrize(
    ("undo", "find"),
    [(erp_cancel, partners.erp_sync_find), (label_void, partners.label_purchase_find)],
    ids=["erp_cancel", "label_void"],
)
def test_a_look_up_by_order_adopts_no_erp_order_cancelled_or_label_voided(sandbox, undo, find):
    order = shipped_and_cancelled()
    undo.apply(args=(order.pk,))

    assert find(order_number=order.number, key_age_s=None) is None


def test_a_look_up_by_order_that_finds_two_candidates_says_it_cannot_tell(sandbox, caplog):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    order.refresh_from_db()
    body = {
        "order": order.number,
        "amount_cents": order.total_cents,
        "currency": order.currency,
        "payment_token": "tok_visa",
    }
    sandbox.post("/payment/captures", json=body, headers={"Idempotency-Key": "ops-charge"})
    caplog.set_level(logging.WARNING, logger="partners")

    with pytest.raises(partners.PartnerOutcomeUnknown, match="2 captures"):
        partners.payment_capture_find(
            order_number=order.number, key_age_s=None, amount_cents=order.total_cents
        )
    (record,) = [r for r in caplog.records if r.name == "partners"]
    assert (record.order, record.step) == (order.number, "payment_capture")


@pytest.mark.parametrize(
    ("status", "effect_unknown"),
    [(409, True), (503, False)],
    ids=["409 in progress: the earlier request may still act", "503: it did nothing"],
)
def test_a_post_answered_409_in_progress_leaves_the_step_effect_unknown(
    sandbox, status, effect_unknown
):
    order = order_place((product_create(), 1)).order
    control = {"failure_rate": 1.0, "failure_status": status}
    sandbox.post("/control", json=control).raise_for_status()

    deliver(payment_capture, order)

    step = order.steps.get(name="payment_capture")
    assert (step.status, step.effect_unknown) == ("retrying", effect_unknown)


def test_a_partner_that_ignores_the_order_filter_has_no_other_orders_record_adopted(
    sandbox, monkeypatch
):
    other = order_place((product_create(price_cents=1000), 1)).order
    payment_capture.apply(args=(other.pk,))
    order = order_place((product_create(price_cents=1000), 1)).order
    listing = partners.partner_list
    monkeypatch.setattr(partners, "partner_list", lambda partner, path, **_: listing(partner, path))

    found = partners.payment_capture_find(
        order_number=order.number, key_age_s=None, amount_cents=order.total_cents
    )

    assert found is None  # the other order's capture, of the same amount, is not this one's


def test_a_refund_tells_the_gateway_which_order_it_is_for(sandbox, monkeypatch):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    order_cancel(order_id=order.pk, by_staff=True)
    sent = []
    post = partners.partner_post
    monkeypatch.setattr(
        partners, "partner_post", lambda *a, **kw: sent.append(kw["payload"]) or post(*a, **kw)
    )

    payment_refund.apply(args=(order.pk,))

    (payload,) = sent
    assert payload["order"] == order.number
    assert [r["order"] for r in made(sandbox, "/payment/refunds", order)] == [order.number]


@pytest.mark.parametrize(
    ("undo", "partner", "kind"),
    [(erp_cancel, "erp", "order_cancel"), (label_void, "carrier", "label_void")],
    ids=["erp_cancel", "label_void"],
)
def test_an_undo_resent_after_its_own_key_was_forgotten_takes_already_undone_for_success(
    sandbox, settings, undo, partner, kind
):
    order = shipped_and_cancelled()
    answers_lost(sandbox, effects=600, lookups=0)
    deliver(undo, order)  # undone at the partner; the answer never came
    answers_lost(sandbox, effects=0, lookups=0)
    keys_forgotten(sandbox, settings, partner)

    deliver(undo, order)

    assert [k for k, _ in effects(sandbox, partner)].count(kind) == 1
    step = order.steps.get(name=undo.name.partition(".")[2])
    assert step.status == "succeeded"


def test_an_undo_made_before_undos_were_queued_when_made_gets_its_creation_as_its_key_age(
    sandbox,
):
    order = shipped_and_cancelled()
    refund = order.steps.filter(name="payment_refund")
    refund.update(queued_at=None, created_at=Now() - PAST)  # as the release before made it
    migration = import_module("orders.migrations.0021_step_queued_at_known")

    migration.queued_at_known(apps, None)

    assert step_key_age_s(order_id=order.pk, name="payment_refund") >= PAST.total_seconds()
    assert order.steps.get(name="payment_capture").queued_at != refund.get().queued_at


def test_every_partner_call_takes_its_key_stem_from_one_table_of_the_pipelines_steps():
    partner_steps = {spec.name for spec in ORDER_PIPELINE.all_steps if spec.partner}

    assert set(partners.KEY_STEMS) == partner_steps
    assert partners.idempotency_key("SF-1", "payment_capture") == "SF-1:payment"


def test_the_erp_stock_feed_answering_a_body_not_as_described_is_unavailable_not_a_crash(
    sandbox,
):
    answer = httpx.MockTransport(lambda request: httpx.Response(200, json=["not", "a", "feed"]))
    partners._clients[(os.getpid(), "erp")] = httpx.Client(base_url="http://erp", transport=answer)

    with pytest.raises(partners.PartnerUnavailable, match="erp stock feed unavailable"):
        partners.erp_stock_list()


def test_a_step_requeued_with_no_queued_at_takes_its_creation_not_the_time_of_the_requeue(
    sandbox,
):
    order = order_place((product_create(), 1)).order
    made_at = timezone.now() - PAST
    order.steps.filter(name="payment_capture").update(created_at=made_at)
    _, step = step_claim(subject_id=order.pk, name="payment_capture", task_id="too-slow")
    order.steps.filter(pk=step.pk).update(queued_at=None)  # a row from the release before

    step_abandon(pk=step.pk, token=step.lease_token, time_limit=1)  # its call went out

    assert order.steps.get(pk=step.pk).queued_at == made_at
    assert step_key_age_s(order_id=order.pk, name="payment_capture") >= PAST.total_seconds()
