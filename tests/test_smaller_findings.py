"""The smaller findings of issue 15 (finding 8), each named after its attack: what token
holders and anonymous probes see, an open redirect, sessions that outlive a logout, a
former staff member's export, and one client blocking another's checkouts by key."""

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from ops import health
from ops.health import Check
from orders.models import Order, Step
from tests.factories import checkout_body, order_place, product_create

pytestmark = pytest.mark.django_db

PARTNER_ERROR = "ConnectError: [Errno 111] Connection refused (erp at 10.0.0.7:8100)"


def test_a_token_holder_sees_customer_step_names_but_no_error_texts_queues_or_addresses(client):
    order = order_place((product_create(), 1)).order
    Step.objects.filter(order=order, name="erp_sync").update(
        status="retrying", attempts=2, last_error=PARTNER_ERROR
    )

    api = client.get(f"/api/v1/orders/{order.token}")
    page = client.get(f"/orders/{order.token}/")

    steps = api.json()["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("Payment", "queued"),
        ("Confirmation email", "pending"),
        ("Sent to the warehouse", "retrying"),
        ("Invoice", "pending"),
        ("Shipping label", "pending"),
    ]
    assert sorted(steps[0]) == ["finished_at", "name", "retry_at", "started_at", "status", "step"]
    for text in (api.content.decode(), page.content.decode()):
        assert "10.0.0.7" not in text and "Connection refused" not in text
        assert '"queue"' not in text and "analytics" not in text
    assert "Sent to the warehouse" in page.content.decode()


def _broker_down(settings):
    settings.READY_TIMEOUT_S = 0.3
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_an_anonymous_readyz_probe_learns_the_status_but_not_what_failed(client, settings):
    _broker_down(settings)

    response = client.get("/readyz")

    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})


def test_readyz_details_need_the_metrics_token_or_staff_who_may_view_steps(client, settings):
    _broker_down(settings)
    ops = User.objects.create_user("ops", password="x", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="view_step"))

    with_token = client.get(
        "/readyz", headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}"}
    )
    client.force_login(User.objects.create_user("clerk", password="x", is_staff=True))
    clerk = client.get("/readyz")
    client.force_login(ops)
    staff = client.get("/readyz")

    assert with_token.json()["checks"]["broker"]["error"].startswith("OperationalError: Error 111")
    assert staff.json() == with_token.json()
    assert clerk.json() == {"status": "unavailable"}


def test_readyz_requests_do_not_each_broadcast_a_worker_ping(client, settings, monkeypatch):
    from config.celery import app

    settings.READY_TIMEOUT_S = 0.3
    settings.CELERY_BROKER_URL = app.conf.broker_url
    pings = []
    monkeypatch.setattr(
        health, "workers_check", lambda broker, timeout: pings.append(1) or Check(True)
    )

    for _ in range(5):
        client.get("/readyz")

    assert len(pings) == 1


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_the_cart_does_not_redirect_off_site(client, target):
    product = product_create()

    response = client.post("/cart/update/", {"sku": product.sku, "quantity": 1, "next": target})

    assert (response.status_code, response["Location"]) == (302, "/cart/")


def test_the_cart_still_redirects_to_a_page_of_the_shop(client):
    product = product_create()

    response = client.post("/cart/update/", {"sku": product.sku, "quantity": 1, "next": "/"})

    assert (response.status_code, response["Location"]) == (302, "/")


def test_a_session_cookie_stolen_before_logout_opens_nothing_after_it(client):
    User.objects.create_superuser("olga", "olga@example.com", "right-password")
    assert (
        client.post(
            "/admin/login/", {"username": "olga", "password": "right-password", "next": "/admin/"}
        ).status_code
        == 302
    )
    stolen = client.cookies["sessionid"].value
    assert client.post("/admin/logout/").status_code == 200

    thief = Client()
    thief.cookies["sessionid"] = stolen
    response = thief.get("/admin/")

    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/admin/")


@pytest.fixture
def olgas_export(django_user_model):
    from orders.services.exports import order_export_create, order_export_run

    olga = django_user_model.objects.create_user(
        "olga", "olga@shop.example", "pw-123456", is_staff=True
    )
    olga.user_permissions.add(Permission.objects.get(codename="view_order"))
    order_place((product_create(sku="MUG"), 1))
    export = order_export_create(requester=olga, filters={"sku": "MUG"}, queue=False)
    return olga, order_export_run(export_id=export.pk)


@pytest.mark.parametrize("lost", ["staff status", "the permission to view orders", "activity"])
def test_a_requester_who_lost_staff_status_or_permission_cannot_download_their_export(
    client, olgas_export, lost
):
    olga, export = olgas_export
    client.force_login(olga)
    if lost == "staff status":
        User.objects.filter(pk=olga.pk).update(is_staff=False)
    elif lost == "activity":
        User.objects.filter(pk=olga.pk).update(is_active=False)
    else:
        olga.user_permissions.clear()

    response = client.get(f"/exports/{export.pk}/orders.csv")

    assert response.status_code in (302, 403)
    assert not response.has_header("Content-Disposition")


def test_another_client_cannot_block_a_checkout_by_using_its_idempotency_key_first(client):
    product = product_create()
    attacker = checkout_body((product.sku, 1), email="mallory@example.com")
    customer = checkout_body((product.sku, 2), email="ada@example.com")
    key = {"Idempotency-Key": "order-1"}

    first = client.post("/api/v1/checkout", attacker, content_type="application/json", headers=key)
    blocked = client.post(
        "/api/v1/checkout", customer, content_type="application/json", headers=key
    )
    replay = client.post("/api/v1/checkout", customer, content_type="application/json", headers=key)
    reused = client.post(
        "/api/v1/checkout",
        {**customer, "payment_token": "tok_other"},
        content_type="application/json",
        headers=key,
    )

    assert (first.status_code, blocked.status_code) == (201, 201)
    assert Order.objects.get(token=blocked.json()["token"]).email == "ada@example.com"
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (201, "true")
    assert replay.json() == blocked.json()
    assert reused.status_code == 422


def test_every_step_but_analytics_has_a_name_for_customers():
    from orders.pipeline import ALL_STEPS
    from orders.selectors import CUSTOMER_STEP_NAMES

    assert set(CUSTOMER_STEP_NAMES) == {spec.name for spec in ALL_STEPS} - {"analytics_track"}
