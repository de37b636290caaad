"""The outbox: an email is owed once per key its sender gives, rendered from its
template when it is owed, and delivered once the sender's transaction has committed."""

import hashlib
import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template import Context, TemplateDoesNotExist
from django.template.loader import get_template
from django.utils import timezone

from engine.leases import Lease, lease_end, lease_take, lease_write
from kit.errors import TransientError
from kit.limits import RateLimited, limit_hit
from kit.transactions import in_transaction
from notifications.models import OutboxEmail
from notifications.smtp import EmailAcceptanceUnknown

logger = logging.getLogger(__name__)


class EmailInFlight(TransientError):
    """Another run is sending this email right now; look again later."""


def email_render(*, template: str, context: dict[str, Any]) -> dict[str, str]:
    """The subject, text body and (where the template has one) HTML body of an email,
    from notifications/email/<template>.subject.txt, .txt and .html."""
    name = f"notifications/email/{template}"

    def text(suffix: str) -> str:
        # Plain text is not HTML: nothing in it is escaped. The file is the text, to its
        # last byte (a body that ends without a newline is a file that does too).
        return get_template(f"{name}{suffix}").template.render(Context(context, autoescape=False))

    try:
        html = get_template(f"{name}.html")
    except TemplateDoesNotExist:
        html = None
    return {
        "subject": " ".join(text(".subject.txt").split()),  # one line, as a header must be
        "body": text(".txt"),
        "html": html.render(context) if html else "",
    }


def email_enqueue(*, key: str, template: str, to: str, context: dict[str, Any]) -> OutboxEmail:
    """Owe `to` the email `template` renders from `context`, once per `key`: a second call
    with the same key returns the first one's row and sends nothing new.

    Delivery follows the commit of the caller's transaction, or happens now when there is
    none; then a failure to send raises here (EmailInFlight when another run is sending
    it), so a step retries. After a commit it is logged and the email stays pending.

    A kind with a per-recipient limit (settings.RATE_LIMITS "email:<template>") past it
    for `to` is recorded as suppressed and never sent: checkouts with anyone's address
    cannot make the shop mail them without end."""
    email = OutboxEmail.objects.filter(key=key).first()
    if email is None:
        email = _create(
            key=key,
            kind=template,
            to=to,
            status=_status_for(template=template, to=to),
            **email_render(template=template, context=context),
        )
    elif not email.body and email.status != OutboxEmail.Status.SENT:
        # Rows from before migration 0007 rendered order emails when sending them.
        OutboxEmail.objects.filter(pk=email.pk, body="").update(
            **email_render(template=template, context=context)
        )
        email.refresh_from_db()
    if in_transaction():
        transaction.on_commit(partial(_deliver_or_log, email.pk))
    else:
        outbox_email_deliver(email=email)
    return email


def _status_for(*, template: str, to: str) -> str:
    try:
        limit_hit(scope=f"email:{template}", key=to.strip().lower())
    except RateLimited:
        logger.warning("email suppressed: too many to one address", extra={"kind": template})
        return OutboxEmail.Status.SUPPRESSED
    return OutboxEmail.Status.PENDING


def _create(**fields: str) -> OutboxEmail:
    try:
        with transaction.atomic():
            return OutboxEmail.objects.create(**fields)
    except IntegrityError:  # a concurrent sender created it between our look and our insert
        return OutboxEmail.objects.get(key=fields["key"])


def _deliver_or_log(email_id: int) -> None:
    email = OutboxEmail.objects.get(pk=email_id)
    try:
        outbox_email_deliver(email=email)
    except Exception:
        logger.exception("email not sent; it stays pending", extra={"email": email_id})


def outbox_email_claim(*, email: OutboxEmail) -> Lease | None:
    """Take the right to send this email: a lease (engine/leases.py), so only one live
    sender holds it at a time, and one that died or gave up holds it no longer."""
    # A sending row whose lease is over: its sender died, or could not record what it did;
    # it may or may not have sent (at-least-once).
    return lease_take(
        OutboxEmail,
        pk=email.pk,
        claimable=Q(status__in=(OutboxEmail.Status.PENDING, OutboxEmail.Status.SENDING)),
        status=OutboxEmail.Status.SENDING,
    )


def email_message_id(email: OutboxEmail) -> str:
    """The Message-ID of an outbox email: made from its row, the same on every attempt,
    so a receiver that got a copy can tell it is one."""
    digest = hashlib.blake2b(email.key.encode(), digest_size=8).hexdigest()
    return f"<outbox.{email.pk}.{digest}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>"


def outbox_email_deliver(*, email: OutboxEmail) -> dict[str, Any]:
    """Send an outbox email at most once at a time; a sent one is never sent again (nor
    one that may have been: sent_unconfirmed), a suppressed one never."""
    if email.status == OutboxEmail.Status.SENT:
        return {"email": email.pk, "sent_at": email.sent_at.isoformat()}
    if email.status == OutboxEmail.Status.SENT_UNCONFIRMED:
        return {"email": email.pk, "unconfirmed": True}
    if email.status == OutboxEmail.Status.SUPPRESSED:
        return {"email": email.pk, "suppressed": True}
    lease = outbox_email_claim(email=email)
    if lease is None:
        email.refresh_from_db()
        if email.status == OutboxEmail.Status.SENT:
            return {"email": email.pk, "sent_at": email.sent_at.isoformat()}
        if email.status == OutboxEmail.Status.SENT_UNCONFIRMED:
            return {"email": email.pk, "unconfirmed": True}
        raise EmailInFlight(f"email {email.pk} is being sent by another run")
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body,
        to=[email.to],
        headers={"Message-ID": email_message_id(email)},
    )
    if email.html:
        message.attach_alternative(email.html, "text/html")
    try:
        message.send()
    except EmailAcceptanceUnknown as exc:
        # The server may have it: a second copy is worse than a lost one. Ops see it.
        logger.warning("email sent, unconfirmed: %s", exc, extra={"email": email.pk})
        email.status, email.sent_at = OutboxEmail.Status.SENT_UNCONFIRMED, timezone.now()
        lease_write(lease, "email sent, unconfirmed", status=email.status, sent_at=email.sent_at)
        return {"email": email.pk, "unconfirmed": True}
    except Exception:
        # Refused or failed before the server took the message: it is owed still.
        lease_write(lease, "email back to pending", status=OutboxEmail.Status.PENDING)
        raise
    except BaseException:
        lease_end(lease)
        raise
    email.status, email.sent_at = OutboxEmail.Status.SENT, timezone.now()
    lease_write(lease, "email sent", status=email.status, sent_at=email.sent_at)
    return {"email": email.pk, "sent_at": email.sent_at.isoformat()}
