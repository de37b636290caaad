from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from bulkjobs.models import BulkJob
from engine.due_rows import DueRow
from engine.leases import Leased
from kit.files import RandomName, private_storage


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price_cents = models.PositiveIntegerField()
    # Units that can still be sold; checkout reserves by decrementing it.
    stock = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    is_subscription = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(stock__gte=0), name="stock_not_negative")]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


def validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone {value!r}.") from exc


class Subscription(models.Model):
    """A customer's subscription; cancelling it starts the cancellation lifecycle."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        CANCELLED = "cancelled", "cancelled"
        FROZEN = "frozen", "frozen"
        SUSPENDED = "suspended", "suspended"
        ARCHIVED = "archived", "archived"

    email = models.EmailField()
    name = models.CharField(max_length=200)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    # The customer's zone decides when "day N" after a cancel is, and at which local hour.
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Counts cancellations: each one has its own lifecycle rows.
    cycle = models.PositiveIntegerField(default=0)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.email} {self.product.sku}"


class LifecycleStep(DueRow):
    """One scheduled step of a cancelled subscription: a row with a due time, not a countdown."""

    class Kind(models.TextChoices):
        WINBACK = "winback", "day 3 win-back email"
        WINBACK_SECOND = "winback_second", "day 7 second email"
        FREEZE = "freeze", "day 14 freeze"
        SUSPEND = "suspend", "day 30 suspend"
        ARCHIVE = "archive", "day 90 archive"

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="lifecycle"
    )
    cycle = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)

    class Meta:
        ordering = ["subscription", "cycle", "due_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "cycle", "kind"], name="one_lifecycle_step_per_cycle"
            )
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"{self.subscription_id}:{self.cycle}:{self.kind}"


class ProductImage(Leased):
    """A product image given as a URL (by the catalog import), downloaded in the background."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DOWNLOADED = "downloaded", "downloaded"
        FAILED = "failed", "failed, will retry"
        BROKEN = "broken", "broken"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    source_url = models.URLField(max_length=1000)
    file = models.FileField(upload_to="products/", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # The download run that holds it holds its lease (engine/due_rows.py, engine/leases.py).
    last_error = models.TextField(blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "source_url"], name="one_image_per_url")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return self.source_url


class CatalogJob(BulkJob):
    """A bulk catalog job (import, price update or stock sync): its input, its progress,
    and what it rejected."""

    class Kind(models.TextChoices):
        CATALOG = "catalog", "catalog import (CSV)"
        PRICES = "prices", "price update (CSV or percentage)"
        STOCK = "stock", "stock sync (warehouse CSV or the ERP's feed)"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        REJECTED = "rejected", "rejected (malformed file)"

    FINISHED = (Status.DONE, Status.REJECTED)

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CATALOG)
    # Empty for a percentage price update, and for a stock sync until the ERP's feed is saved.
    file = models.FileField(
        storage=private_storage, upload_to=RandomName("imports", (".csv",)), blank=True
    )
    percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="price update only: change every price by this percentage, e.g. -10 or 7.5",
    )
    sku_prefix = models.CharField(
        max_length=64, blank=True, help_text="percentage update only: only SKUs starting so"
    )
    as_of = models.DateTimeField(
        null=True,
        blank=True,
        help_text="stock sync only: when the warehouse counted (default: when uploaded)",
    )
    # A percentage update walks products by id: the last id done, so a re-run resumes.
    cursor = models.PositiveBigIntegerField(default=0)
    requested_by = models.EmailField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # Of the rows done, those written (imported, repriced, synced) and those refused.
    rows_applied = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "bulk catalog job"

    def __str__(self) -> str:
        return f"{self.get_kind_display().split(' (')[0]} {self.pk} ({self.status})"


class RowRejection(models.Model):
    """A row a catalog job refused, for the error report."""

    job = models.ForeignKey(CatalogJob, on_delete=models.CASCADE, related_name="rejections")
    row = models.PositiveIntegerField()
    sku = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=500)

    class Meta:
        ordering = ["row"]
        constraints = [models.UniqueConstraint(fields=["job", "row"], name="one_rejection_per_row")]

    def __str__(self) -> str:
        return f"row {self.row}: {self.reason}"
