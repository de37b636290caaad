"""Behaviour of the sandbox partners over real HTTP."""

import http.client
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.server import Sandbox, serve_in_thread

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CAPTURE = {"order": "SF-1001", "amount_cents": 4999, "currency": "EUR", "payment_token": "tok_ok"}
ERP_ORDER = {"order": "SF-1001", "lines": [{"sku": "MUG", "qty": 2}], "total_cents": 4999}
ADDRESS = {"name": "Ada Lovelace", "line1": "1 Analytical St", "city": "London"}
# What GET /control says of the webhooks before anything is set.
WEBHOOK_DEFAULTS = {
    "webhook_url": "",
    "webhook_delay_ms": [0, 0],
    "webhook_duplicate_rate": 0.0,
    "webhook_reorder_rate": 0.0,
    "webhook_bad_signature_rate": 0.0,
    "webhook_secrets": {"payment": "dev-...", "carrier": "dev-..."},
    "carrier_tracking": False,
}
# How long each partner keeps an idempotency key's answer before the key acts again.
KEY_TTL_DEFAULTS = {"key_ttl_s": dict.fromkeys(("payment", "erp", "carrier", "analytics"), 86400.0)}


@pytest.fixture
def base_url() -> Iterator[str]:
    server, url = serve_in_thread()
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as api:
        yield api


def post(api: httpx.Client, path: str, body: Any, key: str | None = "key-1") -> httpx.Response:
    """POST JSON with an Idempotency-Key (none if key is None)."""
    headers = {} if key is None else {"Idempotency-Key": key}
    return api.post(path, json=body, headers=headers)


def ledger(api: httpx.Client, partner: str) -> dict[str, Any]:
    return api.get("/ledger").json()[partner]


def kinds(api: httpx.Client, partner: str) -> list[str]:
    return [effect["kind"] for effect in ledger(api, partner)["effects"]]


def configure(api: httpx.Client, **settings: Any) -> None:
    assert api.post("/control", json=settings).status_code == 200


def label_for(api: httpx.Client, order: str = "SF-1001") -> str:
    body = {"order": order, "erp_reference": "ERP-10000001", "address": ADDRESS}
    return post(api, "/carrier/labels", body, key=f"label-{order}").json()["tracking_number"]


# --- happy paths ---------------------------------------------------------------------------


def test_healthz_answers_ok_as_json(api: httpx.Client) -> None:
    response = api.get("/healthz")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_capture_charges_the_card_and_records_one_capture_effect(api: httpx.Client) -> None:
    response = post(api, "/payment/captures", CAPTURE)

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"cap_[0-9a-f]{16}", body["capture_id"])
    assert body == {
        "capture_id": body["capture_id"],
        "status": "captured",
        "amount_cents": 4999,
        "currency": "EUR",
    }
    [effect] = ledger(api, "payment")["effects"]
    assert {k: effect[k] for k in ("kind", "key", "order")} == {
        "kind": "capture",
        "key": "key-1",
        "order": "SF-1001",
    }
    assert datetime.fromisoformat(effect["at"]).utcoffset() == UTC.utcoffset(None)


def test_refund_of_a_capture_records_a_refund_for_the_captured_order(
    api: httpx.Client,
) -> None:
    capture_id = post(api, "/payment/captures", CAPTURE).json()["capture_id"]

    response = post(
        api, "/payment/refunds", {"capture_id": capture_id, "amount_cents": 1000}, key="r-1"
    )

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"re_[0-9a-f]{16}", body["refund_id"])
    assert body == {
        "refund_id": body["refund_id"],
        "status": "refunded",
        "capture_id": capture_id,
        "amount_cents": 1000,
    }
    refund = ledger(api, "payment")["effects"][1]
    assert (refund["kind"], refund["key"], refund["order"]) == ("refund", "r-1", "SF-1001")


def test_refund_of_an_unknown_capture_is_not_found(api: httpx.Client) -> None:
    response = post(api, "/payment/refunds", {"capture_id": "cap_nope", "amount_cents": 1})

    assert response.status_code == 404
    assert response.json() == {"error": "unknown_capture"}
    assert ledger(api, "payment")["effects"] == []


def test_erp_order_sync_hands_out_sequential_references(api: httpx.Client) -> None:
    first = post(api, "/erp/orders", ERP_ORDER, key="e-1")
    second = post(api, "/erp/orders", {**ERP_ORDER, "order": "SF-1002"}, key="e-2")

    assert (first.status_code, first.json()["erp_reference"]) == (201, "ERP-10000001")
    assert (second.status_code, second.json()["erp_reference"]) == (201, "ERP-10000002")
    effects = ledger(api, "erp")["effects"]
    assert [(e["kind"], e["order"]) for e in effects] == [
        ("order_sync", "SF-1001"),
        ("order_sync", "SF-1002"),
    ]


