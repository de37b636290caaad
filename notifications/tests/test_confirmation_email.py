from datetime import timedelta

import pytest
from django.core import mail
from django.db.models.functions import Now

from notifications.models import OutboxEmail
from notifications.services import EmailInFlight
from orders.services.emails import order_email_send
from orders.tasks import confirmation_email_send, payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def test_confirmation_email_has_text_and_html_with_the_order_and_its_page(sandbox):
    order = order_place((product_create(price_cents=1490), 2)).order
    payment_capture.apply(args=(order.pk,))

    confirmation_email_send.apply(args=(order.pk,))

    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.subject == f"Your order {order.number} is confirmed"
    assert "Total: 29.80 EUR" in message.body
    assert f"/orders/{order.token}/" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert f"<strong>{order.number}</strong>" in html
    email = OutboxEmail.objects.get(key=f"order:{order.number}:order_confirmation")
    assert (email.kind, email.status) == ("order_confirmation", "sent")


def test_confirmation_is_sent_once_however_often_the_step_runs(sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    confirmation_email_send.apply(args=(order.pk,))
    confirmation_email_send.apply(args=(order.pk,))
    order_email_send(order=order, kind=OutboxEmail.Kind.ORDER_CONFIRMATION)

    assert len(mail.outbox) == 1


def test_an_email_another_run_is_sending_is_not_sent_again(sandbox):
    order = order_place((product_create(), 1)).order
    OutboxEmail.objects.create(
        key=f"order:{order.number}:order_confirmation",
        kind="order_confirmation",
        to=order.email,
        status="sending",
    )
    # Its sender, on another machine, holds its lease.
    OutboxEmail.objects.update(
        lease_holder="0123456789ab/4242/feedfacecafe",
        lease_token=1,
        lease_expires_at=Now() + timedelta(seconds=30),
    )

    with pytest.raises(EmailInFlight):
        order_email_send(order=order, kind=OutboxEmail.Kind.ORDER_CONFIRMATION)

    assert mail.outbox == []
