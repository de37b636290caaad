import os

from celery import Celery
from celery.signals import beat_init, task_postrun, task_prerun, worker_init

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


@worker_init.connect
def worker_niceness_set(sender=None, **kwargs) -> None:
    """Run the worker at WORKER_NICENESS from before its pool starts: on a machine it
    shares with the web server, a checkout takes the CPU first."""
    from django.conf import settings

    from kit.priority import cpu_priority_lower

    cpu_priority_lower(niceness=settings.WORKER_NICENESS)


@worker_init.connect
@beat_init.connect
def refuse_unsafe_settings(sender=None, **kwargs) -> None:
    """Celery runs Django's checks but ignores what they find: a production worker or
    beat with the sandbox's URLs or an open broker must not start."""
    import django

    django.setup()
    from config.checks import refuse_unsafe_start

    refuse_unsafe_start("celery")
