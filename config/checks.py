"""Production refuses to start with development secrets, the sandbox's URLs or a broker
anyone can write to: system checks at Error level, run by every manage.py command that
checks (runserver, migrate, check) and, through `refuse_unsafe_start`, by the WSGI
application, Celery's workers and beat, and Flower, which Django's checks never reach."""

import ipaddress
import sys
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def _is_loopback(host: str | None) -> bool:
    if not host:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@checks.register(checks.Tags.security)
def secret_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if not settings.PRODUCTION:
        return []
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty key
        key = ""
    if key and key != settings.DEVELOPMENT_SECRET_KEY:
        return []
    return [
        checks.Error(
            "DJANGO_SECRET_KEY is missing or is the public development key.",
            hint="Set DJANGO_SECRET_KEY to a long random secret (python -c "
            "'import secrets; print(secrets.token_urlsafe(50))').",
            id="shopflow.E001",
        )
    ]


@checks.register(checks.Tags.security)
def partner_urls_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The sandbox approves every card: in production no partner may point at it."""
    if not settings.PRODUCTION:
        return []
    errors = []
    for name, partner in settings.PARTNERS.items():
        url = partner["base_url"]
        if url.startswith(settings.SANDBOX_URL) or _is_loopback(urlsplit(url).hostname):
            errors.append(
                checks.Error(
                    f"The {name} partner points at the sandbox or a loopback address ({url}).",
                    hint=f"Set {name.upper()}_URL to the real {name} service.",
                    id="shopflow.E002",
                )
            )
    return errors


@checks.register(checks.Tags.security)
def redis_password_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Whoever can write to the broker can run any task (a refund among them)."""
    if not settings.PRODUCTION or settings.SHOPFLOW_ALLOW_UNAUTHENTICATED_REDIS:
        return []
    urls = {
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SHOPFLOW_REDIS_URL": settings.SHOPFLOW_REDIS_URL,
    }
    return [
        checks.Error(
            f"{name} has no password.",
            hint="Give the broker and Redis a password (redis://:PASSWORD@host/0, or "
            "rediss:// for TLS), or set SHOPFLOW_ALLOW_UNAUTHENTICATED_REDIS=1 when only "
            "the application's own network can reach them.",
            id="shopflow.E003",
        )
        for name, url in urls.items()
        if not urlsplit(url).password
    ]


@checks.register(checks.Tags.security)
def safe_fetch_allowed_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The safe fetcher's exceptions to "no internal address" are for the tests' own
    image servers: in production they would let any user-given URL reach them."""
    if not settings.PRODUCTION or not settings.SAFE_FETCH_ALLOWED:
        return []
    return [
        checks.Error(
            "SAFE_FETCH_ALLOWED opens internal addresses to URLs users give "
            f"({', '.join(settings.SAFE_FETCH_ALLOWED)}).",
            hint="Leave SAFE_FETCH_ALLOWED unset in production; it is for the tests.",
            id="shopflow.E004",
        )
    ]


@checks.register(checks.Tags.security)
def webhook_secrets_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Whoever knows a partner's webhook secret can tell us an order was delivered or its
    payment disputed: production needs each partner's own, not none or the public one."""
    if not settings.PRODUCTION:
        return []
    return [
        checks.Error(
            f"The {name} webhook secret is missing or is a public development secret.",
            hint=f"Set {name.upper()}_WEBHOOK_SECRET to the signing secret the {name} partner "
            f"gave you (and {name.upper()}_WEBHOOK_SECRET_PREVIOUS while rotating it).",
            id="shopflow.E005",
        )
        for name, secrets in settings.WEBHOOK_SECRETS.items()
        if not secrets or set(secrets) & set(settings.DEVELOPMENT_WEBHOOK_SECRETS.values())
    ]


def refuse_unsafe_start(process: str) -> None:
    """Exit with the errors when this process's settings fail the security checks."""
    errors = [
        message
        for message in checks.run_checks(tags=[checks.Tags.security])
        if message.is_serious() and not message.is_silenced()
    ]
    if errors:
        lines = "\n".join(f"  {message}" for message in errors)
        sys.stderr.write(f"{process} refuses to start:\n{lines}\n")
        sys.stderr.flush()
        raise SystemExit(1)
