"""config.wsgi for the synchronous checkout baseline of bench/checkout.py.

With CELERY_TASK_ALWAYS_EAGER a task runs where it is sent, so the web process must
know every task; Celery's autodiscovery imports the apps' task modules only when a
worker starts, so they are imported here.
"""

from config.celery import app
from config.wsgi import application

app.loader.import_default_modules()

__all__ = ["application"]
