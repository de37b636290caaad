from django.apps import AppConfig


class BulkJobsConfig(AppConfig):
    """No models of its own (only an abstract one); installed for its admin template."""

    name = "bulkjobs"
    verbose_name = "bulk jobs"
