"""POST /webhooks/<partner> through the real HTTP endpoint, the sandbox sending: verify
first, store once, answer at once; whatever is refused stores nothing."""

import json

import pytest
from django.db import OperationalError

from webhooks.models import InboxEvent
from webhooks.tests.conftest import carrier_event, send

pytestmark = pytest.mark.django_db(transaction=True)
REFUSED = {"errors": {"signature": ["Not accepted."]}}


def test_a_signed_carrier_event_is_stored_and_answered_202_at_once(shop_webhooks):
    status, answer = send(
        shop_webhooks,
        partner="carrier",
        event=carrier_event("SF-NOSUCH1", "shipment.in_transit", id="evt_1"),
    )

    assert (status, answer) == (202, {"id": "evt_1", "status": "accepted"})
    event = InboxEvent.objects.get()
    assert (event.partner, event.event_id, event.type, event.order_number, event.status) == (
        "carrier",
        "evt_1",
        "shipment.in_transit",
        "SF-NOSUCH1",
        "received",
    )
    assert json.loads(event.body)["data"] == {"order": "SF-NOSUCH1", "tracking_number": "1ZTEST"}


def test_a_repeated_delivery_answers_200_and_stores_nothing_new(shop_webhooks):
    event = carrier_event("SF-NOSUCH1", "shipment.delivered", id="evt_twice")

    first = send(shop_webhooks, partner="carrier", event=event)
    again = send(shop_webhooks, partner="carrier", event=event)

    assert first[0] == 202
    assert again == (200, {"id": "evt_twice", "status": "duplicate"})
    assert InboxEvent.objects.count() == 1


def test_the_same_event_id_from_another_partner_is_another_event(shop_webhooks):
    send(shop_webhooks, partner="carrier", event=carrier_event("SF-A", "label.printed", id="e1"))
    status, _ = send(
        shop_webhooks,
        partner="payment",
        event={"type": "capture.succeeded", "order": "SF-A", "id": "e1"},
    )

    assert status == 202
    assert InboxEvent.objects.count() == 2


@pytest.mark.parametrize(
    "spec",
    [
        {"secret": "someone-elses-secret"},
        {"secret": "dev-webhook-secret-payment"},  # the other partner's secret
        {"timestamp_offset_s": -301},  # outside the replay window
        {"timestamp_offset_s": 301},
        {"omit": ["signature"]},
        {"omit": ["timestamp"]},
        {"omit": ["signature", "timestamp"]},
    ],
    ids=[
        "wrong_secret",
        "other_partners_secret",
        "stale",
        "from_the_future",
        "no_signature",
        "no_timestamp",
        "no_headers",
    ],
)
def test_a_forged_stale_or_unsigned_event_is_refused_401_without_detail(shop_webhooks, spec):
    status, answer = send(
        shop_webhooks, partner="carrier", event=carrier_event("SF-A", "label.printed"), **spec
    )

    assert (status, answer) == (401, REFUSED)
    assert InboxEvent.objects.count() == 0


def test_a_replayed_request_outside_the_window_is_refused_even_with_a_fresh_id(shop_webhooks):
    """The signature covers the timestamp: an old signed request cannot be made current."""
    status, _ = send(
        shop_webhooks,
        partner="payment",
        event={"type": "dispute.opened", "order": "SF-A", "data": {"dispute_id": "dp_1"}},
        timestamp_offset_s=-3600,
    )

    assert status == 401
    assert InboxEvent.objects.count() == 0


def test_the_previous_secret_is_accepted_while_it_is_rotated_and_refused_after(
    shop_webhooks, settings
):
    settings.WEBHOOK_SECRETS = {**settings.WEBHOOK_SECRETS, "carrier": ["new-secret", "old-one"]}

    def signed_with(secret):
        event = carrier_event("SF-A", "label.printed")
        return send(shop_webhooks, partner="carrier", event=event, secret=secret)

    with_new, with_old = signed_with("new-secret"), signed_with("old-one")
    settings.WEBHOOK_SECRETS = {**settings.WEBHOOK_SECRETS, "carrier": ["new-secret"]}
    after = signed_with("old-one")

    assert (with_new[0], with_old[0], after) == (202, 202, (401, REFUSED))
    assert InboxEvent.objects.count() == 2


