from django.db import models

from kit.files import RandomName, private_storage


class Invoice(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="invoice")
    file = models.FileField(storage=private_storage, upload_to=RandomName("invoices", (".pdf",)))
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"invoice of order {self.order_id}"  # never the file's name: it is private


class Shipment(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="shipment")
    tracking_number = models.CharField(max_length=64, unique=True)
    label = models.FileField(storage=private_storage, upload_to=RandomName("labels", (".zpl",)))
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"shipment {self.tracking_number}"
