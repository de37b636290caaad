from django.urls import path

from fulfillment import views

urlpatterns = [
    path("files/invoices/<int:invoice_id>", views.invoice_file, name="invoice-file"),
    path("files/labels/<int:shipment_id>", views.label_file, name="label-file"),
]
