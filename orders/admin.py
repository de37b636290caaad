from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from bulkjobs.admin import BulkJobAdminMixin
from engine.breaker import breaker_states
from engine.dead_letters import dead_letters_retry
from orders.models import (
    DeadLetter,
    Discrepancy,
    Dispute,
    FollowUp,
    IdempotencyKey,
    LoyaltyAccount,
    Order,
    OrderExport,
    OrderLine,
    Step,
)
from orders.pipeline import STEPS
from orders.selectors import ORDER_SEARCH_FIELDS
from orders.services.exports import ExportInvalid, export_filters_describe, order_export_create
from orders.services.orders import (
    OrderNotCancellable,
    OrderNotReturnable,
    order_cancel,
    order_return_receive,
)

# The admin index with a link to the operations dashboard (ops/) above the apps.
admin.site.index_template = "admin/shopflow_index.html"

STEP_FIELDS = (
    "name",
    "queue",
    "status",
    "attempts",
    "crashes",
    "suspect",
    "timeouts",
    "last_error",
    "queued_at",
    "started_at",
    "retry_at",
    "finished_at",
    "task_id",
)


# The order changelist's query parameters an export understands, as export filters.
CHANGELIST_EXPORT_FILTERS = {
    "status__exact": "status",
    "channel__exact": "channel",
    "created_at__gte": "created_from",
    "created_at__lt": "created_to",
    "q": "search",
}
CHANGELIST_LIST_FILTERS = {"status", "channel"}
CHANGELIST_IGNORED = {"o", "p"}  # ordering and page do not change which orders match


def changelist_export_filters(params: QueryDict) -> dict:
    """The order changelist's current filter as export filters; refuse what has none."""
    unknown = sorted(set(params) - set(CHANGELIST_EXPORT_FILTERS) - CHANGELIST_IGNORED)
    if unknown:
        raise ExportInvalid(
            {
                name: "this list filter cannot be exported; select the orders instead"
                for name in unknown
            }
        )
    return {
        name: params.getlist(param) if name in CHANGELIST_LIST_FILTERS else params[param]
        for param, name in CHANGELIST_EXPORT_FILTERS.items()
        if param in params
    }


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