def test_the_erp_stamps_orders_and_counts_with_its_own_clock(api: httpx.Client) -> None:
    configure(api, erp_clock_offset_s=600)
    ours = datetime.now(UTC)

    taken = post(api, "/erp/orders", ERP_ORDER, key="e-1").json()
    again = post(api, "/erp/orders", ERP_ORDER, key="e-1").json()
    counted = api.get("/erp/stock").json()["as_of"]

    acknowledged = datetime.fromisoformat(taken["acknowledged_at"])
    assert timedelta(seconds=590) < acknowledged - ours < timedelta(seconds=660)
    assert again == taken  # a retry gets the first answer, its time included
    assert datetime.fromisoformat(counted) >= acknowledged


def test_erp_cancel_cancels_a_synced_order_and_records_its_order(api: httpx.Client) -> None:
    reference = post(api, "/erp/orders", ERP_ORDER, key="e-1").json()["erp_reference"]

    response = post(api, f"/erp/orders/{reference}/cancel", None, key="c-1")

    assert response.status_code == 200
    assert response.json() == {"erp_reference": reference, "status": "cancelled"}
    cancel = ledger(api, "erp")["effects"][1]
    assert (cancel["kind"], cancel["key"], cancel["order"]) == ("order_cancel", "c-1", "SF-1001")


def stock(api: httpx.Client) -> dict[str, int]:
    return {item["sku"]: item["on_hand"] for item in api.get("/erp/stock").json()["items"]}


def test_the_warehouse_feed_counts_synced_orders_out_once_and_cancelled_ones_back(
    api: httpx.Client,
) -> None:
    assert api.post("/erp/stock", json={"levels": {"MUG": 10, "TEE": 4}}).status_code == 200
    order = {"order": "SF-1", "lines": [{"sku": "MUG", "quantity": 3}], "total_cents": 1}

    reference = post(api, "/erp/orders", order, key="e-1").json()["erp_reference"]
    post(api, "/erp/orders", order, key="e-1")  # a retried sync takes nothing more
    after_sync = stock(api)
    post(api, f"/erp/orders/{reference}/cancel", None, key="c-1")
    post(api, f"/erp/orders/{reference}/cancel", None, key="c-1")

    assert after_sync == {"MUG": 7, "TEE": 4}
    assert stock(api) == {"MUG": 10, "TEE": 4}
    assert datetime.fromisoformat(api.get("/erp/stock").json()["as_of"]).tzinfo is not None


def test_setting_warehouse_stock_refuses_negative_units(api: httpx.Client) -> None:
    response = api.post("/erp/stock", json={"levels": {"MUG": -1}})

    assert (response.status_code, response.json()["message"]) == (
        400,
        "levels must map SKUs to units >= 0",
    )


def test_erp_cancel_of_an_unknown_reference_is_not_found(api: httpx.Client) -> None:
    response = post(api, "/erp/orders/ERP-99999999/cancel", None)

    assert response.status_code == 404
    assert response.json() == {"error": "unknown_erp_order"}
    assert ledger(api, "erp")["effects"] == []


def test_carrier_label_returns_a_tracking_number_and_zpl_naming_the_order(
    api: httpx.Client,
) -> None:
    body = {"order": "SF-1001", "erp_reference": "ERP-10000001", "address": ADDRESS}

    response = post(api, "/carrier/labels", body)

    assert response.status_code == 201
    tracking = response.json()["tracking_number"]
    assert re.fullmatch(r"1Z[0-9A-F]{12}", tracking)
    assert response.json() == {
        "tracking_number": tracking,
        "label_zpl": f"^XA^FO50,50^ADN,36,20^FDSF-1001^FS^FO50,100^ADN,36,20^FD{tracking}^FS^XZ",
    }
    assert kinds(api, "carrier") == ["label"]


def test_carrier_label_without_erp_reference_is_an_invalid_request(api: httpx.Client) -> None:
    response = post(api, "/carrier/labels", {"order": "SF-1001", "address": ADDRESS})

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "message": "erp_reference must be a non-empty string",
    }
    assert kinds(api, "carrier") == []


