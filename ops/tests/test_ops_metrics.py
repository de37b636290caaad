import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app
from engine.breaker import breaker_record
from orders.models import Step
from orders.tasks import analytics_track, payment_capture, reconcile_steps
from tests.factories import checkout_body, order_place, product_create

# Reads and writes counters and breakers in Redis.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("shared_state_in_test_redis")]

TOKEN = "test-metrics-token"
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.fixture
def empty_queues():
    app.control.purge()
    yield
    app.control.purge()


def scrape(client) -> Samples:
    """GET /metrics with the token and parse it with prometheus-client's own parser."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def nonzero(samples: Samples, name: str, *keys: str) -> dict:
    """The sample's non-zero values keyed by the given label values (one key: the value)."""
    found = {}
    for labels, value in samples.get(name, {}).items():
        label = dict(labels)
        key = tuple(label[k] for k in keys)
        if value:
            found[key[0] if len(keys) == 1 else key] = value
    return found


def test_metrics_carry_steps_dead_letters_retries_breakers_and_jobs_after_known_orders(
    client, sandbox, settings, empty_queues
):
    call_command("setup_periodic_tasks")
    sent_at = timezone.now() - timedelta(seconds=30)
    PeriodicTask.objects.filter(task="orders.reconcile_steps").update(last_run_at=sent_at)
    before_job = timezone.now().timestamp()
    reconcile_steps.apply()
    after_job = timezone.now().timestamp()
    settings.BREAKER_FAILURE_THRESHOLD = 100  # the analytics failures below retry, not defer
    product = product_create(stock=10)

    paid = order_place((product, 1)).order
    payment_capture.apply(args=(paid.pk,))
    declined = order_place((product, 1), payment_token="tok_decline").order
    payment_capture.apply(args=(declined.pk,))
    dead_analytics = order_place((product, 1)).order
    payment_capture.apply(args=(dead_analytics.pk,))
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    analytics_track.apply(args=(dead_analytics.pk,))
    settings.BREAKER_FAILURE_THRESHOLD = 2
    breaker_record("erp", ok=False)
    breaker_record("erp", ok=False)
    metrics = scrape(client)

    assert nonzero(metrics, "shopflow_steps", "step", "status") == {
        ("payment_capture", "succeeded"): 2,
        ("payment_capture", "failed"): 1,
        ("payment_failed_email_send", "queued"): 1,
        # the declined order's other steps stop; the others' wait for workers that never
        # ran: ready (queued) after the payment, the label pending behind the ERP sync
        ("confirmation_email_send", "cancelled"): 1,
        ("erp_sync", "cancelled"): 1,
        ("invoice_render", "cancelled"): 1,
        ("label_purchase", "cancelled"): 1,
        ("analytics_track", "cancelled"): 1,
        ("confirmation_email_send", "queued"): 2,
        ("erp_sync", "queued"): 2,
        ("invoice_render", "queued"): 2,
        ("label_purchase", "pending"): 2,
        ("analytics_track", "queued"): 1,
        ("analytics_track", "failed"): 1,
    }
    assert nonzero(metrics, "shopflow_dead_letters", "step") == {
        "payment_capture": 1,
        "analytics_track": 1,
    }
    assert nonzero(metrics, "shopflow_step_retries_total", "step", "partner") == {
        ("analytics_track", "analytics"): 3
    }
    assert metrics["shopflow_breaker_open"] == {
        (("partner", "payment"),): 0,
        (("partner", "erp"),): 1,
        (("partner", "carrier"),): 0,
        (("partner", "analytics"),): 0,
    }
    assert nonzero(metrics, "shopflow_breaker_recent_failures", "partner") == {
        "analytics": 4,  # opening erp's breaker started its count again: its probe decides
    }
    assert nonzero(metrics, "shopflow_beat_job_last_run_timestamp_seconds", "task") == {
        "orders.reconcile_steps": sent_at.timestamp()
    }
    [success] = metrics["shopflow_beat_job_last_success_timestamp_seconds"].items()
    assert success[0] == (
        ("job", "Reconcile lost pipeline steps"),
        ("task", "orders.reconcile_steps"),
    )
    assert before_job <= success[1] <= after_job
    assert metrics["shopflow_metrics_source_up"] == {
        (("source", "database"),): 1,
        (("source", "broker"),): 1,
        (("source", "redis"),): 1,
    }


