"""Ops alerts: an incident opens once per (kind, subject), emails ops once through the
outbox, and resolves when its condition clears, so the next occurrence mails again."""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.models import Alert, OutboxEmail
from notifications.services import email_enqueue, outbox_email_deliver

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    kind: str
    subject: str
    firing: bool
    message: str


def alert_open(*, kind: str, subject: str, message: str) -> Alert | None:
    """Open an incident and email ops; None when one is already open for (kind, subject)."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(kind=kind, subject=subject, message=message)
            # Sent once this commits; an unsent one stays pending for the next check.
            email_enqueue(
                key=f"alert:{alert.pk}",
                template=OutboxEmail.Kind.OPS_ALERT,
                to=settings.OPS_ALERT_EMAIL,
                context={"title": alert.get_kind_display(), "subject": subject, "message": message},
            )
    except IntegrityError:
        return None
    logger.warning("alert opened: %s %s: %s", kind, subject, message)
    return alert


def _deliver(email: OutboxEmail) -> None:
    # An alert must never break the work that noticed the problem; an unsent alert
    # email stays pending in the outbox and the next alert check sends it.
    try:
        outbox_email_deliver(email=email)
    except Exception:
        logger.exception("alert email %s not sent; the next check retries", email.pk)


def alert_resolve(*, kind: str, subject: str) -> int:
    return Alert.objects.filter(kind=kind, subject=subject, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )


def alert_breaker_opened(*, partner: str) -> None:
    alert_open(
        kind=Alert.Kind.BREAKER_OPEN,
        subject=partner,
        message=(
            f"The circuit breaker for {partner} opened after {settings.BREAKER_FAILURE_THRESHOLD} "
            f"failures within {settings.BREAKER_WINDOW_S}s; steps calling {partner} are deferred "
            f"for {settings.BREAKER_COOLDOWN_S:g}s at a time until it answers again."
        ),
    )


def alerts_apply(conditions: list[Condition]) -> list[Condition]:
    """Open incidents for firing conditions, resolve the rest; return the firing ones."""
    for condition in conditions:
        if condition.firing:
            alert_open(kind=condition.kind, subject=condition.subject, message=condition.message)
        else:
            alert_resolve(kind=condition.kind, subject=condition.subject)
    for email in OutboxEmail.objects.filter(
        kind=OutboxEmail.Kind.OPS_ALERT, status=OutboxEmail.Status.PENDING
    ):
        _deliver(email)
    return [c for c in conditions if c.firing]
