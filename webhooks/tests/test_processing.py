"""Processing the inbox: one order at a time, in event-time order, each event once."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from harness.processes import wait_for
from orders.models import Discrepancy, Dispute, FollowUp, Order
from orders.services.orders import order_mark_paid
from tests.factories import order_place, product_create, run_pipeline
from webhooks.models import InboxEvent
from webhooks.services import events_sweep, order_events_process
from webhooks.tests.conftest import an_order, at, receive

pytestmark = pytest.mark.django_db(transaction=True)


def process(order: Order | str):
    number = order if isinstance(order, str) else order.number
    return order_events_process(order_number=number)


def process_until_tried(order: Order | str, *, times: int):
    """Process the order until its events have been tried `times` times: a retry falls due
    on the database's clock, a second or two later."""
    wait_for(
        lambda: process(order) is not None or InboxEvent.objects.filter(attempts=times).exists(),
        timeout=30,
        what=f"an event tried {times} times",
    )


def test_a_delivered_that_arrives_before_in_transit_leaves_the_order_delivered(shop_webhooks):
    order = an_order()
    receive(shop_webhooks, "carrier", "shipment.delivered", order.number, 30)
    process(order)
    receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, 10)
    process(order)

    order.refresh_from_db()
    assert (order.delivery_state, order.delivered_at) == ("delivered", parse_datetime(at(30)))
    outcomes = list(InboxEvent.objects.order_by("occurred_at").values_list("type", "outcome"))
    assert outcomes == [
        ("shipment.in_transit", "no change: the order is delivered since a later event"),
        ("shipment.delivered", "delivery state delivered"),
    ]


def test_an_orders_waiting_events_are_applied_in_event_time_order(shop_webhooks):
    order = an_order()
    for kind, minute in (
        ("shipment.delivered", 40),
        ("label.printed", 1),
        ("shipment.out_for_delivery", 30),
        ("shipment.in_transit", 10),
    ):
        receive(shop_webhooks, "carrier", kind, order.number, minute)

    process(order)

    applied = list(InboxEvent.objects.order_by("occurred_at").values_list("outcome", flat=True))
    assert applied == [
        "delivery state label_printed",
        "delivery state in_transit",
        "delivery state out_for_delivery",
        "delivery state delivered",
    ]
    order.refresh_from_db()
    assert order.delivery_state == "delivered"


def test_a_returned_parcel_after_delivery_is_returned_and_nothing_moves_it_after(shop_webhooks):
    order = an_order()
    receive(shop_webhooks, "carrier", "shipment.delivered", order.number, 10)
    receive(shop_webhooks, "carrier", "shipment.returned", order.number, 20)
    receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, 30)
    process(order)

    order.refresh_from_db()
    assert order.delivery_state == "returned"


def test_processing_twice_changes_nothing_the_second_time(shop_webhooks):
    order = an_order()
    receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, 10)
    process(order)
    first = InboxEvent.objects.get()

    assert process(order) is None
    again = InboxEvent.objects.get()
    assert (again.attempts, again.processed_at, again.status) == (
        1,
        first.processed_at,
        "processed",
    )


def test_an_event_for_an_order_not_yet_committed_is_retried_and_applied_once_it_is(
    shop_webhooks,
):
    product = product_create()
    created, commit = threading.Event(), threading.Event()
    number = {}

    def checkout_in_a_long_transaction():
        with transaction.atomic():
            number["it"] = order_place((product, 1)).order.number
            created.set()
            commit.wait(30)
        connection.close()

    checkout = threading.Thread(target=checkout_in_a_long_transaction)
    checkout.start()
    assert created.wait(30)
    receive(shop_webhooks, "carrier", "shipment.delivered", number["it"], 5)

    retry_in = process(number["it"])
    waiting = InboxEvent.objects.get()
    commit.set()
    checkout.join(30)
    process_until_tried(number["it"], times=2)

    assert retry_in == pytest.approx(1, abs=0.5)
    assert (waiting.status, waiting.attempts) == ("received", 1)
    assert waiting.last_error.startswith(f"No order {number['it']} (yet")
    event = InboxEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 2)
    assert Order.objects.get(number=number["it"]).delivery_state == "delivered"


def test_an_event_whose_order_never_comes_fails_after_the_wait(shop_webhooks, settings):
    settings.WEBHOOK_ORDER_WAIT_S = 10
    receive(shop_webhooks, "carrier", "shipment.delivered", "SF-NEVER", 5)
    process("SF-NEVER")

    with time_machine.travel(timezone.now() + timedelta(seconds=11)):  # the wait is over
        process_until_tried("SF-NEVER", times=2)

    event = InboxEvent.objects.get()
    assert (event.status, event.attempts, event.next_attempt_at) == ("failed", 2, None)


def test_a_capture_failed_after_we_recorded_success_is_a_discrepancy_not_an_overwrite(
    shop_webhooks,
):
    order = an_order()
    order_mark_paid(order_id=order.pk, capture_id="cap_123")
    receive(
        shop_webhooks, "payment", "capture.failed", order.number, 5,
        capture_id="cap_123", reason="insufficient_funds",
    )  # fmt: skip
    process(order)
    receive(shop_webhooks, "payment", "capture.failed", order.number, 6, capture_id="cap_123")
    process(order)

    order.refresh_from_db()
    assert (order.status, order.capture_id) == ("paid", "cap_123")
    discrepancy = Discrepancy.objects.get()  # once, though the gateway said it twice
    assert (discrepancy.kind, discrepancy.order_number, discrepancy.capture_id) == (
        "capture_failed_late",
        order.number,
        "cap_123",
    )
    assert "failed (insufficient_funds) after the order was recorded as paid" in (
        discrepancy.details
    )


