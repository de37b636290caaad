from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from orders.breaker import breaker_states
from orders.models import (
    DeadLetter,
    Discrepancy,
    FollowUp,
    IdempotencyKey,
    LoyaltyAccount,
    Order,
    OrderLine,
    Step,
)
from orders.pipeline import STEPS
from orders.services.dead_letters import dead_letters_retry
from orders.services.orders import OrderNotCancellable, order_cancel

# The admin index with a link to the operations dashboard (orders/ops/) above the apps.
admin.site.index_template = "admin/shopflow_index.html"

STEP_FIELDS = (
    "name",
    "queue",
    "status",
    "attempts",
    "crashes",
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
    actions = ("cancel_orders",)

    @admin.action(description="Cancel selected orders (and compensate what was done)")
    def cancel_orders(self, request, queryset) -> None:
        cancelled, refused = 0, []
        for order in queryset:
            try:
                cancelled += order_cancel(order_id=order.pk, reason=f"cancelled by {request.user}")[
                    1
                ]
            except OrderNotCancellable as exc:
                refused.append(f"{order.number}: {exc}")
        self.message_user(request, f"Cancelled {cancelled} orders.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not cancelled: " + "; ".join(refused), messages.WARNING)

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


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Steps that failed for good, with what they were doing and why; Retry sends them again."""

    list_display = (
        "order_link",
        "name",
        "queue",
        "attempts",
        "crashes",
        "last_error",
        "finished_at",
    )
    list_filter = ("name", "queue", "finished_at")
    search_fields = ("order__number", "last_error")
    readonly_fields = (*STEP_FIELDS, "order", "arguments", "result", "last_traceback")
    list_select_related = ("order",)
    actions = ("retry",)
    change_list_template = "admin/orders/deadletter/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="order", ordering="order__number")
    def order_link(self, step: Step):
        url = reverse("admin:orders_order_change", args=[step.order_id])
        return format_html('<a href="{}">{}</a>', url, step.order.number)

    @admin.display(description="task and arguments")
    def arguments(self, step: Step) -> str:
        return f"{STEPS[step.name].task}(order_id={step.order_id})"

    @admin.action(description="Retry selected dead letters")
    def retry(self, request, queryset) -> None:
        report = dead_letters_retry(step_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Retried {len(report.retried)} dead letters.", messages.SUCCESS)
        for number, name, why in report.skipped:
            self.message_user(request, f"Skipped {number} {name}: {why}", messages.WARNING)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "breakers": breaker_states()}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    list_display = ("key", "order", "created_at", "expires_at")
    search_fields = ("key", "order__number")
    readonly_fields = ("key", "fingerprint", "order", "created_at", "expires_at")


@admin.register(Discrepancy)
class DiscrepancyAdmin(admin.ModelAdmin):
    """What the nightly payment reconciliation found: money and orders that disagree."""

    list_display = ("kind", "order_number", "capture_id", "details", "found_at", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("order_number", "capture_id")
    readonly_fields = list_display

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(FollowUp)
class FollowUpAdmin(admin.ModelAdmin):
    list_display = ("order", "kind", "due_at", "status", "done_at")
    list_filter = ("kind", "status")
    search_fields = ("order__number",)
    readonly_fields = ("order", "kind", "due_at", "status", "claimed_at", "done_at")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LoyaltyAccount)
class LoyaltyAccountAdmin(admin.ModelAdmin):
    list_display = ("email", "points")
    search_fields = ("email",)
