from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from orders.models import IdempotencyKey, Order, OrderLine, Step

STEP_FIELDS = (
    "name",
    "queue",
    "status",
    "attempts",
    "last_error",
    "queued_at",
    "started_at",
    "retry_at",
    "finished_at",
    "task_id",
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("sku", "name", "quantity", "unit_price_cents")
    readonly_fields = fields


class StepInline(ReadOnlyInline):
    """The order's pipeline timeline: each step, its attempts and its last error."""

    model = Step
    fields = STEP_FIELDS
    readonly_fields = fields
    ordering = ("position",)
    verbose_name_plural = "pipeline timeline"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "email", "status", "total_cents", "currency", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("number", "email", "capture_id", "erp_reference")
    readonly_fields = (
        "number",
        "status",
        "stock_state",
        "email",
        "shipping_address",
        "currency",
        "total_cents",
        "capture_id",
        "erp_reference",
        "documents",
        "created_at",
        "updated_at",
    )
    exclude = ("token", "payment_token")
    inlines = (OrderLineInline, StepInline)

    def has_add_permission(self, request) -> bool:
        return False  # orders come from checkout, with their steps

    @admin.display(description="documents")
    def documents(self, order: Order):
        links = [
            format_html(
                '<a href="{}">customer order page</a>', reverse("order", args=[order.token])
            )
        ]
        if hasattr(order, "invoice"):
            links.append(
                format_html(
                    '<a href="{}">invoice PDF</a>', reverse("order-invoice", args=[order.token])
                )
            )
        if hasattr(order, "shipment"):
            links.append(format_html("tracking {}", order.shipment.tracking_number))
        return format_html(" · ".join(["{}"] * len(links)), *links)


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ("order", "name", "queue", "status", "attempts", "last_error", "finished_at")
    list_filter = ("status", "name", "queue")
    search_fields = ("order__number", "task_id")
    readonly_fields = (*STEP_FIELDS, "order", "position", "result", "last_traceback")
    list_select_related = ("order",)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    list_display = ("key", "order", "created_at", "expires_at")
    search_fields = ("key", "order__number")
    readonly_fields = ("key", "fingerprint", "order", "created_at", "expires_at")
