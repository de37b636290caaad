from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from ops import views as ops

urlpatterns = [
    # Before the admin's own URLs; admin_view lets staff in and sends others to its login.
    path("admin/operations/", admin.site.admin_view(ops.dashboard), name="ops-dashboard"),
    # Bulk catalog jobs were "import jobs" before issue 12; sent emails link the old pages.
    re_path(
        r"^admin/shop/importjob/(?P<rest>.*)$",
        RedirectView.as_view(
            url="/admin/shop/catalogjob/%(rest)s", permanent=True, query_string=True
        ),
    ),
    path("admin/", admin.site.urls),
    path("metrics", ops.metrics, name="metrics"),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("", include("webhooks.urls")),
    path("", include("orders.urls")),
    path("", include("fulfillment.urls")),
    path("", include("shop.urls")),
]