def test_label_void_voids_an_issued_label_and_records_its_order(api: httpx.Client) -> None:
    tracking = label_for(api)

    response = post(api, f"/carrier/labels/{tracking}/void", None, key="v-1")

    assert response.status_code == 200
    assert response.json() == {"tracking_number": tracking, "status": "voided"}
    void = ledger(api, "carrier")["effects"][1]
    assert (void["kind"], void["key"], void["order"]) == ("label_void", "v-1", "SF-1001")


def test_label_void_of_an_unknown_tracking_number_is_not_found(api: httpx.Client) -> None:
    response = post(api, "/carrier/labels/1Z000000000000/void", None)

    assert response.status_code == 404
    assert response.json() == {"error": "unknown_label"}


def test_analytics_event_with_extra_fields_is_accepted(api: httpx.Client) -> None:
    body = {"event": "order_paid", "order": "SF-1001", "amount_cents": 4999}

    response = post(api, "/analytics/events", body)

    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    [effect] = ledger(api, "analytics")["effects"]
    assert (effect["kind"], effect["order"]) == ("event", "SF-1001")


# --- idempotency ---------------------------------------------------------------------------


def test_repeated_capture_with_same_key_returns_first_answer_and_counts_one_effect(
    api: httpx.Client,
) -> None:
    first = post(api, "/payment/captures", CAPTURE)
    second = post(api, "/payment/captures", CAPTURE)

    assert second.status_code == 201
    assert second.json() == first.json()
    payment = ledger(api, "payment")
    assert (payment["calls"], payment["distinct_keys"], len(payment["effects"])) == (2, 1, 1)


def test_same_key_with_a_different_body_is_rejected_as_reused(api: httpx.Client) -> None:
    post(api, "/payment/captures", CAPTURE)

    response = post(api, "/payment/captures", {**CAPTURE, "amount_cents": 5000})

    assert response.status_code == 422
    assert response.json() == {"error": "idempotency_key_reused"}
    assert kinds(api, "payment") == ["capture"]


def test_idempotency_keys_are_scoped_per_partner(api: httpx.Client) -> None:
    payment = post(api, "/payment/captures", CAPTURE, key="shared")
    erp = post(api, "/erp/orders", ERP_ORDER, key="shared")

    assert (payment.status_code, erp.status_code) == (201, 201)
    assert (kinds(api, "payment"), kinds(api, "erp")) == (["capture"], ["order_sync"])


def test_effectful_post_without_idempotency_key_is_rejected_without_effect(
    api: httpx.Client,
) -> None:
    response = post(api, "/payment/captures", CAPTURE, key=None)

    assert response.status_code == 400
    assert response.json() == {"error": "missing_idempotency_key"}
    assert ledger(api, "payment") == {"calls": 1, "distinct_keys": 0, "effects": []}


def test_malformed_json_body_is_rejected_as_invalid_json(api: httpx.Client) -> None:
    response = api.post(
        "/payment/captures", content=b"{not json", headers={"Idempotency-Key": "key-1"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_json"}


def test_invalid_capture_is_not_stored_so_a_corrected_retry_with_same_key_succeeds(
    api: httpx.Client,
) -> None:
    invalid = post(api, "/payment/captures", {**CAPTURE, "amount_cents": "lots"})
    retry = post(api, "/payment/captures", CAPTURE)

    assert invalid.status_code == 400
    assert invalid.json() == {
        "error": "invalid_request",
        "message": "amount_cents must be an integer",
    }
    assert retry.status_code == 201
    assert kinds(api, "payment") == ["capture"]


def test_declined_card_answers_402_and_replays_the_decline_without_an_effect(
    api: httpx.Client,
) -> None:
    declined = {**CAPTURE, "payment_token": "tok_decline_insufficient_funds"}

    first = post(api, "/payment/captures", declined)
    replay = post(api, "/payment/captures", declined)

    decline = {"error": "card_declined", "message": "The card was declined."}
    assert (first.status_code, first.json()) == (402, decline)
    assert (replay.status_code, replay.json()) == (402, decline)
    assert ledger(api, "payment") == {"calls": 2, "distinct_keys": 1, "effects": []}


def test_concurrent_requests_with_same_key_produce_one_effect(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow partner keeps the first request busy, so the other 19 arrive mid-capture.
    register = Sandbox._register

    def slow_register(self: Sandbox, *args: Any) -> None:
        time.sleep(0.1)
        register(self, *args)

    monkeypatch.setattr(Sandbox, "_register", slow_register)
    start = threading.Barrier(20)

    def capture(_: int) -> httpx.Response:
        start.wait()
        return post(api, "/payment/captures", CAPTURE, key="same")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(capture, range(20)))

    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["capture_id"] for response in responses}) == 1
    payment = ledger(api, "payment")
    assert (payment["calls"], payment["distinct_keys"], len(payment["effects"])) == (20, 1, 1)


