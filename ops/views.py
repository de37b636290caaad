"""The operations endpoints: /metrics, /healthz, /readyz, and the admin dashboard."""

import hmac

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from ops.dashboard import dashboard_overview
from ops.health import readiness
from ops.metrics import REGISTRY

# What the operations pages show is the steps' state: who may view steps may see it.
OPS_PERMISSION = "orders.view_step"


def _ops_staff(request: HttpRequest) -> bool:
    user = request.user
    return user.is_active and user.is_staff and user.has_perm(OPS_PERMISSION)


def _ops_allowed(request: HttpRequest) -> bool:
    """A staff session that may view steps, or `Authorization: Bearer <METRICS_TOKEN>`
    when a token is set: who may read /metrics and /readyz's details."""
    if _ops_staff(request):
        return True
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (
        bool(settings.METRICS_TOKEN)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _ops_allowed(request):
        return HttpResponse(
            "A bearer token or a staff login is required.\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="shopflow metrics"'},
        )
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(REGISTRY), content_type=content_type)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: this process answers. It checks nothing else, so that an outage of the
    database or the broker does not get healthy web processes restarted."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database and the broker answer, every queue has a worker
    that answers, and beat shows a sign of life; else 503 naming each failed check.

    Beat's sign of life is the newest of its start (written as it starts, by the
    beat_init signal) and its last send of an enabled periodic job, at most
    READY_BEAT_MAX_AGE_S old. A running beat sends a job every minute; in the minute
    before its first send, its start counts. A beat that never started, or whose start
    and last send are both past the limit, or that has no enabled job, is a 503.

    Which check failed and why (error texts name internal hosts) only for who may read
    /metrics; anyone else gets the status alone.
    """
    report = readiness(broker_url=settings.CELERY_BROKER_URL)
    body = report.as_json()
    if not _ops_allowed(request):
        body = {"status": body["status"]}
    return JsonResponse(body, status=200 if report.ok else 503)


def dashboard(request: HttpRequest) -> HttpResponse:
    """The operations dashboard; config/urls.py wraps it in the admin's staff-only check
    (which sends others to the login), and staff need the permission to view steps."""
    if not _ops_staff(request):
        raise PermissionDenied
    return render(
        request,
        "admin/ops/dashboard.html",
        {**admin.site.each_context(request), "title": "Operations", "ops": dashboard_overview()},
    )
