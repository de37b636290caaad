import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("shopflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def recycle_database_connections(sender=None, **kwargs) -> None:
    """Around each task, what Django does around each request: drop this thread's
    connection when it errored or outlived CONN_MAX_AGE, so the next query reconnects."""
    if sender is None or sender.request.is_eager:
        return  # an eager task runs inside its caller's transaction (tests): leave it be
    from django.db import close_old_connections

    close_old_connections()
