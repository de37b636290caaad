import json
import logging
import os
import subprocess
import sys

import pytest

from harness.procfile import ROOT
from kit.logs import (
    JsonFormatter,
    TaskContextFilter,
    TextFormatter,
    log_context_bind,
    log_context_clear,
)
from orders.tasks import analytics_track, payment_capture
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_context_left_behind():
    yield
    log_context_clear()


@pytest.fixture
def logs(caplog):
    """caplog at INFO, its records with the task context as the handler sees it."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(TaskContextFilter())
    return caplog


def test_every_line_logged_inside_a_retried_step_carries_its_order_step_and_attempt(
    logs, sandbox, settings
):
    settings.BREAKER_FAILURE_THRESHOLD = 100
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))
    sandbox.post("/control", json={"failure_rate": 1.0}).raise_for_status()
    logs.clear()

    analytics_track.apply(args=(order.pk,))
    records = logs.records

    # Celery's own lines (retry, failure) carry it as well as ours.
    assert [(r.name, r.order, r.step, r.attempt) for r in records] == [
        ("engine.steps", order.number, "analytics_track", 1),
        ("celery.app.trace", order.number, "analytics_track", 1),
        ("engine.steps", order.number, "analytics_track", 2),
        ("celery.app.trace", order.number, "analytics_track", 2),
        ("engine.steps", order.number, "analytics_track", 3),
        ("celery.app.trace", order.number, "analytics_track", 3),
        ("engine.steps", order.number, "analytics_track", 4),
        ("celery.app.trace", order.number, "analytics_track", 4),
    ]
    assert "retry: Retry in" in records[1].getMessage()
    assert "raised unexpected: PartnerUnavailable" in records[-1].getMessage()


def test_a_line_logged_after_the_task_carries_no_task_context(logs, sandbox):
    order = order_place((product_create(), 1)).order
    payment_capture.apply(args=(order.pk,))

    logging.getLogger("shopflow.test").info("after the task")

    assert hasattr(logs.records[-2], "order")  # the task's last line
    assert (logs.records[-1].getMessage(), hasattr(logs.records[-1], "order")) == (
        "after the task",
        False,
    )


def test_json_lines_hold_the_message_the_context_and_the_extras():
    log_context_bind(order="SF-TEST0001", step="invoice_render", attempt=2)
    record = logging.makeLogRecord(
        {"name": "orders.x", "levelname": "WARNING", "msg": "took %.1fs", "args": (1.25,)}
    )
    record.partner = "erp"
    record.request = object()  # not JSON: left out rather than written as a repr
    TaskContextFilter().filter(record)

    line = json.loads(JsonFormatter().format(record))

    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "WARNING",
        "logger": "orders.x",
        "message": "took 1.2s",
        "order": "SF-TEST0001",
        "step": "invoice_render",
        "attempt": 2,
        "partner": "erp",
    }


def test_text_lines_end_with_the_task_context_when_there_is_one():
    formatter = TextFormatter("%(levelname)s %(name)s %(message)s")
    inside = logging.makeLogRecord({"name": "a", "levelname": "INFO", "msg": "sent"})
    inside.order, inside.step, inside.attempt = "SF-TEST0001", "confirmation_email_send", 1
    outside = logging.makeLogRecord({"name": "a", "levelname": "INFO", "msg": "idle"})

    assert (
        formatter.format(inside)
        == "INFO a sent [order=SF-TEST0001 step=confirmation_email_send attempt=1]"
    )
    assert formatter.format(outside) == "INFO a idle"


@pytest.mark.parametrize(
    ("env", "json_lines"),
    [
        ({"SHOPFLOW_ENV": "production", "DJANGO_SECRET_KEY": "x"}, True),
        ({"SHOPFLOW_ENV": "development", "LOG_FORMAT": "json"}, True),
        ({"SHOPFLOW_ENV": "development"}, False),
    ],
)
def test_logs_are_json_lines_in_production_or_when_asked_and_text_otherwise(env, json_lines):
    script = "import django, logging; django.setup(); logging.getLogger('probe').warning('hi')"
    clean = {k: v for k, v in os.environ.items() if k not in ("SHOPFLOW_ENV", "LOG_FORMAT")}

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )

    [line] = result.stderr.splitlines()
    if json_lines:
        assert {k: v for k, v in json.loads(line).items() if k != "time"} == {
            "level": "WARNING",
            "logger": "probe",
            "message": "hi",
        }
    else:
        assert line.endswith(" WARNING probe hi")
