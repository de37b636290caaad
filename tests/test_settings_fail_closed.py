"""Settings fail closed (issue 15, finding 6): production unless development or test is
asked for, and production refuses the development secret, the sandbox's URLs and a
broker without a password, at start-up, in every process that starts."""

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User

from harness.processes import interpreted
from harness.procfile import ROOT, procfile_lines

# The documented production environment (README, "Security"): what an operator sets.
PRODUCTION_ENV = {
    "SHOPFLOW_ENV": "production",
    "DJANGO_SECRET_KEY": "9vQ2kR7xLm4pT8wZ1cN6bJ3hF5dS0aYeUiOoPlKjHgMnBvCxZq",
    "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    "PAYMENT_URL": "https://payments.example.com/v1",
    "ERP_URL": "https://erp.example.com/api",
    "CARRIER_URL": "https://carrier.example.com/api",
    "ANALYTICS_URL": "https://collector.example.com",
    "CELERY_BROKER_URL": "redis://:broker-secret@redis.internal:6379/0",
    "SHOPFLOW_REDIS_URL": "redis://:broker-secret@redis.internal:6379/1",
    "PAYMENT_WEBHOOK_SECRET": "whsec_5tQ8vN2mK7pR4xL9cB3",
    "CARRIER_WEBHOOK_SECRET": "whsec_W6yH1jD8fS3gA0zE5uI",
}
# What the test process carries that a production start would not.
NOT_PASSED = ("SHOPFLOW_ENV", "DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "SHOPFLOW_REDIS_URL")


def started(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    """argv run from the project's root with only env on top of this machine's basics."""
    base = {k: v for k, v in os.environ.items() if k not in NOT_PASSED}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        argv, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return started([sys.executable, "manage.py", *args], **env)


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in PRODUCTION_ENV.items() if k != name}


def test_check_deploy_with_the_documented_production_environment_reports_nothing():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"


def test_unset_shopflow_env_starts_production_not_development():
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ENVIRONMENT, settings.DEBUG, settings.METRICS_TOKEN == '')"
    )

    result = started([sys.executable, "-c", script], **without("SHOPFLOW_ENV"))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "production False True\n"


def test_shopflow_env_prod_is_an_error_at_start_up_not_development():
    result = manage("check", **{**PRODUCTION_ENV, "SHOPFLOW_ENV": "prod"})

    assert result.returncode == 1
    assert (
        "ImproperlyConfigured: SHOPFLOW_ENV='prod' is not one of production, development, "
        "test (unset means production)." in result.stderr
    )


def test_production_with_the_sandbox_partner_urls_refuses_to_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if not k.endswith("_URL") or "REDIS" in k}
    env["CELERY_BROKER_URL"] = PRODUCTION_ENV["CELERY_BROKER_URL"]

    result = manage("check", **env)

    assert result.returncode == 1
    assert (
        "?: (shopflow.E002) The payment partner points at the sandbox or a loopback address "
        "(http://127.0.0.1:8100/payment)." in result.stderr
    )
    assert result.stderr.count("shopflow.E002") == 4


def test_production_with_a_partner_on_a_loopback_address_refuses_to_start():
    result = manage("check", **{**PRODUCTION_ENV, "ERP_URL": "http://localhost:9000/erp"})

    assert result.returncode == 1
    assert (
        "(shopflow.E002) The erp partner points at the sandbox or a loopback address "
        "(http://localhost:9000/erp)." in result.stderr
    )


@pytest.mark.parametrize(
    "secret", [None, "dev-only-insecure-key-change-me"], ids=["missing", "development"]
)
def test_production_with_a_missing_or_development_secret_key_refuses_to_start(secret):
    env = without("DJANGO_SECRET_KEY") | ({"DJANGO_SECRET_KEY": secret} if secret else {})

    result = manage("check", **env)

    assert result.returncode == 1
    assert (
        "?: (shopflow.E001) DJANGO_SECRET_KEY is missing or is the public development key."
        in result.stderr
    )


@pytest.mark.parametrize(
    "secret", [None, "dev-webhook-secret-carrier"], ids=["missing", "development"]
)
def test_production_with_a_missing_or_development_webhook_secret_refuses_to_start(secret):
    env = without("CARRIER_WEBHOOK_SECRET") | ({"CARRIER_WEBHOOK_SECRET": secret} if secret else {})

    result = manage("check", **env)

    assert result.returncode == 1
    assert (
        "?: (shopflow.E005) The carrier webhook secret is missing or is a public development "
        "secret." in result.stderr
    )
    assert result.stderr.count("shopflow.E005") == 1


def test_production_with_a_broker_without_password_refuses_to_start():
    result = manage(
        "check",
        **{
            **PRODUCTION_ENV,
            "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
            "SHOPFLOW_REDIS_URL": "redis://redis.internal:6379/1",
        },
    )

    assert result.returncode == 1
    assert "?: (shopflow.E003) CELERY_BROKER_URL has no password." in result.stderr
    assert "?: (shopflow.E003) SHOPFLOW_REDIS_URL has no password." in result.stderr


def test_production_with_internal_addresses_open_to_the_safe_fetcher_refuses_to_start():
    """SAFE_FETCH_ALLOWED lets user-given URLs reach internal host:port pairs, which only
    the tests' own image servers need: set in production, it opens the internal network
    to anyone who can submit an image URL."""
    result = manage("check", **{**PRODUCTION_ENV, "SAFE_FETCH_ALLOWED": "10.0.0.5:80"})

    assert result.returncode == 1
    assert "?: (shopflow.E004) SAFE_FETCH_ALLOWED opens internal addresses" in result.stderr


def test_an_unauthenticated_broker_starts_when_explicitly_allowed():
    result = manage(
        "check",
        **{
            **PRODUCTION_ENV,
            "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
            "SHOPFLOW_REDIS_URL": "redis://redis.internal:6379/1",
            "SHOPFLOW_ALLOW_UNAUTHENTICATED_REDIS": "1",
        },
    )

    assert result.returncode == 0, result.stderr


def test_a_production_worker_with_the_sandbox_urls_refuses_to_start():
    """Celery runs Django's checks but ignores them: the worker itself must refuse."""
    argv = interpreted(procfile_lines()["worker_high"])

    result = started(argv, **{**PRODUCTION_ENV, "PAYMENT_URL": "http://127.0.0.1:8100/payment"})

    assert result.returncode == 1
    assert (
        "celery refuses to start:\n  ?: (shopflow.E002) The payment partner points at the "
        "sandbox or a loopback address (http://127.0.0.1:8100/payment)." in result.stderr
    )


def test_the_sandbox_refuses_to_run_in_production():
    result = manage("run_sandbox", "--port", "0", **PRODUCTION_ENV)

    assert result.returncode == 1
    assert (
        "CommandError: The sandbox does not run in production: it approves every payment."
        in result.stderr
    )


@pytest.mark.django_db
def test_admin_login_is_locked_after_five_failures_even_with_the_right_password(client):
    User.objects.create_superuser("olga", "olga@example.com", "right-password")
    wrong = [
        client.post("/admin/login/", {"username": "olga", "password": f"guess-{n}"})
        for n in range(5)
    ]

    right = client.post("/admin/login/", {"username": "olga", "password": "right-password"})

    assert [r.status_code for r in wrong] == [200, 200, 200, 200, 429]
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
