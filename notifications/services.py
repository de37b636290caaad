from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import OutboxEmail
from orders.errors import TransientError
from orders.liveness import claimer_alive, this_process
from orders.models import Order

SUBJECTS = {
    OutboxEmail.Kind.ORDER_CONFIRMATION: "Your order {number} is confirmed",
    OutboxEmail.Kind.PAYMENT_FAILED: "We could not take payment for order {number}",
    OutboxEmail.Kind.ORDER_CANCELLED: "Your order {number} is cancelled",
    OutboxEmail.Kind.REVIEW_REQUEST: "How do you like your order {number}?",
}


class EmailInFlight(TransientError):
    """Another run is sending this email right now; look again later."""


def outbox_email_get_or_create(*, order: Order, kind: str) -> OutboxEmail:
    subject = SUBJECTS[kind].format(number=order.number)
    try:
        with transaction.atomic():
            email, _ = OutboxEmail.objects.get_or_create(
                order=order, kind=kind, defaults={"to": order.email, "subject": subject}
            )
    except IntegrityError:  # a concurrent run created it between our get and create
        email = OutboxEmail.objects.get(order=order, kind=kind)
    return email


def outbox_email_claim(*, email: OutboxEmail) -> bool:
    """Take the right to send this email; only one live sender holds it at a time."""
    now = timezone.now()
    claimable = Q(status=OutboxEmail.Status.PENDING)
    if email.status == OutboxEmail.Status.SENDING and not claimer_alive(
        email.claimed_by, claimed_at=email.claimed_at
    ):
        # The sender died after claiming; it may or may not have sent (at-least-once).
        claimable |= Q(status=OutboxEmail.Status.SENDING, claimed_by=email.claimed_by)
    return bool(
        OutboxEmail.objects.filter(claimable, pk=email.pk).update(
            status=OutboxEmail.Status.SENDING, claimed_at=now, claimed_by=this_process()
        )
    )


def outbox_email_deliver(
    *, email: OutboxEmail, text: str, html: str | None = None
) -> dict[str, Any]:
    """Send an outbox email at most once at a time; a sent one is never sent again."""
    if email.status == OutboxEmail.Status.SENT:
        return {"email": email.pk, "sent_at": email.sent_at.isoformat()}
    if not outbox_email_claim(email=email):
        email.refresh_from_db()
        if email.status == OutboxEmail.Status.SENT:
            return {"email": email.pk, "sent_at": email.sent_at.isoformat()}
        raise EmailInFlight(f"email {email.pk} is being sent by another run")
    message = EmailMultiAlternatives(subject=email.subject, body=text, to=[email.to])
    if html:
        message.attach_alternative(html, "text/html")
    try:
        message.send()
    except Exception:
        OutboxEmail.objects.filter(pk=email.pk).update(status=OutboxEmail.Status.PENDING)
        raise
    sent_at = timezone.now()
    OutboxEmail.objects.filter(pk=email.pk).update(status=OutboxEmail.Status.SENT, sent_at=sent_at)
    return {"email": email.pk, "sent_at": sent_at.isoformat()}


def order_email_send(*, order: Order, kind: str) -> dict[str, Any]:
    """Send the order's email of this kind exactly once through the outbox."""
    email = outbox_email_get_or_create(order=order, kind=kind)
    context = {
        "order": order,
        "lines": order.lines.order_by("pk"),
        "status_url": f"{settings.SHOP_BASE_URL}/orders/{order.token}/",
    }
    return outbox_email_deliver(
        email=email,
        text=render_to_string(f"notifications/{kind}.txt", context),
        html=render_to_string(f"notifications/{kind}.html", context),
    )


def order_confirmation_send(order: Order) -> dict[str, Any]:
    return order_email_send(order=order, kind=OutboxEmail.Kind.ORDER_CONFIRMATION)


def order_cancelled_send(order: Order) -> dict[str, Any]:
    return order_email_send(order=order, kind=OutboxEmail.Kind.ORDER_CANCELLED)


def payment_failed_send(order: Order) -> dict[str, Any]:
    return order_email_send(order=order, kind=OutboxEmail.Kind.PAYMENT_FAILED)