# --- fault injection -----------------------------------------------------------------------


def test_failure_rate_one_answers_503_without_effect_and_a_later_retry_succeeds(
    api: httpx.Client,
) -> None:
    configure(api, failure_rate=1)

    failed = post(api, "/payment/captures", CAPTURE)
    configure(api, failure_rate=0)
    retry = post(api, "/payment/captures", CAPTURE)

    assert (failed.status_code, failed.json()) == (503, {"error": "unavailable"})
    assert retry.status_code == 201
    payment = ledger(api, "payment")
    assert (payment["calls"], payment["distinct_keys"], kinds(api, "payment")) == (
        2,
        1,
        ["capture"],
    )


def test_injected_timeout_loses_the_response_but_the_effect_happens_once(
    api: httpx.Client,
) -> None:
    configure(api, timeout_rate=1, timeout_s=0.5)

    with pytest.raises(httpx.TimeoutException):
        api.post(
            "/payment/captures", json=CAPTURE, headers={"Idempotency-Key": "lost"}, timeout=0.2
        )
    assert kinds(api, "payment") == ["capture"]

    configure(api, timeout_rate=0)
    retry = post(api, "/payment/captures", CAPTURE, key="lost")
    again = post(api, "/payment/captures", CAPTURE, key="lost")

    assert retry.status_code == 201
    assert again.json() == retry.json()
    payment = ledger(api, "payment")
    assert (payment["calls"], len(payment["effects"])) == (3, 1)


def test_an_outage_of_one_partner_answers_503_to_all_its_requests_and_counts_them(
    api: httpx.Client,
) -> None:
    configure(api, outages={"payment": {"for_s": 600}})

    capture = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")
    lookup = api.get("/payment/captures/by-key/SF-1001:payment")
    erp = post(api, "/erp/orders", ERP_ORDER)

    assert (capture.status_code, capture.json()) == (503, {"error": "unavailable"})
    assert "Retry-After" not in capture.headers
    assert lookup.status_code == 503
    assert erp.status_code == 201  # the others keep answering
    assert (kinds(api, "payment"), kinds(api, "erp")) == ([], ["order_sync"])
    [(name, outage)] = api.get("/control").json()["outages"].items()
    assert (name, outage["status"], outage["retry_after_s"]) == ("payment", 503, 0)
    assert 599 < outage["remaining_s"] <= 600
    first, second = outage["calls_at_s"]
    assert 0 <= first <= second


def test_an_outage_answers_its_status_with_its_retry_after_until_it_ends(
    api: httpx.Client,
) -> None:
    configure(api, outages={"carrier": {"for_s": 0.3, "status": 429, "retry_after_s": 7}})

    down = post(api, "/carrier/labels", {"order": "SF-1", "erp_reference": "E", "address": {}})
    while api.get("/control").json()["outages"]["carrier"]["remaining_s"]:
        time.sleep(0.05)  # until the sandbox says the outage is over
    up = label_for(api)

    assert (down.status_code, down.headers["Retry-After"]) == (429, "7")
    assert down.json() == {"error": "unavailable", "retry_after_s": 7}
    assert up.startswith("1Z")
    outage = api.get("/control").json()["outages"]["carrier"]
    assert (outage["remaining_s"], len(outage["calls_at_s"])) == (0.0, 1)


def test_an_empty_outages_script_ends_every_outage(api: httpx.Client) -> None:
    configure(api, outages={"payment": {"for_s": 600}, "erp": {"for_s": 600}})

    configure(api, outages={})

    assert post(api, "/payment/captures", CAPTURE).status_code == 201
    assert api.get("/control").json()["outages"] == {}


def test_answers_lost_drop_the_connection_after_the_effect_for_the_window(
    api: httpx.Client,
) -> None:
    configure(api, answers_lost_s=600)

    with pytest.raises(httpx.RemoteProtocolError):
        post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")
    assert kinds(api, "payment") == ["capture"]
    assert 599 < api.get("/control").json()["answers_lost_s"] <= 600

    configure(api, answers_lost_s=0)
    again = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")
    assert (again.status_code, kinds(api, "payment")) == (201, ["capture"])


