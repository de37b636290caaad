import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from bulkjobs.admin import BulkJobAdminMixin
from kit.files import private_file_link
from shop.imports import catalog_job_create, catalog_job_error_report, catalog_job_options_check
from shop.models import CatalogJob, LifecycleStep, Product, RowRejection, Subscription
from shop.subscriptions import subscription_cancel, subscription_reactivate


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price_cents", "stock", "is_active", "is_subscription")
    list_filter = ("is_active", "is_subscription")
    search_fields = ("sku", "name")


class LifecycleInline(admin.TabularInline):
    """The subscription's lifecycle timeline: each scheduled step, when it is due and done."""

    model = LifecycleStep
    extra = 0
    can_delete = False
    fields = readonly_fields = ("cycle", "kind", "due_at", "status", "finished_at")
    ordering = ("-cycle", "due_at")
    verbose_name_plural = "lifecycle timeline (times in UTC)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("email", "product", "status", "timezone", "cancelled_at")
    list_filter = ("status", "product")
    search_fields = ("email",)
    readonly_fields = ("status", "cycle", "cancelled_at", "created_at")
    inlines = (LifecycleInline,)
    actions = ("cancel", "reactivate")

    @admin.action(
        description="Cancel selected subscriptions (starts the lifecycle)", permissions=["change"]
    )
    def cancel(self, request, queryset) -> None:
        done = sum(subscription_cancel(subscription_id=s.pk) for s in queryset)
        self.message_user(request, f"Cancelled {done} subscriptions.", messages.SUCCESS)

    @admin.action(
        description="Reactivate selected subscriptions (cancels pending steps)",
        permissions=["change"],
    )
    def reactivate(self, request, queryset) -> None:
        for subscription in queryset:
            subscription_reactivate(subscription_id=subscription.pk)
        self.message_user(
            request, f"Reactivated {queryset.count()} subscriptions.", messages.SUCCESS
        )


class RejectionInline(admin.TabularInline):
    model = RowRejection
    extra = 0
    can_delete = False
    fields = readonly_fields = ("row", "sku", "reason")
    max_num = 0  # no adding; the full list is in the error report

    def get_queryset(self, request):
        # The first 200 by row, as a filter: the inline's formset filters the queryset
        # again, which a slice refuses (the change page answered 500).
        rows = super().get_queryset(request).order_by("row")
        return rows.filter(pk__in=rows.values("pk")[:200])


class CatalogJobForm(forms.ModelForm):
    class Meta:
        model = CatalogJob
        fields = ("kind", "file", "percent", "sku_prefix", "as_of", "requested_by")

    def clean(self):
        data = super().clean()
        errors = catalog_job_options_check(
            kind=data.get("kind", ""),
            has_file=bool(data.get("file")),
            percent=data.get("percent"),
            sku_prefix=data.get("sku_prefix", ""),
        )
        for field, reason in errors.items():
            self.add_error(field, reason)
        if data.get("as_of") and data.get("kind") != CatalogJob.Kind.STOCK:
            self.add_error("as_of", "Only a stock sync takes a count time.")
        elif data.get("as_of") and not data.get("file"):
            self.add_error(
                "as_of", "The ERP's feed says when it counted; a count time is for a file."
            )
        return data


@admin.register(CatalogJob)
class CatalogJobAdmin(BulkJobAdminMixin, admin.ModelAdmin):
    """Start a catalog import, price update or stock sync; it runs on the bulk queue while
    this page shows its progress."""

    form = CatalogJobForm
    list_display = (
        "pk",
        "kind",
        "file_link",
        "status",
        "progress",
        "rows_applied",
        "rows_rejected",
        "report",
        "created_at",
    )
    readonly_fields = (
        "status",
        "progress",
        "rows_total",
        "rows_done",
        "rows_applied",
        "rows_rejected",
        "message",
        "report",
        "finished_at",
    )
    inlines = (RejectionInline,)
    list_filter = ("kind", "status")
    options = ("kind", "file", "percent", "sku_prefix", "as_of", "requested_by")

    def get_fields(self, request, obj=None):
        return self.options if obj is None else self._shown

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self._shown

    @property
    def _shown(self) -> tuple[str, ...]:
        """A started job's options and progress, its file through the view that checks
        access (never the private storage's URL)."""
        options = tuple("file_link" if name == "file" else name for name in self.options)
        return (*options, *self.readonly_fields)

    @admin.display(description="file")
    def file_link(self, job: CatalogJob) -> str:
        return private_file_link("catalog-job-file", job.pk, "CSV") if job.file else "–"

    def get_inlines(self, request, obj):
        return self.inlines if obj else ()

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return super().save_model(request, obj, form, change)
        job = catalog_job_create(
            kind=obj.kind,
            file=form.cleaned_data.get("file") or None,
            percent=obj.percent,
            sku_prefix=obj.sku_prefix,
            as_of=obj.as_of,
            requested_by=obj.requested_by or request.user.email,
        )
        obj.pk = job.pk  # the admin logs and redirects to the object it built
        obj.refresh_from_db()

    @admin.display(description="error report")
    def report(self, job: CatalogJob):
        if not job.rows_rejected:
            return "–"
        return format_html(
            '<a href="{}">{} rejected rows (CSV)</a>',
            reverse("admin:shop_catalogjob_errors", args=[job.pk]),
            job.rows_rejected,
        )

    def get_urls(self):
        errors = path(
            "<int:job_id>/errors.csv",
            self.admin_site.admin_view(self.errors_csv),
            name="shop_catalogjob_errors",
        )
        return [errors, *super().get_urls()]

    def errors_csv(self, request, job_id: int) -> StreamingHttpResponse:
        job = get_object_or_404(CatalogJob, pk=job_id)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        writer = csv.writer(Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in catalog_job_error_report(job)), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response


class Echo:
    """A file-like object whose write returns the line, for streaming CSV."""

    def write(self, value: str) -> str:
        return value
