from django.contrib import admin

from notifications.models import OutboxEmail


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    list_display = ("order", "kind", "to", "status", "sent_at")
    list_filter = ("kind", "status")
    search_fields = ("order__number", "to")
    readonly_fields = (
        "order",
        "kind",
        "to",
        "subject",
        "status",
        "claimed_at",
        "sent_at",
        "created_at",
    )