def test_a_lookup_by_key_reports_what_the_call_under_the_key_got(api: httpx.Client) -> None:
    captured = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")
    declined = post(
        api, "/payment/captures", {**CAPTURE, "payment_token": "tok_decline"}, key="SF-2:payment"
    )

    found = api.get("/payment/captures/by-key/SF-1001:payment")
    refused = api.get("/payment/captures/by-key/SF-2:payment")
    nothing = api.get("/payment/captures/by-key/SF-3:payment")
    other_kind = api.get("/payment/refunds/by-key/SF-1001:payment")

    assert (found.status_code, found.json()) == (200, {"status": 201, "answer": captured.json()})
    assert (refused.status_code, refused.json()) == (
        200,
        {"status": 402, "answer": declined.json()},
    )
    assert (nothing.status_code, nothing.json()) == (404, {"error": "not_found"})
    assert (other_kind.status_code, other_kind.json()) == (404, {"error": "not_found"})
    assert ledger(api, "payment")["calls"] == 2  # look-ups are not calls


@pytest.mark.parametrize(
    ("path", "body", "lookup", "field"),
    [
        ("/payment/refunds", None, "/payment/refunds/by-key/k", "refund_id"),
        ("/erp/orders", ERP_ORDER, "/erp/orders/by-key/k", "erp_reference"),
        ("/carrier/labels", None, "/carrier/labels/by-key/k", "tracking_number"),
    ],
)
def test_refunds_erp_orders_and_labels_are_found_by_key(api, path, body, lookup, field) -> None:
    if path == "/payment/refunds":
        capture = post(api, "/payment/captures", CAPTURE).json()
        body = {"capture_id": capture["capture_id"], "amount_cents": 4999}
    if path == "/carrier/labels":
        body = {"order": "SF-1001", "erp_reference": "ERP-10000001", "address": ADDRESS}
    made = post(api, path, body, key="k")

    found = api.get(lookup)

    assert found.status_code == 200
    assert found.json()["answer"][field] == made.json()[field]


def test_a_key_past_its_lifetime_is_forgotten_so_it_acts_again_and_its_lookup_finds_nothing(
    api: httpx.Client,
) -> None:
    first = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment").json()
    label_for(api)
    configure(api, key_ttl_s={"payment": 0})

    lookup = api.get("/payment/captures/by-key/SF-1001:payment")
    again = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")
    kept = api.get("/carrier/labels/by-key/label-SF-1001")

    assert (lookup.status_code, lookup.json()) == (404, {"error": "not_found"})
    # As a gateway past its key retention does: the same key charges the card again.
    assert again.status_code == 201
    assert again.json()["capture_id"] != first["capture_id"]
    assert kinds(api, "payment") == ["capture", "capture"]
    assert kept.status_code == 200  # another partner's keys live on
    assert api.get("/control").json()["key_ttl_s"] == {
        "payment": 0.0,
        "erp": 86400.0,
        "carrier": 86400.0,
        "analytics": 86400.0,
    }


def test_captures_refunds_erp_orders_and_labels_are_found_by_order_after_their_keys_are_forgotten(
    api: httpx.Client,
) -> None:
    capture = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment").json()
    refund = post(
        api,
        "/payment/refunds",
        {"capture_id": capture["capture_id"], "amount_cents": 4999},
        key="SF-1001:refund",
    ).json()
    synced = post(api, "/erp/orders", ERP_ORDER, key="SF-1001:erp_sync").json()
    label_body = {"order": "SF-1001", "erp_reference": synced["erp_reference"], "address": ADDRESS}
    label = post(api, "/carrier/labels", label_body, key="SF-1001:label").json()
    post(api, "/carrier/labels", {**label_body, "order": "SF-2"}, key="SF-2:label")
    configure(api, key_ttl_s=dict.fromkeys(("payment", "erp", "carrier"), 0))

    captures = api.get("/payment/captures", params={"order": "SF-1001"})
    refunds = api.get("/payment/refunds", params={"order": "SF-1001"})
    erp_orders = api.get("/erp/orders", params={"order": "SF-1001"})
    labels = api.get("/carrier/labels", params={"order": "SF-1001"})
    none = api.get("/carrier/labels", params={"order": "SF-3"})

    assert captures.json() == {
        "captures": [
            {
                "capture_id": capture["capture_id"],
                "order": "SF-1001",
                "amount_cents": 4999,
                "refunded": True,
            }
        ]
    }
    assert refunds.json() == {"refunds": [{**refund, "order": "SF-1001"}]}
    assert erp_orders.json() == {"orders": [{**synced, "order": "SF-1001"}]}
    assert labels.json() == {"labels": [{**label, "order": "SF-1001"}]}
    assert (none.status_code, none.json()) == (200, {"labels": []})


