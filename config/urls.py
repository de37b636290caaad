from django.contrib import admin
from django.urls import include, path

from orders.ops import views as ops

urlpatterns = [
    # Before the admin's own URLs; admin_view lets staff in and sends others to its login.
    path("admin/operations/", admin.site.admin_view(ops.dashboard), name="ops-dashboard"),
    path("admin/", admin.site.urls),
    path("metrics", ops.metrics, name="metrics"),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("", include("orders.urls")),
    path("", include("shop.urls")),
]
