from django.contrib import admin

from fulfillment.models import Invoice, Shipment


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("order", "file", "created_at")
    search_fields = ("order__number",)


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("order", "tracking_number", "created_at")
    search_fields = ("order__number", "tracking_number")
