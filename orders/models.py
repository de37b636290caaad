from django.conf import settings
from django.db import models

from bulkjobs.models import BulkJob
from engine.due_rows import DueRow
from engine.models import StepRecord
from kit.files import RandomName, private_storage


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "placed"
        PAID = "paid", "paid"
        COMPLETED = "completed", "completed"
        PAYMENT_FAILED = "payment_failed", "payment failed"
        NEEDS_ATTENTION = "needs_attention", "needs attention"
        CANCELLED = "cancelled", "cancelled"

    # The status sets the services ask about, each named once.
    # Payment taken and not given back: what sales count and the gateway must agree with.
    PAID_STATUSES = (Status.PAID, Status.COMPLETED, Status.NEEDS_ATTENTION)
    # Stopped before the end: its forward steps will not run.
    STOPPED_STATUSES = (Status.PAYMENT_FAILED, Status.CANCELLED)
    # Nothing more will happen to it.
    FINAL_STATUSES = (Status.COMPLETED, *STOPPED_STATUSES)

    class StockState(models.TextChoices):
        RESERVED = "reserved", "reserved"
        COMMITTED = "committed", "committed"
        RELEASED = "released", "released"

    number = models.CharField(max_length=16, unique=True)
    # The customer's and integrator's handle on the order: unguessable, unlike the number.
    token = models.CharField(max_length=64, unique=True)
    email = models.EmailField()
    shipping_address = models.JSONField()
    payment_token = models.CharField(max_length=128)
    currency = models.CharField(max_length=3)
    total_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    stock_state = models.CharField(
        max_length=10, choices=StockState.choices, default=StockState.RESERVED
    )
    capture_id = models.CharField(max_length=64, blank=True)
    erp_reference = models.CharField(max_length=64, blank=True)
    # When the ERP took the order, on the ERP's clock (its answer says): the stock sync
    # compares it with the ERP's count time, both ERP time.
    erp_acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Channel(models.TextChoices):
        WEB = "web", "shop pages"
        API = "api", "JSON API"

    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.API)

    class DeliveryState(models.TextChoices):
        """What the carrier last told us about the parcel (webhooks/): beside the status,
        which is the pipeline's, not the parcel's."""

        NONE = "", "not shipped yet"
        LABEL_PRINTED = "label_printed", "label printed"
        IN_TRANSIT = "in_transit", "shipped"
        OUT_FOR_DELIVERY = "out_for_delivery", "out for delivery"
        EXCEPTION = "exception", "delivery problem"
        DELIVERED = "delivered", "delivered"
        RETURNED = "returned", "returned to sender"

    delivery_state = models.CharField(
        max_length=20, choices=DeliveryState.choices, default=DeliveryState.NONE, blank=True
    )
    # The carrier's time of the event that set delivery_state: an older event arriving
    # later changes nothing.
    delivery_event_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)  # the backfill's watermark

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey("shop.Product", on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price_cents = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


class Step(StepRecord):
    """One pipeline step of one order (engine.models.StepRecord: status, attempts, claims,
    times, task id, last error): the source of truth for its progress."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="steps")

    class Meta:
        ordering = ["order", "position"]
        constraints = [
            models.UniqueConstraint(fields=["order", "name"], name="one_step_per_name_per_order")
        ]
        indexes = [
            models.Index(fields=["status", "queued_at"]),
            # The heartbeat's sweep: running steps whose lease ran out.
            models.Index(fields=["status", "lease_expires_at"]),
            # The reconciliation's "ready, not published": a publish lost after the
            # commit that made the step ready (engine/dispatch.py). Few rows, if any.
            models.Index(
                fields=["queued_at"],
                condition=models.Q(status="queued", published_at__isnull=True),
                name="step_ready_unpublished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_id}:{self.name}"


class DeadLetterManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=Step.Status.FAILED)


class DeadLetter(Step):
    """A step out of retries (or failed for good): kept until someone handles it."""

    objects = DeadLetterManager()

    class Meta:
        proxy = True
        ordering = ["-finished_at"]


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key for a checkout, stored with the order it created."""

    key = models.CharField(max_length=255, unique=True)
    # SHA-256 of the canonical request body: a reused key with another body is refused.
    fingerprint = models.CharField(max_length=64)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.key


class SalesDay(models.Model):
    """Sales of one day (UTC), kept up to date by the nightly backfill."""

    day = models.DateField(unique=True)
    orders = models.PositiveIntegerField()
    units = models.PositiveIntegerField()
    revenue_cents = models.BigIntegerField()
    cancelled = models.PositiveIntegerField()
    payment_failed = models.PositiveIntegerField()

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return str(self.day)


class ProductSalesDay(models.Model):
    """Units and revenue of one product through one channel on one day."""

    day = models.DateField()
    sku = models.CharField(max_length=64)
    channel = models.CharField(max_length=8)
    units = models.PositiveIntegerField()
    revenue_cents = models.BigIntegerField()

    class Meta:
        ordering = ["-day", "sku", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "sku", "channel"], name="one_row_per_day_sku_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.sku} {self.channel}"


class Watermark(models.Model):
    """How far an incremental job has read (e.g. orders changed up to this time)."""

    name = models.CharField(max_length=64, unique=True)
    value = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.value}"


