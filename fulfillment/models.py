from django.db import models


class Invoice(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="invoice")
    file = models.FileField(upload_to="invoices/")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"invoice {self.file.name}"


class Shipment(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="shipment")
    tracking_number = models.CharField(max_length=64, unique=True)
    label = models.FileField(upload_to="labels/")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"shipment {self.tracking_number}"