class DisputeInline(admin.TabularInline):
    model = Dispute
    fields = ("dispute_id", "status", "reason", "amount_cents", "outcome", "opened_at", "closed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class OpenDisputeFilter(admin.SimpleListFilter):
    title = "open dispute"
    parameter_name = "disputed"

    def lookups(self, request, model_admin):
        return (("yes", "Open dispute"), ("no", "None open"))

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(disputed=self.value() == "yes")
        return queryset


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "email",
        "status",
        "delivery_state",
        "disputed",
        "total_cents",
        "currency",
        "created_at",
    )
    list_filter = ("status", "delivery_state", OpenDisputeFilter, "channel", "created_at")
    search_fields = ORDER_SEARCH_FIELDS
    # The lifecycle changes only through the actions below, which call the services.
    readonly_fields = (
        "number",
        "status",
        "stock_state",
        "channel",
        "cancelled_at",
        "cancel_reason",
        "email",
        "shipping_address",
        "currency",
        "total_cents",
        "capture_id",
        "erp_reference",
        "delivery_state",
        "delivery_event_at",
        "delivered_at",
        "documents",
        "created_at",
        "updated_at",
    )
    exclude = ("token", "payment_token")
    inlines = (OrderLineInline, StepInline, DisputeInline)

    def get_queryset(self, request):
        open_disputes = Dispute.objects.filter(order=OuterRef("pk"), status=Dispute.Status.OPEN)
        return super().get_queryset(request).annotate(disputed=Exists(open_disputes))

    @admin.display(boolean=True, description="open dispute", ordering="disputed")
    def disputed(self, order) -> bool:
        return order.disputed

    actions = ("cancel_orders", "receive_returns", "export_orders")

    @admin.action(
        description="Cancel selected orders (refund; shipped units stay off sale)",
        permissions=["change"],
    )
    def cancel_orders(self, request, queryset) -> None:
        """Staff may cancel after fulfilment began, unlike the customer (order_cancel)."""
        cancelled, refused = 0, []
        for order in queryset:
            try:
                _, done = order_cancel(
                    order_id=order.pk, reason=f"cancelled by {request.user}", by_staff=True
                )
            except OrderNotCancellable as exc:
                refused.append(f"{order.number}: {exc}")
            else:
                cancelled += done
        self.message_user(request, f"Cancelled {cancelled} orders.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not cancelled: " + "; ".join(refused), messages.WARNING)

    @admin.action(
        description="Record returns as received (units back on sale)", permissions=["change"]
    )
    def receive_returns(self, request, queryset) -> None:
        restocked, refused = 0, []
        for order in queryset:
            try:
                restocked += order_return_receive(order_id=order.pk)
            except OrderNotReturnable as exc:
                refused.append(f"{order.number}: {exc}")
        self.message_user(request, f"Restocked {restocked} orders.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not restocked: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Export orders (CSV, emailed link)", permissions=["view"])
    def export_orders(self, request, queryset) -> None:
        """Export the selection, or with "select all" the changelist's current filter."""
        try:
            if request.POST.get("select_across") == "1":
                filters = changelist_export_filters(request.GET)
            else:
                filters = {"ids": list(queryset.values_list("pk", flat=True))}
            export = order_export_create(requester=request.user, filters=filters)
        except ExportInvalid as exc:
            self.message_user(request, f"Not exported: {exc}", messages.ERROR)
            return
        self.message_user(
            request,
            format_html(
                '<a href="{}">Export {}</a> queued ({}); you get an email with the download link '
                "when it is ready.",
                reverse("admin:orders_orderexport_change", args=[export.pk]),
                export.pk,
                export_filters_describe(export.filters),
            ),
            messages.SUCCESS,
        )

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
    list_display = (
        "order",
        "name",
        "queue",
        "status",
        "attempts",
        "effect_unknown",
        "last_error",
        "finished_at",
    )
    # "Effect unknown: yes" lists the steps whose partner could not yet say what it did.
    list_filter = ("status", "effect_unknown", "name", "queue")
    search_fields = ("order__number", "task_id")
    readonly_fields = (
        *STEP_FIELDS,
        "effect_unknown",
        "order",
        "position",
        "result",
        "last_traceback",
    )
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

    @admin.action(description="Retry selected dead letters", permissions=["change"])
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


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    """Chargebacks the payment gateway reported; open ones first (their orders are flagged
    in Admin › Orders)."""

    list_display = (
        "dispute_id",
        "order",
        "status",
        "reason",
        "amount_cents",
        "outcome",
        "opened_at",
        "closed_at",
    )
    list_filter = ("status",)
    search_fields = ("dispute_id", "order__number")
    readonly_fields = list_display
    ordering = ("-status", "-opened_at")  # "open" sorts after "closed": descending

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(FollowUp)
class FollowUpAdmin(admin.ModelAdmin):
    list_display = ("order", "kind", "due_at", "status", "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("order__number",)
    readonly_fields = (
        "order",
        "kind",
        "due_at",
        "status",
        "lease_expires_at",
        "attempts",
        "last_error",
        "finished_at",
    )

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LoyaltyAccount)
class LoyaltyAccountAdmin(admin.ModelAdmin):
    list_display = ("email", "points")
    search_fields = ("email",)


@admin.register(OrderExport)
class OrderExportAdmin(BulkJobAdminMixin, admin.ModelAdmin):
    """Exports asked for from the order list or `manage.py export_orders`, with progress."""

    list_display = (
        "pk",
        "requester",
        "what",
        "status",
        "progress",
        "created_at",
        "finished_at",
        "expires_at",
        "download",
    )
    list_filter = ("status",)
    list_select_related = ("requester",)
    fields = readonly_fields = (
        "requester",
        "what",
        "filters",
        "status",
        "progress",
        "message",
        "created_at",
        "finished_at",
        "expires_at",
        "download",
    )

    def has_add_permission(self, request) -> bool:
        return False  # from the order list's "Export orders" action or the command

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="orders")
    def what(self, export: OrderExport) -> str:
        return export_filters_describe(export.filters)

    @admin.display(description="progress (orders)")
    def progress(self, export: OrderExport):
        return super().progress(export)

    @admin.display(description="download")
    def download(self, export: OrderExport):
        if export.status != OrderExport.Status.DONE:
            return "–"
        if export.expires_at <= timezone.now():
            return "expired"
        return format_html(
            '<a href="{}">CSV</a> (for {} only)',
            reverse("order-export-download", args=[export.pk]),
            export.requester.get_username(),
        )
