import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A WSGI server (gunicorn) runs no system checks of its own.
from config.checks import refuse_unsafe_start  # noqa: E402

refuse_unsafe_start("web")
