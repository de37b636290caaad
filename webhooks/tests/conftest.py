import pytest

from orders.models import Order
from tests.factories import order_place, product_create


@pytest.fixture
def shop_webhooks(sandbox, live_server):
    """The sandbox's partners sending their webhooks to this test's live shop."""
    sandbox.post("/control", json={"webhook_url": live_server.url}).raise_for_status()
    return sandbox


def send(sandbox, **spec):
    """One request from the sandbox to the shop, now; the shop's (status, answer)."""
    response = sandbox.post("/webhooks/send", json=spec)
    assert response.status_code == 200, response.text
    return response.json()["status"], response.json()["answer"]


def carrier_event(order: str, kind: str, **fields):
    return {"type": kind, "order": order, "data": {"tracking_number": "1ZTEST"}, **fields}


def an_order() -> Order:
    return order_place((product_create(), 1)).order


def at(minute: int) -> str:
    """An event time: minute `minute` of a fixed morning."""
    return f"2026-12-01T09:{minute:02d}:00+00:00"


def receive(sandbox, partner: str, kind: str, order: str, minute: int, **data):
    """Have the partner's event for `order` at `minute` delivered to the shop, accepted."""
    status, answer = send(
        sandbox,
        partner=partner,
        event={"type": kind, "order": order, "data": data, "occurred_at": at(minute)},
    )
    assert status == 202, answer
    return answer["id"]