def test_a_lookup_while_the_call_is_in_progress_says_so(api: httpx.Client, base_url) -> None:
    configure(api, latency_ms=[800, 800])
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=base_url, timeout=5) as other:
        slow = pool.submit(post, other, "/payment/captures", CAPTURE, "SF-1001:payment")
        while not ledger(api, "payment")["calls"]:  # received, still on its way
            time.sleep(0.01)
        during = api.get("/payment/captures/by-key/SF-1001:payment")
        assert slow.result().status_code == 201
    after = api.get("/payment/captures/by-key/SF-1001:payment")

    assert (during.status_code, during.json()) == (409, {"error": "in_progress"})
    assert after.status_code == 200


def test_lookups_lost_drop_the_connection_for_the_window(api: httpx.Client) -> None:
    post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")
    configure(api, lookups_lost_s=600)

    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/payment/captures/by-key/SF-1001:payment")
    configure(api, lookups_lost_s=0)
    assert api.get("/payment/captures/by-key/SF-1001:payment").status_code == 200


def test_latency_range_delays_partner_posts(api: httpx.Client) -> None:
    configure(api, latency_ms=[200, 200])

    started = time.monotonic()
    post(api, "/analytics/events", {"event": "viewed", "order": "SF-1001"})

    assert time.monotonic() - started >= 0.19


