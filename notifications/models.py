from django.db import models
from django.db.models import Q

from engine.leases import Leased


class Alert(models.Model):
    """An incident ops must hear about: open until its condition clears, one email each."""

    class Kind(models.TextChoices):
        DEAD_LETTERS = "dead_letters", "dead letters above threshold"
        BREAKER_OPEN = "breaker_open", "partner circuit breaker open"
        QUEUE_DEPTH = "queue_depth", "queue backlog above threshold"
        QUEUE_AGE = "queue_age", "oldest waiting job above threshold"
        QUEUE_STALLED = "queue_stalled", "queue not consumed by its live workers"
        WEBHOOKS_FAILING = "webhooks_failing", "partner events keep failing"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    subject = models.CharField(max_length=64)  # the partner, the queue, or "all"
    message = models.TextField()
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_alert_per_kind_and_subject",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}"


class OutboxEmail(Leased):
    """An email owed to someone, once per key its sender gives ("order:SF-1:order_confirmation",
    "alert:7"), rendered from its template when it is owed: none is sent twice."""

    class Kind(models.TextChoices):
        """The templates an email is rendered from (notifications/email/<kind>.*)."""

        ORDER_CONFIRMATION = "order_confirmation", "order confirmation"
        PAYMENT_FAILED = "payment_failed", "payment failed"
        ORDER_CANCELLED = "order_cancelled", "order cancelled"
        REVIEW_REQUEST = "review_request", "review request"
        IMPORT_DONE = "import_done", "catalog import finished"
        EXPORT_DONE = "export_done", "order export finished"
        OPS_ALERT = "ops_alert", "ops alert"
        SUBSCRIPTION_WINBACK = "winback", "subscription win-back"
        SUBSCRIPTION_WINBACK_SECOND = "winback_second", "subscription second win-back"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        # It went out and the server's answer never came: it may have been taken. Never
        # sent again (a copy is worse than a loss); ops see it and decide.
        SENT_UNCONFIRMED = "sent_unconfirmed", "sent, unconfirmed (no answer from the server)"
        # Past the per-recipient limit of its kind (settings.RATE_LIMITS "email:<kind>"):
        # recorded, never sent.
        SUPPRESSED = "suppressed", "suppressed (too many to this address)"

    # The sender's name for what the email is about, which also makes it unique; it
    # names its subject too ("order-export:12"), so notifications needs no foreign key
    # into the apps that send.
    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    to = models.EmailField()
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    html = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Its sender holds a lease while sending (engine/leases.py: Leased).
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind} to {self.to}"
