from django.contrib import admin

from notifications.models import Alert, OutboxEmail


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    list_display = ("key", "kind", "to", "status", "sent_at")
    list_filter = ("kind", "status")
    # The key names what the email is about: "order:SF-1", "order-export:12", "alert:7".
    search_fields = ("key", "to")
    readonly_fields = (
        "key",
        "kind",
        "to",
        "subject",
        "status",
        "lease_holder",
        "lease_token",
        "lease_expires_at",
        "sent_at",
        "created_at",
    )


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("kind", "subject", "message", "opened_at", "resolved_at")
    list_filter = ("kind", "resolved_at")
    readonly_fields = ("kind", "subject", "message", "opened_at", "resolved_at")

    def has_add_permission(self, request) -> bool:
        return False
