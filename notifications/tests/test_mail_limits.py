"""Mail to one address is rate-limited (issue 15, finding 4): declined-card checkouts
cannot make the shop mail someone without end, nor greet them with a stranger's text."""

import pytest
from django.core import mail

from notifications.models import OutboxEmail
from orders.tasks import payment_capture, payment_failed_email_send
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db

SPAM_NAME = "URGENT: your account is locked, call +1 555 0100 or visit evil.example"


def declined_order(product, *, email: str):
    order = order_place(
        (product, 1),
        email=email,
        payment_token="tok_decline",
        shipping_address={
            "name": SPAM_NAME,
            "line1": "1 Road",
            "city": "Town",
            "postal_code": "1",
            "country": "GB",
        },
    ).order
    payment_capture.apply(args=(order.pk,))
    payment_failed_email_send.apply(args=(order.pk,))
    return order


def test_declined_card_spam_to_one_address_sends_at_most_the_limit(sandbox, abuse_limits):
    abuse_limits.RATE_LIMITS = {"email:payment_failed": "3/3600"}
    product = product_create(stock=100)

    orders = [declined_order(product, email="victim@example.com") for _ in range(5)]
    declined_order(product, email="someone-else@example.com")

    assert [m.to for m in mail.outbox] == [["victim@example.com"]] * 3 + [
        ["someone-else@example.com"]
    ]
    statuses = dict(
        OutboxEmail.objects.filter(to="victim@example.com").values_list("key", "status")
    )
    assert statuses == {
        f"order:{order.number}:payment_failed": "sent" if n < 3 else "suppressed"
        for n, order in enumerate(orders)
    }
    assert {o.steps.get(name="payment_failed_email_send").status for o in orders} == {"succeeded"}


def test_the_payment_failed_email_does_not_greet_the_name_given_at_checkout(sandbox):
    declined_order(product_create(), email="victim@example.com")

    [message] = mail.outbox
    [(html, _)] = message.alternatives
    assert "evil.example" not in message.body and "evil.example" not in html
    assert message.body.startswith("Hello,\n")