def test_step_duration_and_queue_wait_histograms_count_the_steps_of_the_window(client):
    now = timezone.now()
    order = order_place((product_create(), 1)).order

    def times(name: str, *, queued: float, started: float, finished: float, attempts=1):
        Step.objects.filter(order=order, name=name).update(
            status=Step.Status.SUCCEEDED,
            attempts=attempts,
            queued_at=now - timedelta(seconds=queued),
            started_at=now - timedelta(seconds=started),
            finished_at=now - timedelta(seconds=finished),
        )

    times("payment_capture", queued=10, started=9.9, finished=9.4)  # waited 0.1 s, ran 0.5 s
    times("erp_sync", queued=9, started=3, finished=1)  # waited 6 s, ran 2 s
    times("invoice_render", queued=9, started=8.8, finished=8.7)  # waited 0.2 s, ran 0.1 s
    # A retry starts after its backoff: its wait is not a queue wait, its run time counts.
    times("label_purchase", queued=9, started=7, finished=4, attempts=2)  # ran 3 s
    times("analytics_track", queued=7300, started=7250, finished=7200)  # outside the 900 s window
    metrics = scrape(client)

    durations = metrics["shopflow_step_duration_seconds_bucket"]
    assert {
        step: [
            durations[(("le", le), ("step", step))] for le in ("0.1", "0.5", "1.0", "2.5", "5.0")
        ]
        for step in ("payment_capture", "erp_sync", "invoice_render", "label_purchase")
    } == {
        "payment_capture": [0, 1, 1, 1, 1],
        "erp_sync": [0, 0, 0, 1, 1],
        "invoice_render": [1, 1, 1, 1, 1],
        "label_purchase": [0, 0, 0, 0, 1],
    }
    assert metrics["shopflow_step_duration_seconds_gcount"] == {
        (("step", "payment_capture"),): 1,
        (("step", "erp_sync"),): 1,
        (("step", "invoice_render"),): 1,
        (("step", "label_purchase"),): 1,
    }
    assert metrics["shopflow_step_duration_seconds_gsum"][(("step", "erp_sync"),)] == 2.0
    waits = metrics["shopflow_step_queue_wait_seconds_bucket"]
    assert [waits[(("le", le), ("queue", "medium"))] for le in ("0.1", "0.25", "5.0", "10.0")] == [
        0,
        1,
        1,
        2,
    ]
    assert waits[(("le", "0.1"), ("queue", "high"))] == 1
    assert metrics["shopflow_step_queue_wait_seconds_gcount"] == {
        (("queue", "high"),): 1,
        (("queue", "medium"),): 2,
    }


def test_queue_depth_comes_from_the_broker_and_oldest_wait_from_the_step_records(
    client, empty_queues
):
    for _ in range(3):
        app.send_task("ops.test.never_consumed", queue="bulk")
    order = order_place((product_create(), 1)).order
    order.steps.filter(name="payment_capture").update(status=Step.Status.SUCCEEDED)
    Step.objects.filter(order=order, name="analytics_track").update(
        status=Step.Status.QUEUED, queued_at=timezone.now() - timedelta(seconds=120)
    )

    metrics = scrape(client)

    assert nonzero(metrics, "shopflow_queue_depth", "queue") == {"bulk": 3}
    oldest = nonzero(metrics, "shopflow_queue_oldest_wait_seconds", "queue")
    assert list(oldest) == ["low"]
    assert 120 <= oldest["low"] < 125


