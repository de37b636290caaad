from django.contrib import admin, messages

from shop.models import LifecycleStep, Product, Subscription
from shop.subscriptions import subscription_cancel, subscription_reactivate


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price_cents", "stock", "is_active", "is_subscription")
    list_filter = ("is_active", "is_subscription")
    search_fields = ("sku", "name")


class LifecycleInline(admin.TabularInline):
    """The subscription's lifecycle timeline: each scheduled step, when it is due and done."""

    model = LifecycleStep
    extra = 0
    can_delete = False
    fields = readonly_fields = ("cycle", "kind", "due_at", "status", "done_at")
    ordering = ("-cycle", "due_at")
    verbose_name_plural = "lifecycle timeline (times in UTC)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("email", "product", "status", "timezone", "cancelled_at")
    list_filter = ("status", "product")
    search_fields = ("email",)
    readonly_fields = ("status", "cycle", "cancelled_at", "created_at")
    inlines = (LifecycleInline,)
    actions = ("cancel", "reactivate")

    @admin.action(description="Cancel selected subscriptions (starts the lifecycle)")
    def cancel(self, request, queryset) -> None:
        done = sum(subscription_cancel(subscription_id=s.pk) for s in queryset)
        self.message_user(request, f"Cancelled {done} subscriptions.", messages.SUCCESS)

    @admin.action(description="Reactivate selected subscriptions (cancels pending steps)")
    def reactivate(self, request, queryset) -> None:
        for subscription in queryset:
            subscription_reactivate(subscription_id=subscription.pk)
        self.message_user(
            request, f"Reactivated {queryset.count()} subscriptions.", messages.SUCCESS
        )
