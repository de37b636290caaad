from django.contrib import admin

from webhooks.models import InboxEvent


@admin.register(InboxEvent)
class InboxEventAdmin(admin.ModelAdmin):
    """Every event the partners sent, as stored, and what processing made of it."""

    list_display = (
        "received_at",
        "partner",
        "type",
        "order_number",
        "occurred_at",
        "status",
        "attempts",
        "outcome",
    )
    list_filter = ("status", "partner", "type")
    search_fields = ("event_id", "order_number")
    readonly_fields = [f.name for f in InboxEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