def test_checkout_latency_is_observed_per_route_and_status_code(client):
    product = product_create()
    before = scrape(client).get("shopflow_checkout_request_duration_seconds_count", {})

    for body in (checkout_body((product.sku, 1)), checkout_body((product.sku, 0))):
        client.post("/api/v1/checkout", data=json.dumps(body), content_type="application/json")
    client.get("/api/v1/products")
    after = scrape(client)["shopflow_checkout_request_duration_seconds_count"]

    observed = {labels: n - before.get(labels, 0) for labels, n in after.items()}
    assert {labels: n for labels, n in observed.items() if n} == {
        (("code", "201"), ("route", "api-checkout")): 1,
        (("code", "400"), ("route", "api-checkout")): 1,
    }


def test_metrics_refuse_a_request_without_the_token_or_with_a_wrong_one(client):
    missing = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    basic = client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})

    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert missing["WWW-Authenticate"] == 'Bearer realm="shopflow metrics"'
    assert missing.content == b"A bearer token or a staff login is required.\n"


def test_metrics_answer_the_token_in_prometheus_text_format(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE shopflow_queue_depth gauge" in response.content


def test_a_scraper_asking_for_openmetrics_gets_the_step_histograms_typed_as_gauge_histograms(
    client,
):
    response = client.get(
        "/metrics",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/openmetrics-text; version=1.0.0",
        },
    )

    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    families = {
        family.name: family.type
        for family in openmetrics_families(response.content.decode())
        if family.name.startswith("shopflow_step_")
    }
    assert families == {
        "shopflow_step_crashes": "counter",
        "shopflow_step_runs_abandoned": "counter",
        "shopflow_step_duration_seconds": "gaugehistogram",
        "shopflow_step_queue_wait_seconds": "gaugehistogram",
        "shopflow_step_retries": "counter",
    }


def test_metrics_answer_a_staff_session_that_may_view_steps_but_not_another_user(client):
    client.force_login(User.objects.create_user("shopper", password="x"))
    shopper = client.get("/metrics")
    client.force_login(User.objects.create_user("clerk", password="x", is_staff=True))
    clerk = client.get("/metrics")
    ops = User.objects.create_user("ops", password="x", is_staff=True)
    ops.user_permissions.add(Permission.objects.get(codename="view_step"))
    client.force_login(ops)
    staff = client.get("/metrics")

    assert (shopper.status_code, clerk.status_code, staff.status_code) == (401, 401, 200)


def test_without_a_configured_token_no_bearer_gets_in(client, settings):
    settings.METRICS_TOKEN = ""

    response = client.get("/metrics", headers={"Authorization": "Bearer "})

    assert response.status_code == 401


def test_steps_whose_effect_nobody_knows_are_counted_for_ops(client):
    waiting, running = (order_place((product_create(), 1)).order for _ in range(2))
    Step.objects.filter(order=waiting, name="erp_sync").update(
        status=Step.Status.RETRYING, effect_unknown=True
    )
    # A running step's effect is unknown until its run ends: not counted.
    Step.objects.filter(order=running, name="erp_sync").update(
        status=Step.Status.RUNNING, effect_unknown=True
    )

    metrics = scrape(client)

    assert nonzero(metrics, "shopflow_effects_unknown", "step") == {"erp_sync": 1}


def test_metrics_count_the_runs_abandoned_past_their_time_limit_and_the_deaths_blamed_per_step(
    client,
):
    orders = [order_place((product_create(), 1)).order for _ in range(2)]
    Step.objects.filter(order__in=orders, name="invoice_render").update(timeouts=1)
    Step.objects.filter(order=orders[0], name="payment_capture").update(crashes=2)

    metrics = scrape(client)

    assert nonzero(metrics, "shopflow_step_runs_abandoned_total", "step") == {"invoice_render": 2}
    assert nonzero(metrics, "shopflow_step_crashes_total", "step") == {"payment_capture": 2}