def test_a_capture_failed_before_we_recorded_anything_leaves_it_to_the_payment_step(
    shop_webhooks,
):
    order = an_order()
    receive(shop_webhooks, "payment", "capture.failed", order.number, 5, capture_id="cap_9")
    process(order)

    order.refresh_from_db()
    assert order.status == "placed"
    assert not Discrepancy.objects.exists()
    assert InboxEvent.objects.get().outcome == (
        "no change: the order is placed; its payment step decides"
    )


def test_a_refund_of_an_order_we_did_not_cancel_is_a_discrepancy(shop_webhooks):
    order = an_order()
    order_mark_paid(order_id=order.pk, capture_id="cap_7")
    receive(
        shop_webhooks, "payment", "refund.completed", order.number, 5,
        capture_id="cap_7", amount_cents=1000,
    )  # fmt: skip
    process(order)

    assert Discrepancy.objects.get().kind == "refund_unrequested"


def test_a_dispute_is_listed_open_and_its_order_flagged_until_it_closes(shop_webhooks, client):
    order, other = an_order(), an_order()
    receive(
        shop_webhooks, "payment", "dispute.opened", order.number, 5,
        dispute_id="dp_1", reason="fraudulent", amount_cents=1000,
    )  # fmt: skip
    process(order)
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))

    flagged = client.get("/admin/orders/order/?disputed=yes")
    listed = client.get("/admin/orders/dispute/?status__exact=open")

    assert [o.number for o in flagged.context["cl"].result_list] == [order.number]
    assert other.number not in flagged.content.decode()
    assert [d.dispute_id for d in listed.context["cl"].result_list] == ["dp_1"]
    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.reason, dispute.amount_cents) == ("open", "fraudulent", 1000)

    receive(
        shop_webhooks, "payment", "dispute.closed", order.number, 9,
        dispute_id="dp_1", outcome="won",
    )  # fmt: skip
    process(order)
    assert client.get("/admin/orders/order/?disputed=yes").context["cl"].result_count == 0
    dispute.refresh_from_db()
    assert (dispute.status, dispute.outcome) == ("closed", "won")


def test_a_dispute_closed_before_its_opening_arrives_stays_closed(shop_webhooks):
    order = an_order()
    receive(shop_webhooks, "payment", "dispute.closed", order.number, 9, dispute_id="dp_2")
    process(order)
    receive(shop_webhooks, "payment", "dispute.opened", order.number, 5, dispute_id="dp_2")
    process(order)

    assert Dispute.objects.get().status == "closed"


def test_an_event_whose_processing_fails_is_retried_then_failed_and_the_others_go_on(
    shop_webhooks, settings, monkeypatch
):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    order = an_order()
    receive(shop_webhooks, "payment", "dispute.opened", order.number, 5, dispute_id="dp_3")
    receive(shop_webhooks, "carrier", "shipment.delivered", order.number, 6)

    def broken(**kwargs):
        raise RuntimeError("the dispute table is broken")

    monkeypatch.setattr("webhooks.events.order_dispute_record", broken)
    process(order)
    first = InboxEvent.objects.get(type="dispute.opened")
    process_until_tried(order, times=2)

    failed = InboxEvent.objects.get(type="dispute.opened")
    assert (first.status, first.attempts) == ("received", 1)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert failed.last_error == "RuntimeError: the dispute table is broken"
    assert InboxEvent.objects.get(type="shipment.delivered").status == "processed"
    order.refresh_from_db()
    assert order.delivery_state == "delivered"


def test_the_sweep_publishes_orders_whose_events_were_never_run(shop_webhooks):
    """A lost message or a worker killed mid-transaction leaves the events received."""
    order = an_order()
    receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, 5)

    now_swept = events_sweep()
    later = events_sweep(now=timezone.now() + timedelta(seconds=31))

    assert (now_swept, later) == ([], [order.number])


def test_a_delivery_moves_the_review_request_to_7_days_after_it(shop_webhooks, sandbox):
    order = order_place((product_create(), 1)).order
    run_pipeline(order)  # completed: the review waits for a delivery, 14 days at most
    review = FollowUp.objects.get(order=order, kind="review_request")
    order.refresh_from_db()
    assert review.due_at == order.updated_at + timedelta(days=14)

    receive(shop_webhooks, "carrier", "shipment.delivered", order.number, 30)
    process(order)

    review.refresh_from_db()
    assert review.due_at == parse_datetime(at(30)) + timedelta(days=7)


def test_the_order_page_and_the_api_show_what_the_carrier_last_said(shop_webhooks, client):
    order = an_order()
    before = client.get(f"/api/v1/orders/{order.token}").json()["delivery"]
    receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, 10)
    process(order)
    shipped = client.get(f"/orders/{order.token}/").content.decode()
    receive(shop_webhooks, "carrier", "shipment.delivered", order.number, 50)
    process(order)

    page = client.get(f"/orders/{order.token}/").content.decode()
    api = client.get(f"/api/v1/orders/{order.token}").json()

    assert before == {
        "state": None,
        "name": "not shipped yet",
        "updated_at": None,
        "delivered_at": None,
    }
    assert 'class="status delivery-in_transit">shipped</span>' in shipped
    assert 'class="status delivery-delivered">delivered</span>' in page
    assert (api["status"], api["delivery"]) == (
        "placed",
        {"state": "delivered", "name": "delivered", "updated_at": at(50), "delivered_at": at(50)},
    )


def test_the_sweep_publishes_each_order_once_however_many_of_its_events_wait(shop_webhooks):
    order = an_order()
    for minute in range(3):
        receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, minute)

    assert events_sweep(now=timezone.now() + timedelta(seconds=31)) == [order.number]