def test_latency_does_not_apply_to_the_control_plane(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(api, latency_ms=[1000, 1000])
    waits: list[float] = []
    monkeypatch.setattr("sandbox.server.time.sleep", waits.append)  # the server's waits

    api.get("/ledger")
    api.get("/control")
    control_waits = list(waits)
    post(api, "/analytics/events", {"event": "viewed", "order": "SF-1001"})

    assert control_waits == []
    assert waits == [1.0]


# --- control plane -------------------------------------------------------------------------


def test_ledger_lists_all_four_partners_even_before_any_call(api: httpx.Client) -> None:
    response = api.get("/ledger")

    assert response.status_code == 200
    empty = {"calls": 0, "distinct_keys": 0, "effects": []}
    assert response.json() == {"payment": empty, "erp": empty, "carrier": empty, "analytics": empty}


def test_control_reports_the_default_config(api: httpx.Client) -> None:
    response = api.get("/control")

    assert response.status_code == 200
    assert response.json() == {
        "latency_ms": [0, 0],
        "failure_rate": 0.0,
        "timeout_rate": 0.0,
        "timeout_s": 30.0,
        "failure_status": 503,
        "retry_after_s": 0,
        "erp_clock_offset_s": 0.0,
        "answers_lost_s": 0.0,
        "lookups_lost_s": 0.0,
        **WEBHOOK_DEFAULTS,
        **KEY_TTL_DEFAULTS,
        "outages": {},
    }


def test_control_changes_only_the_given_settings(api: httpx.Client) -> None:
    response = api.post("/control", json={"latency_ms": [5, 10], "failure_rate": 0.25})

    expected = {
        "latency_ms": [5, 10],
        "failure_rate": 0.25,
        "timeout_rate": 0.0,
        "timeout_s": 30.0,
        "failure_status": 503,
        "retry_after_s": 0,
        "erp_clock_offset_s": 0.0,
        "answers_lost_s": 0.0,
        "lookups_lost_s": 0.0,
        **WEBHOOK_DEFAULTS,
        **KEY_TTL_DEFAULTS,
        "outages": {},
    }
    assert (response.status_code, response.json()) == (200, expected)
    assert api.get("/control").json() == expected


@pytest.mark.parametrize(
    "change",
    [
        {"latency_ms": [300, 100]},
        {"latency_ms": [-1, 5]},
        {"latency_ms": [1, 2, 3]},
        {"latency_ms": "100-500"},
        {"failure_rate": 1.5},
        {"failure_rate": True},
        {"timeout_rate": -0.1},
        {"timeout_s": -1},
        {"timeout_s": "slow"},
        {"erp_clock_offset_s": 90000},
        {"erp_clock_offset_s": "ahead"},
        {"answers_lost_s": -5},
        {"lookups_lost_s": "a while"},
        {"speed": 11},
        {"webhook_url": "ftp://shop"},
        {"webhook_delay_ms": [5, 1]},
        {"webhook_bad_signature_rate": 2},
        {"webhook_secrets": {"erp": "x"}},
        {"carrier_tracking": "yes"},
        {"key_ttl_s": {"bank": 60}},
        {"key_ttl_s": {"carrier": -1}},
        {"key_ttl_s": 60},
        {"outages": {"bank": {"for_s": 5}}},
        {"outages": {"payment": {"status": 503}}},
        {"outages": {"payment": {"for_s": -1}}},
        {"outages": {"payment": {"for_s": 5, "status": 404}}},
        {"outages": {"payment": {"for_s": 5, "retry_after_s": 1.5}}},
        {"outages": {"payment": {"for_s": 5, "until": 9}}},
        {"outages": ["payment"]},
    ],
    ids=str,
)
def test_control_rejects_bad_values_and_keeps_the_config(
    api: httpx.Client, change: dict[str, Any]
) -> None:
    before = api.get("/control").json()

    response = api.post("/control", json=change)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert api.get("/control").json() == before


def test_control_rejects_a_body_that_is_not_a_json_object(api: httpx.Client) -> None:
    response = api.post("/control", json=[1, 2])

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_json", "message": "body must be a JSON object"}


def test_reset_clears_ledger_keys_and_config(api: httpx.Client) -> None:
    post(api, "/payment/captures", CAPTURE)
    post(api, "/erp/orders", ERP_ORDER)
    configure(api, failure_rate=0.5)

    response = api.post("/reset")

    assert (response.status_code, response.json()) == (200, {"reset": True})
    assert api.get("/control").json()["failure_rate"] == 0.0
    assert ledger(api, "payment") == {"calls": 0, "distinct_keys": 0, "effects": []}
    # The key is free again and ERP numbering starts over.
    assert post(api, "/payment/captures", {**CAPTURE, "amount_cents": 1}).status_code == 201
    assert post(api, "/erp/orders", ERP_ORDER).json()["erp_reference"] == "ERP-10000001"


def test_env_variables_set_the_defaults_that_reset_restores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_LATENCY_MS", "100-500")
    monkeypatch.setenv("SANDBOX_FAILURE_RATE", "0.1")
    monkeypatch.setenv("SANDBOX_TIMEOUT_RATE", "0.05")
    monkeypatch.setenv("SANDBOX_TIMEOUT_S", "2.5")
    monkeypatch.setenv("SANDBOX_ERP_CLOCK_OFFSET_S", "-30")
    server, url = serve_in_thread()
    try:
        with httpx.Client(base_url=url) as api:
            configure(api, latency_ms=[0, 0], failure_rate=0)
            api.post("/reset")
            config = api.get("/control").json()
    finally:
        server.shutdown()
        server.server_close()

    assert config == {
        "latency_ms": [100, 500],
        "failure_rate": 0.1,
        "timeout_rate": 0.05,
        "timeout_s": 2.5,
        "failure_status": 503,
        "retry_after_s": 0,
        "erp_clock_offset_s": -30.0,
        "answers_lost_s": 0.0,
        "lookups_lost_s": 0.0,
        **WEBHOOK_DEFAULTS,
        **KEY_TTL_DEFAULTS,
        "outages": {},
    }


def test_unknown_path_or_method_is_not_found(api: httpx.Client) -> None:
    assert (api.get("/nope").status_code, api.get("/nope").json()) == (
        404,
        {"error": "not_found"},
    )
    assert api.get("/analytics/events").status_code == 404  # a POST-only path


def test_connections_are_kept_alive_between_requests(base_url: str) -> None:
    connection = http.client.HTTPConnection(base_url.removeprefix("http://"))
    try:
        for _ in range(2):
            # A server that closed after the first answer makes the second request fail.
            connection.request("GET", "/healthz")
            assert connection.getresponse().read() == b'{"status": "ok"}'
    finally:
        connection.close()


# --- management command --------------------------------------------------------------------


def test_run_sandbox_command_serves_until_sigterm_then_exits_cleanly() -> None:
    script = (
        "import django; from django.conf import settings; "
        "settings.configure(INSTALLED_APPS=['sandbox']); django.setup(); "
        "from django.core.management import call_command; "
        "call_command('run_sandbox', port=0)"
    )
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", script],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline().strip()
        assert re.fullmatch(r"sandbox partners on http://127\.0\.0\.1:\d+", banner)
        url = banner.removeprefix("sandbox partners on ")
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_the_capture_list_shows_every_capture_and_whether_it_was_refunded(api):
    kept = api.post(
        "/payment/captures",
        json={"order": "SF-1", "amount_cents": 100, "currency": "EUR", "payment_token": "tok_visa"},
        headers={"Idempotency-Key": "SF-1:payment"},
    ).json()["capture_id"]
    refunded = api.post(
        "/payment/captures",
        json={"order": "SF-2", "amount_cents": 200, "currency": "EUR", "payment_token": "tok_visa"},
        headers={"Idempotency-Key": "SF-2:payment"},
    ).json()["capture_id"]
    api.post(
        "/payment/refunds",
        json={"capture_id": refunded, "amount_cents": 200},
        headers={"Idempotency-Key": "SF-2:refund"},
    )

    response = api.get("/payment/captures")

    assert response.status_code == 200
    assert response.json() == {
        "captures": [
            {"capture_id": kept, "order": "SF-1", "amount_cents": 100, "refunded": False},
            {"capture_id": refunded, "order": "SF-2", "amount_cents": 200, "refunded": True},
        ]
    }


def test_an_erp_order_cancelled_and_a_label_voided_are_listed_as_such(api):
    synced = post(api, "/erp/orders", ERP_ORDER, key="SF-1001:erp_sync").json()
    label_body = {"order": "SF-1001", "erp_reference": synced["erp_reference"], "address": ADDRESS}
    label = post(api, "/carrier/labels", label_body, key="SF-1001:label").json()
    post(api, f"/erp/orders/{synced['erp_reference']}/cancel", {}, key="SF-1001:erp_cancel")
    post(api, f"/carrier/labels/{label['tracking_number']}/void", {}, key="SF-1001:label_void")

    erp_orders = api.get("/erp/orders", params={"order": "SF-1001"}).json()
    labels = api.get("/carrier/labels", params={"order": "SF-1001"}).json()

    assert erp_orders == {"orders": [{**synced, "order": "SF-1001", "status": "cancelled"}]}
    assert labels == {"labels": [{**label, "order": "SF-1001", "status": "voided"}]}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("order=", "query parameter order must not be blank"),
        ("order", "query parameter order must not be blank"),
        ("ordr=SF-1001", "unknown query parameter: ordr"),
        ("order=SF-1001&order=SF-2", "query parameter order given more than once"),
    ],
    ids=["blank", "no value", "misspelt", "twice"],
)
@pytest.mark.parametrize(
    "path", ["/payment/captures", "/payment/refunds", "/erp/orders", "/carrier/labels"]
)
def test_a_listing_by_order_with_a_blank_or_unknown_parameter_is_refused_not_listing_everything(
    api: httpx.Client, path: str, query: str, message: str
) -> None:
    post(api, "/payment/captures", CAPTURE, key="SF-1001:payment")

    response = api.get(f"{path}?{query}")

    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_request", "message": message},
    )


