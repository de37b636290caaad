from django.urls import path

from orders import views

urlpatterns = [
    path("exports/<int:export_id>/orders.csv", views.export_download, name="order-export-download"),
]