def test_a_partner_without_a_secret_accepts_nothing(shop_webhooks, settings):
    settings.WEBHOOK_SECRETS = {**settings.WEBHOOK_SECRETS, "carrier": []}

    status, answer = send(
        shop_webhooks, partner="carrier", event=carrier_event("SF-A", "label.printed"), secret=""
    )

    assert (status, answer) == (401, REFUSED)


@pytest.mark.parametrize(
    ("spec", "status", "errors"),
    [
        ({"body": "{not json"}, 400, "body"),
        ({"body": "[1, 2]"}, 400, "body"),
        (
            {"body": '{"id": "e", "type": "label.printed", "occurred_at": "2026-12-01T10:00:00Z"}'},
            400,
            "data.order",
        ),
        (
            {"body": '{"id": "e", "type": "label.printed", "data": {"order": "SF-A"}}'},
            400,
            "occurred_at",
        ),
        (
            {
                "body": '{"type": "label.printed", "occurred_at": "2026-12-01T10:00:00Z", '
                '"data": {"order": "SF-A"}}'
            },
            400,
            "id",
        ),
        (
            {
                "body": '{"id": "e", "type": "label.printed", '
                '"occurred_at": "2026-12-01T10:00:00", '
                '"data": {"order": "SF-A"}}'
            },
            400,
            "occurred_at",
        ),
        (
            {"body": '{"id": "e\\u0000", "type": "x", "occurred_at": "2026-12-01T10:00:00Z"}'},
            400,
            "body",
        ),
        ({"body": "\xff\xfe"}, 400, "body"),
        ({"content_type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
        ({"content_type": "text/plain"}, 415, "Content-Type"),
        ({"pad_to_bytes": 65537}, 413, "body"),
    ],
    ids=[
        "malformed_json",
        "not_an_object",
        "no_order",
        "no_event_time",
        "no_id",
        "event_time_without_offset",
        "nul_character",
        "not_utf8",
        "form_content_type",
        "text_content_type",
        "oversized",
    ],
)
def test_a_signed_but_bad_request_is_refused_4xx_with_the_field_and_nothing_stored(
    shop_webhooks, spec, status, errors
):
    spec.setdefault("event", carrier_event("SF-A", "label.printed"))

    answered, answer = send(shop_webhooks, partner="carrier", **spec)

    assert answered == status
    assert list(answer["errors"]) == [errors]
    assert InboxEvent.objects.count() == 0


def test_an_oversized_body_is_refused_before_its_signature_is_checked(shop_webhooks):
    status, answer = send(
        shop_webhooks,
        partner="carrier",
        event=carrier_event("SF-A", "label.printed"),
        secret="anything",
        pad_to_bytes=1_000_000,
    )

    assert (status, answer) == (413, {"errors": {"body": ["At most 65536 bytes."]}})
    assert InboxEvent.objects.count() == 0


def test_an_unknown_type_is_stored_and_marked_ignored(shop_webhooks):
    status, _ = send(
        shop_webhooks,
        partner="payment",
        event={"type": "payout.paid", "order": "", "data": {"payout": "po_1"}, "id": "evt_po"},
    )

    event = InboxEvent.objects.get()
    assert status == 202
    assert (event.type, event.status, event.outcome) == (
        "payout.paid",
        "ignored",
        "a type we do not act on: stored only",
    )


def test_a_get_or_an_unknown_partner_is_not_a_webhook(client):
    assert client.get("/webhooks/carrier").status_code == 405
    assert (
        client.post("/webhooks/erp", data="{}", content_type="application/json").status_code == 404
    )


def test_a_store_that_fails_answers_503_to_deliver_again_never_500(shop_webhooks, monkeypatch):
    def database_down(**kwargs):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr("webhooks.views.inbox_event_store", database_down)

    status, answer = send(
        shop_webhooks, partner="carrier", event=carrier_event("SF-A", "label.printed")
    )

    assert (status, answer) == (503, {"errors": {"body": ["Not stored; deliver it again later."]}})
