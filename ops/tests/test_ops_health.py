from datetime import timedelta

import pytest
from celery import beat
from celery.signals import beat_init
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app
from ops import health
from ops.health import Check, beat_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client, settings):
    """/readyz shows its checks to who may read /metrics: these requests carry its token."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {settings.METRICS_TOKEN}"
    return client


def beat_sent(*, seconds_ago: float, task: str = "orders.reconcile_steps") -> None:
    call_command("setup_periodic_tasks")
    PeriodicTask.objects.filter(task=task).update(
        last_run_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


def beat_started() -> None:
    """What celery beat does as it starts, before its first tick."""
    beat_init.send(sender=beat.Service(app=app))


@pytest.fixture
def workers_answer(settings, monkeypatch):
    """The broker of the tests' Redis, and every queue's worker answering: app tests run
    no worker (tests/test_ops_readiness.py runs a real one)."""
    settings.READY_TIMEOUT_S = 0.3
    settings.CELERY_BROKER_URL = app.conf.broker_url
    monkeypatch.setattr(health, "workers_check", lambda broker, timeout: Check(True))


def test_healthz_answers_ok_without_asking_anything_else(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_503_and_names_each_queue_without_a_worker(client, settings):
    settings.READY_TIMEOUT_S = 0.3
    settings.CELERY_BROKER_URL = app.conf.broker_url  # no worker listens on the tests' Redis db
    app.control.purge()
    beat_sent(seconds_ago=10)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True}
    assert body["checks"]["workers"] == {
        "ok": False,
        "queues": {"high": 0, "medium": 0, "low": 0, "bulk": 0, "control": 0, "quarantine": 0},
        "error": "no worker answers for high, medium, low, bulk, control, quarantine",
    }
    assert body["checks"]["beat"]["ok"] is True


def test_beat_is_alive_while_an_enabled_job_was_sent_within_the_limit(settings):
    settings.READY_BEAT_MAX_AGE_S = 180
    beat_sent(seconds_ago=60)
    now = timezone.now()

    check = beat_check(now=now)

    assert check.ok is True
    assert 60 <= check.detail["age_s"] < 61
    assert check.detail["max_age_s"] == 180


def test_beat_is_down_when_its_newest_job_is_older_than_the_limit(settings):
    settings.READY_BEAT_MAX_AGE_S = 180
    beat_sent(seconds_ago=300)

    check = beat_check(now=timezone.now())

    assert check.ok is False
    assert check.detail["error"] == "beat has sent no periodic job for 300s"


def test_a_disabled_job_is_no_sign_of_beat_and_no_job_sent_means_down():
    beat_sent(seconds_ago=5)
    PeriodicTask.objects.update(enabled=False)

    check = beat_check(now=timezone.now())

    assert check.ok is False
    assert check.detail == {
        "error": "no periodic job is enabled (manage.py setup_periodic_tasks registers them)",
        "max_age_s": 180.0,
    }


def test_readyz_names_the_broker_that_does_not_answer(client, settings):
    settings.READY_TIMEOUT_S = 0.3
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] is False
    assert checks["broker"]["error"].startswith("OperationalError: Error 111 connecting to")
    assert checks["workers"] == {"ok": False, "error": "the broker does not answer"}


def test_readyz_is_200_as_soon_as_beat_has_started_before_it_sends_any_job(client, workers_answer):
    call_command("setup_periodic_tasks")  # the first job is due a minute from now
    beat_started()

    response = client.get("/readyz")

    assert response.status_code == 200, response.json()
    beat_detail = response.json()["checks"]["beat"]
    assert beat_detail["ok"] is True
    assert sorted(beat_detail) == ["age_s", "max_age_s", "ok", "started_at"]
    assert beat_detail["max_age_s"] == 180


def test_readyz_is_503_naming_beat_when_beat_has_never_started(client, workers_answer):
    call_command("setup_periodic_tasks")

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["beat"] == {
        "ok": False,
        "error": "beat has not started: no start mark and no periodic job sent",
        "max_age_s": 180.0,
    }
    assert [name for name, check in checks.items() if not check["ok"]] == ["beat"]


def test_beat_that_started_longer_ago_than_the_limit_and_sent_no_job_is_down(settings):
    settings.READY_BEAT_MAX_AGE_S = 180
    call_command("setup_periodic_tasks")
    beat_started()

    check = beat_check(now=timezone.now() + timedelta(seconds=300))

    assert check.ok is False
    assert check.detail["error"] == "beat started 300s ago and has sent no periodic job since"


def test_a_beat_start_is_no_sign_of_readiness_when_no_periodic_job_is_enabled():
    call_command("setup_periodic_tasks")
    PeriodicTask.objects.update(enabled=False)
    beat_started()

    check = beat_check(now=timezone.now())

    assert check.ok is False
    assert check.detail == {
        "error": "no periodic job is enabled (manage.py setup_periodic_tasks registers them)",
        "max_age_s": 180.0,
    }
