from django.contrib import admin

from fulfillment.models import Invoice, Shipment
from kit.files import private_file_link


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Made by the pipeline, read here; the PDF through its view, which checks access."""

    list_display = ("order", "pdf", "created_at")
    fields = readonly_fields = ("order", "pdf", "created_at")
    search_fields = ("order__number",)

    @admin.display(description="PDF")
    def pdf(self, invoice: Invoice) -> str:
        return private_file_link("invoice-file", invoice.pk, "invoice PDF") if invoice.file else "–"


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    """Made by the pipeline, read here; the label through its view, which checks access."""

    list_display = ("order", "tracking_number", "label_link", "created_at")
    fields = readonly_fields = ("order", "tracking_number", "label_link", "created_at")
    search_fields = ("order__number", "tracking_number")

    @admin.display(description="label")
    def label_link(self, shipment: Shipment) -> str:
        return (
            private_file_link("label-file", shipment.pk, "label (ZPL)") if shipment.label else "–"
        )
