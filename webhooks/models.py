from django.db import models


class InboxEvent(models.Model):
    """One event a partner sent us, stored as it came before it is processed: unique per
    partner and the partner's event id, so a delivery repeated is stored once."""

    class Status(models.TextChoices):
        RECEIVED = "received", "received (waiting to be processed)"
        PROCESSED = "processed", "processed"
        IGNORED = "ignored", "ignored (a type we do not act on)"
        FAILED = "failed", "failed"

    # Done with: the daily cleanup purges these past WEBHOOK_RETENTION_DAYS.
    DONE = (Status.PROCESSED, Status.IGNORED)

    partner = models.CharField(max_length=16)
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=64)
    # The order the event is about, by number (the partners know it as their reference):
    # an order's events are processed one at a time, under its row lock.
    order_number = models.CharField(max_length=32, blank=True)
    # When it happened, on the partner's clock: an order's events apply in this order.
    occurred_at = models.DateTimeField()
    # The body exactly as signed, for audit and for processing again by hand.
    body = models.TextField()
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    received_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    # Not before this is it tried again (its order not there yet, or a processing error).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # What processing did ("delivery state delivered", "older than the state: no change").
    outcome = models.CharField(max_length=200, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = "webhook event"
        constraints = [
            models.UniqueConstraint(fields=["partner", "event_id"], name="one_event_per_partner_id")
        ]
        indexes = [
            models.Index(fields=["order_number", "status", "occurred_at"]),
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "processed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.partner} {self.type} {self.event_id}"