class Discrepancy(models.Model):
    """A mismatch the nightly payment reconciliation found, open until it no longer holds."""

    class Kind(models.TextChoices):
        PAID_UNFULFILLED = "paid_unfulfilled", "paid but not fulfilled"
        CHARGED_NO_ORDER = "charged_no_order", "charged without a paid order"
        # The gateway's webhooks (webhooks/): what it says against what we recorded.
        CAPTURE_FAILED_LATE = "capture_failed_late", "capture failed after we recorded it"
        REFUND_UNREQUESTED = "refund_unrequested", "refund we did not ask for"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    order_number = models.CharField(max_length=16)
    capture_id = models.CharField(max_length=64, blank=True)
    details = models.TextField()
    found_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "order_number", "capture_id"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_discrepancy",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_number}"


class Dispute(models.Model):
    """A chargeback the payment gateway reported (webhooks/): open until it says closed."""

    class Status(models.TextChoices):
        OPEN = "open", "open"
        CLOSED = "closed", "closed"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="disputes")
    dispute_id = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    reason = models.CharField(max_length=200, blank=True)
    amount_cents = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=50, blank=True)  # won, lost, ... as the gateway says
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # The gateway's time of the event that set the status: an older one changes nothing.
    event_at = models.DateTimeField()

    class Meta:
        ordering = ["-event_at"]
        indexes = [models.Index(fields=["status", "order"])]

    def __str__(self) -> str:
        return f"dispute {self.dispute_id} ({self.status})"


class FollowUp(DueRow):
    """Work due some days after an order completed: a row with a due time, not a countdown."""

    class Kind(models.TextChoices):
        REVIEW_REQUEST = "review_request", "review request"
        LOYALTY_POINTS = "loyalty_points", "loyalty points"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="follow_ups")
    kind = models.CharField(max_length=16, choices=Kind.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="one_follow_up_per_kind")
        ]
        indexes = [models.Index(fields=["status", "due_at"])]

    def __str__(self) -> str:
        return f"{self.order_id}:{self.kind}"


class LoyaltyAccount(models.Model):
    email = models.EmailField(unique=True)
    points = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.email}: {self.points}"


class LoyaltyEntry(models.Model):
    """Points earned by one order: one row per order, so points are never awarded twice."""

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="loyalty_entry")
    account = models.ForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="entries")
    points = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.points} for {self.order_id}"


class OrderExport(BulkJob):
    """Orders matching a filter written to a CSV file in the background, for its requester.

    The file is written in batches of orders in id order up to `last_id` (the newest
    match when the export started), each batch a part of its own; `parts_done` and
    `cursor` record the last saved one, so a run killed half-way resumes after it
    instead of starting a second file (orders/services/exports.py).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    FINISHED = (Status.DONE, Status.FAILED)

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="order_exports"
    )
    # Validated, declared lookups only (orders/services/exports.py EXPORT_FILTERS).
    filters = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # rows_total and rows_done (BulkJob) count orders, not CSV lines.
    last_id = models.BigIntegerField(null=True, blank=True)
    cursor = models.BigIntegerField(default=0)
    parts_done = models.IntegerField(default=0)
    file = models.FileField(
        storage=private_storage, upload_to=RandomName("exports", (".csv",)), blank=True
    )
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"order export {self.pk} ({self.status})"

    @property
    def progress_total(self) -> int | None:
        return self.rows_total if self.last_id is not None else None  # known once started


class BeatStart(models.Model):
    """When celery beat last started, and which process it is (one row). /readyz counts
    beat as alive from its start, before the first job it sends is due."""

    process = models.CharField(max_length=255)  # host:pid
    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"beat {self.process} started {self.started_at}"
