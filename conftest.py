"""Fixtures shared by every test: the sandbox partners, private media and email dirs,
the Redis the tests publish to, and clean shared state in it for the tests that use it."""

import os

# Tests publish to their own Redis database so they never touch a demo's queues.
# Celery reads this variable itself, so it wins over the settings module loaded earlier.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

import httpx  # noqa: E402
import pytest  # noqa: E402
from django.core.cache import cache  # noqa: E402

import partners  # noqa: E402
from config.celery import app  # noqa: E402
from kit.redis import shared_redis  # noqa: E402
from sandbox.server import serve_in_thread  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_url():
    server, url = serve_in_thread()
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox(sandbox_url, settings, shared_state_in_test_redis):
    """The sandbox partners with an empty ledger, the clients pointed at them, and their
    circuit breakers (in Redis) closed."""
    settings.PARTNERS = {
        name: {**settings.PARTNERS[name], "base_url": f"{sandbox_url}/{name}", "timeout_s": 2.0}
        for name in settings.PARTNER_NAMES
    }
    partners._clients.clear()
    client = httpx.Client(base_url=sandbox_url)
    client.post("/reset").raise_for_status()
    yield client
    client.close()
    partners._clients.clear()


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    """Public and private files of this test in folders of its own."""
    settings.MEDIA_ROOT = tmp_path / "media"
    private = settings.STORAGES["private"]
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**private, "OPTIONS": {**private["OPTIONS"], "location": tmp_path / "private"}},
    }
    return settings.MEDIA_ROOT


@pytest.fixture
def private_root(media_root, settings):
    """Where this test's private files are (exports, invoices, labels, import files)."""
    return settings.STORAGES["private"]["OPTIONS"]["location"]


@pytest.fixture
def pathless_private_storage(media_root, settings):
    """The private storage swapped for one whose files have no path, as on S3."""
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {"BACKEND": "tests.storages.PathlessStorage"},
    }


@pytest.fixture(autouse=True)
def fast_retries(settings):
    settings.PIPELINE_RETRY_DELAY_SCALE = 0.001
    # In-process retries run at once: a budget in time would never run out.
    settings.PIPELINE_RETRY_BUDGET_SCALE = 0


@pytest.fixture(autouse=True)
def empty_default_cache():
    """The default cache (per process) starts empty: /readyz keeps its worker ping there."""
    cache.clear()


@pytest.fixture
def shared_state_in_test_redis(settings):
    """Breakers and counters live in the tests' Redis database, closed and at zero at
    the start: for the tests that touch them (the sandbox fixture asks)."""
    settings.SHOPFLOW_REDIS_URL = app.conf.broker_url
    client = shared_redis()
    for key in client.scan_iter("shopflow:*"):
        client.delete(key)


@pytest.fixture
def abuse_limits(settings, shared_state_in_test_redis):
    """The real abuse limiter (kit/limits.py), which the suite's settings turn off, on
    the tests' Redis with its counters at zero; a test sets the limits it needs in
    settings.RATE_LIMITS."""
    settings.RATE_LIMITS_ENABLED = True
    settings.CACHES = {
        **settings.CACHES,
        "limits": {**settings.CACHES["limits"], "LOCATION": app.conf.broker_url},
    }
    return settings


@pytest.fixture
def staff_client(client):
    """A session of staff who may view steps: what the operations pages ask
    (ops.views.OPS_PERMISSION)."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("ops", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_step"))
    client.force_login(user)
    return client
