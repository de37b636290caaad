"""Cancellation as a business rule (issue 15, finding 1): the customer cancels with the
cancel key from the confirmation email until fulfilment begins; staff cancel later,
refunding without putting units back on sale; a recorded return restocks them once."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core import mail

from orders.models import Order, Step
from orders.selectors import order_cancel_key
from orders.services.orders import order_cancel
from orders.tasks import payment_capture, payment_refund
from tests.factories import order_place, product_create, run_pipeline

pytestmark = pytest.mark.django_db

COMPENSATIONS = ["payment_refund", "erp_cancel", "label_void", "cancellation_email_send"]


def cancel_post(client, order: Order, body: dict | None = None, **kwargs):
    if body is None:
        body = {"cancel_key": order_cancel_key(order=order)}
    return client.post(
        f"/api/v1/orders/{order.token}/cancel",
        data=json.dumps(body),
        content_type=kwargs.pop("content_type", "application/json"),
        **kwargs,
    )


def staff_with(*codenames: str) -> User:
    user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_a_token_holder_cannot_cancel_a_completed_labelled_order(
    client, sandbox, django_capture_on_commit_callbacks
):
    product = product_create(stock=10)
    order = order_place((product, 10)).order
    run_pipeline(order)
    order.refresh_from_db()
    assert (order.status, hasattr(order, "shipment")) == ("completed", True)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = cancel_post(client, order)

    assert response.status_code == 409
    assert response.json() == {
        "errors": {
            "status": [
                "The order has been sent to the warehouse and can no longer be cancelled; "
                "contact us to return it."
            ]
        }
    }
    assert queued == []
    assert not order.steps.filter(name__in=COMPENSATIONS).exists()
    product.refresh_from_db()
    order.refresh_from_db()
    assert (product.stock, order.status, order.stock_state) == (0, "completed", "committed")


def test_a_token_holder_cannot_cancel_once_the_erp_sync_has_had_an_attempt(client, sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    Step.objects.filter(order=order, name="erp_sync").update(status="retrying", attempts=1)

    response = cancel_post(client, order)

    assert response.status_code == 409
    assert Order.objects.get(pk=order.pk).status == "paid"


def test_the_order_token_alone_reads_but_does_not_cancel(client, sandbox):
    order = order_place((product_create(), 1)).order

    without_key = cancel_post(client, order, {"reason": "not mine"})
    wrong_key = cancel_post(client, order, {"cancel_key": order.token})

    expected = {
        "errors": {
            "cancel_key": ["The cancel key from the order's confirmation email is required."]
        }
    }
    assert (without_key.status_code, without_key.json()) == (403, expected)
    assert (wrong_key.status_code, wrong_key.json()) == (403, expected)
    assert Order.objects.get(pk=order.pk).status == "placed"


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/octet-stream", b""),  # what a body-less fetch or form arrives as
        ("text/plain", "{cancel_key}"),
        ("application/x-www-form-urlencoded", "cancel_key={cancel_key}"),
        ("multipart/form-data; boundary=x", "{cancel_key}"),
    ],
)
def test_a_body_less_or_text_plain_cancel_post_is_refused(client, sandbox, content_type, data):
    order = order_place((product_create(), 1)).order
    key = order_cancel_key(order=order)
    if isinstance(data, str):
        data = data.format(cancel_key=json.dumps({"cancel_key": key}) if "=" not in data else key)

    response = client.post(
        f"/api/v1/orders/{order.token}/cancel", data=data, content_type=content_type
    )

    assert response.status_code == 415
    assert response.json() == {
        "errors": {"body": ["Send a JSON object with Content-Type: application/json."]}
    }
    assert Order.objects.get(pk=order.pk).status == "placed"


def test_the_confirmation_email_alone_carries_the_cancel_key(client, sandbox):
    order = order_place((product_create(), 1)).order
    key = order_cancel_key(order=order)

    run_pipeline(order)

    (confirmation,) = [m for m in mail.outbox if "thank you" in m.body]
    assert f'{{"cancel_key": "{key}"}}' in confirmation.body
    page = client.get(f"/orders/{order.token}/").content.decode()
    api = client.get(f"/api/v1/orders/{order.token}").content.decode()
    assert key not in page and key not in api


def test_a_customer_cancel_before_fulfilment_still_works(client, sandbox):
    product = product_create(stock=5)
    order = order_place((product, 2)).order
    payment_capture.apply(args=(order.pk,))

    response = cancel_post(
        client, order, {"cancel_key": order_cancel_key(order=order), "reason": "changed my mind"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert [s["status"] for s in response.json()["steps"] if s["step"] == "erp_sync"] == [
        "cancelled"
    ]
    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.cancel_reason, order.stock_state, product.stock) == (
        "changed my mind",
        "released",
        5,
    )


@pytest.fixture
def shipped(sandbox):
    """An order of 3 of 10 units through the whole pipeline: completed, label bought."""
    product = product_create(stock=10)
    order = order_place((product, 3)).order
    run_pipeline(order)
    return order, product


def order_action(client, action: str, order: Order) -> str:
    """Run an Admin › Orders action on the order as staff who may change orders."""
    if "_auth_user_id" not in client.session:
        client.force_login(staff_with("view_order", "change_order"))
    response = client.post(
        "/admin/orders/order/", {"action": action, "_selected_action": [order.pk]}, follow=True
    )
    return response.content.decode()


def test_staff_late_cancel_refunds_without_restocking(client, sandbox, shipped):
    order, product = shipped

    page = order_action(client, "cancel_orders", order)
    payment_refund.apply(args=(order.pk,))

    assert "Cancelled 1 orders." in page
    order.refresh_from_db()
    product.refresh_from_db()
    assert (order.status, order.stock_state, product.stock) == ("cancelled", "committed", 7)
    refunds = [
        e for e in sandbox.get("/ledger").json()["payment"]["effects"] if e["kind"] == "refund"
    ]
    assert [e["order"] for e in refunds] == [order.number]


def test_recording_a_return_restocks_once(client, shipped):
    order, product = shipped
    order_cancel(order_id=order.pk, reason="returned", by_staff=True)

    first = order_action(client, "receive_returns", order)
    second = order_action(client, "receive_returns", order)

    assert "Restocked 1 orders." in first
    assert "Restocked 0 orders." in second
    product.refresh_from_db()
    order.refresh_from_db()
    assert (product.stock, order.stock_state) == (10, "released")


def test_a_return_of_an_order_not_cancelled_is_refused(client, shipped):
    order, product = shipped

    page = order_action(client, "receive_returns", order)

    assert (
        f"Not restocked: {order.number}: Only a cancelled order&#x27;s goods can be received back."
        in page
    )
    product.refresh_from_db()
    assert product.stock == 7
