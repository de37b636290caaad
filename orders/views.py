from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from orders.models import OrderExport
from orders.services.exports import export_requester_allowed


def export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    """The export's CSV, for its requester only (staff included) while they are still
    staff who may view orders, until the link expires."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
    export = get_object_or_404(OrderExport, pk=export_id)
    if export.requester_id != request.user.pk:
        return HttpResponse(
            "This export belongs to another user; only who asked for it may download it.\n",
            status=403,
            content_type="text/plain",
        )
    # What it took to ask for the export, still: staff lose their exports with their role.
    if not export_requester_allowed(request.user):
        return HttpResponse(
            "Downloading an export takes staff status and the permission to view orders.\n",
            status=403,
            content_type="text/plain",
        )
    if export.expires_at is not None and timezone.now() >= export.expires_at:
        return HttpResponse(
            f"This download link expired at {export.expires_at:%Y-%m-%d %H:%M} UTC and the file "
            "is deleted. Start a new export from Admin › Orders.\n",
            status=410,
            content_type="text/plain",
        )
    if export.status != OrderExport.Status.DONE:
        return HttpResponse(
            f"Export {export.pk} is {export.status} ({export.rows_done} of {export.rows_total} "
            "orders); the link works once it is done.\n",
            status=409,
            content_type="text/plain",
        )
    return FileResponse(
        export.file.open("rb"),
        as_attachment=True,
        filename=f"orders-export-{export.pk}.csv",
        content_type="text/csv",
    )