def test_a_refund_is_listed_under_the_order_its_payload_names(api: httpx.Client) -> None:
    capture = post(api, "/payment/captures", CAPTURE, key="SF-1001:payment").json()
    body = {"capture_id": capture["capture_id"], "amount_cents": 4999, "order": "SF-1001"}
    refund = post(api, "/payment/refunds", body, key="SF-1001:refund").json()
    bad = post(api, "/payment/refunds", {**body, "order": 7}, key="SF-1001:refund-2")

    listed = api.get("/payment/refunds", params={"order": "SF-1001"}).json()

    assert listed == {"refunds": [{**refund, "order": "SF-1001"}]}
    assert bad.status_code == 400 and "order" in bad.json()["message"]


@pytest.mark.parametrize(
    ("undone", "error"),
    [("cancel", "already_cancelled"), ("void", "already_voided")],
)
def test_a_second_cancel_or_void_under_a_forgotten_key_is_answered_already_done(
    api: httpx.Client, undone: str, error: str
) -> None:
    synced = post(api, "/erp/orders", ERP_ORDER, key="SF-1001:erp_sync").json()
    label_body = {"order": "SF-1001", "erp_reference": synced["erp_reference"], "address": ADDRESS}
    label = post(api, "/carrier/labels", label_body, key="SF-1001:label").json()
    path, partner = {
        "cancel": (f"/erp/orders/{synced['erp_reference']}/cancel", "erp"),
        "void": (f"/carrier/labels/{label['tracking_number']}/void", "carrier"),
    }[undone]
    first = post(api, path, {}, key=f"SF-1001:{undone}")
    configure(api, key_ttl_s={partner: 0})

    again = post(api, path, {}, key=f"SF-1001:{undone}")

    assert first.status_code == 200
    assert (again.status_code, again.json()["error"]) == (422, error)
    assert kinds(api, partner).count({"cancel": "order_cancel", "void": "label_void"}[undone]) == 1


def test_setting_one_partners_key_lifetime_keeps_the_others(api: httpx.Client) -> None:
    configure(api, key_ttl_s={"payment": 5})

    configure(api, key_ttl_s={"erp": 0})

    assert api.get("/control").json()["key_ttl_s"] == {
        "payment": 5.0,
        "erp": 0.0,
        "carrier": 86400.0,
        "analytics": 86400.0,
    }
