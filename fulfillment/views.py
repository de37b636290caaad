"""Staff downloads of an order's private files: its invoice and its shipping label."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from fulfillment.models import Invoice, Shipment
from kit.files import private_file_response, staff_only


@require_GET
@staff_only("fulfillment.view_invoice")
def invoice_file(request: HttpRequest, invoice_id: int) -> HttpResponse:
    invoice = get_object_or_404(Invoice.objects.select_related("order"), pk=invoice_id)
    return private_file_response(
        invoice.file, filename=f"{invoice.order.number}.pdf", content_type="application/pdf"
    )


@require_GET
@staff_only("fulfillment.view_shipment")
def label_file(request: HttpRequest, shipment_id: int) -> HttpResponse:
    shipment = get_object_or_404(Shipment, pk=shipment_id)
    return private_file_response(
        shipment.label,
        filename=f"{shipment.tracking_number}.zpl",
        content_type="application/octet-stream",
    )
