from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import SafeString


def progress_bar(done: int, total: int | None) -> SafeString:
    """A native progress bar and "done / total" ("?" while the total is not known yet)."""
    return format_html(
        '<progress value="{}" max="{}"></progress> {} / {}',
        done,
        total or 1,
        done,
        "?" if total is None else total,
    )


class BulkJobAdminMixin:
    """For a ModelAdmin of a BulkJob: a progress column, and a changelist that reloads
    itself every two seconds while a job is queued or running."""

    change_list_template = "admin/bulkjobs/change_list.html"

    @admin.display(description="progress")
    def progress(self, job) -> SafeString:
        return progress_bar(job.rows_done, job.progress_total)

    def changelist_view(self, request, extra_context=None):
        running = self.model.objects.filter(status__in=self.model.ACTIVE).exists()
        return super().changelist_view(
            request, extra_context={**(extra_context or {}), "refresh": running}
        )
