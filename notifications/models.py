from django.db import models


class OutboxEmail(models.Model):
    """An email owed to someone: unique per (order, kind), so none is sent twice."""

    class Kind(models.TextChoices):
        ORDER_CONFIRMATION = "order_confirmation", "order confirmation"
        PAYMENT_FAILED = "payment_failed", "payment failed"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"

    order = models.ForeignKey("orders.Order", on_delete=models.CASCADE, related_name="emails")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    to = models.EmailField()
    subject = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="one_email_per_kind_per_order")
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to}"
