"""Every admin action and custom view checks a model permission (issue 15, finding 5):
tried with a staff user who may only view and with one who has no permission at all."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User

from orders.models import Order, Step
from shop.models import CatalogJob, RowRejection, Subscription
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def staff(client, *codenames: str) -> User:
    user = User.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def offered_actions(client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is offered
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def test_a_view_only_staff_user_cannot_cancel_an_order_from_the_admin(client):
    order = order_place((product_create(stock=5), 2)).order
    staff(client, "view_order")

    offered = offered_actions(client, "/admin/orders/order/")
    client.post("/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [order.pk]})

    assert offered == {"export_orders"}
    order.refresh_from_db()
    assert (order.status, order.stock_state) == ("placed", "reserved")
    assert not order.steps.filter(name="payment_refund").exists()


def test_a_staff_user_without_permissions_cannot_reach_the_order_actions(client):
    order = order_place((product_create(stock=5), 2)).order
    staff(client)

    response = client.post(
        "/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [order.pk]}
    )

    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).status == "placed"


def test_a_view_only_staff_user_cannot_retry_a_dead_letter(client):
    order = order_place((product_create(), 1)).order
    step = order.steps.get(name="payment_capture")
    Step.objects.filter(pk=step.pk).update(status="failed", attempts=6, last_error="boom")
    staff(client, "view_deadletter")

    offered = offered_actions(client, "/admin/orders/deadletter/")
    client.post("/admin/orders/deadletter/", {"action": "retry", "_selected_action": [step.pk]})

    assert offered == set()
    step.refresh_from_db()
    assert (step.status, step.attempts) == ("failed", 6)


def test_a_view_only_staff_user_cannot_cancel_or_reactivate_subscriptions(client):
    subscription = Subscription.objects.create(
        email="sub@example.com", product=product_create(), timezone="UTC"
    )
    staff(client, "view_subscription")

    offered = offered_actions(client, "/admin/shop/subscription/")
    client.post(
        "/admin/shop/subscription/", {"action": "cancel", "_selected_action": [subscription.pk]}
    )

    assert offered == set()
    subscription.refresh_from_db()
    assert subscription.cancelled_at is None


@pytest.fixture
def job_with_formula_rows():
    job = CatalogJob.objects.create(kind=CatalogJob.Kind.CATALOG, rows_rejected=2)
    RowRejection.objects.create(job=job, row=1, sku='=HYPERLINK("http://x","y")', reason="bad")
    RowRejection.objects.create(job=job, row=2, sku="@SUM(A1)", reason="-1+2 is not a price")
    return job


@pytest.mark.parametrize("codenames", [(), ("view_order",)])
def test_the_catalog_job_error_report_needs_the_catalog_job_view_permission(
    client, job_with_formula_rows, codenames
):
    staff(client, *codenames)

    response = client.get(f"/admin/shop/catalogjob/{job_with_formula_rows.pk}/errors.csv")

    assert response.status_code == 403


def test_the_error_report_csv_escapes_formulas_like_the_export(client, job_with_formula_rows):
    staff(client, "view_catalogjob")

    response = client.get(f"/admin/shop/catalogjob/{job_with_formula_rows.pk}/errors.csv")

    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        ["row", "sku", "reason"],
        ["1", '\'=HYPERLINK("http://x","y")', "bad"],
        ["2", "'@SUM(A1)", "'-1+2 is not a price"],
    ]


@pytest.mark.parametrize("codenames", [(), ("view_order",)])
def test_the_ops_dashboard_needs_the_step_view_permission(client, codenames):
    staff(client, *codenames)

    response = client.get("/admin/operations/")

    assert response.status_code == 403


def test_a_staff_user_who_may_view_steps_sees_the_ops_dashboard(client, monkeypatch):
    monkeypatch.setattr("ops.views.dashboard_overview", lambda: {})
    staff(client, "view_step")

    response = client.get("/admin/operations/")

    assert response.status_code == 200


def test_an_orders_lifecycle_fields_are_read_only_on_its_admin_form(client):
    order = order_place((product_create(), 1)).order
    staff(client, "view_order", "change_order")

    form = client.get(f"/admin/orders/order/{order.pk}/change/").context["adminform"].form
    client.post(
        f"/admin/orders/order/{order.pk}/change/",
        {
            "status": "completed",
            "stock_state": "released",
            "channel": "web",
            "cancel_reason": "x",
            "cancelled_at_0": "2026-01-01",
            "cancelled_at_1": "00:00:00",
        },
    )

    lifecycle = {"status", "stock_state", "channel", "cancelled_at", "cancel_reason"}
    assert lifecycle & set(form.fields) == set()
    order.refresh_from_db()
    assert (
        order.status,
        order.stock_state,
        order.channel,
        order.cancel_reason,
        order.cancelled_at,
    ) == ("placed", "reserved", "api", "", None)
