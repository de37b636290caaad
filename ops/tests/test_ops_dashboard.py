import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.celery import app
from engine.breaker import breaker_record
from ops.dashboard import activity_chart
from orders.models import Order, Step
from tests.factories import order_place, product_create

# Reads and writes counters and breakers in Redis.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("shared_state_in_test_redis")]

DASHBOARD = "/admin/operations/"


@pytest.fixture
def empty_queues():
    app.control.purge()
    yield
    app.control.purge()


def section(html: str, section_id: str) -> str:
    """The dashboard module with that id, its tags stripped and its spaces squeezed."""
    [module] = re.findall(rf'<div class="module" id="{section_id}">(.*?)\n</div>', html, re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", module).split())


def alerts(html: str) -> list[str]:
    """The texts shown past a threshold (red), in page order."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", text).split())
        for text in re.findall(r'class="[^"]*ops-alert[^"]*">(.*?)</td>', html, re.S)
    ]


def test_the_dashboard_shows_queues_steps_dead_letters_breakers_and_jobs_with_thresholds(
    staff_client, settings, empty_queues
):
    settings.ALERT_DEAD_LETTERS = 1
    settings.BREAKER_FAILURE_THRESHOLD = 1
    call_command("setup_periodic_tasks")
    PeriodicTask.objects.filter(task="orders.reconcile_steps").update(
        last_run_at=timezone.now() - timedelta(minutes=10)
    )
    PeriodicTask.objects.exclude(task="orders.reconcile_steps").update(enabled=False)
    now = timezone.now()
    for _ in range(2):
        order = order_place((product_create(), 1)).order
        Step.objects.filter(order=order, name="analytics_track").update(
            status=Step.Status.FAILED, finished_at=now
        )
    # Past high's promise (30 s); medium's (5 min) it keeps.
    Step.objects.filter(name__in=("payment_capture", "erp_sync")).update(
        status=Step.Status.QUEUED, queued_at=now - timedelta(seconds=90)
    )
    Step.objects.filter(name="invoice_render").update(status=Step.Status.SUCCEEDED, finished_at=now)
    breaker_record("carrier", ok=False)

    # At the moment the steps were set: the oldest wait reads 90 s however long the
    # set-up and the page took (on a loaded machine they took over half a second).
    with time_machine.travel(now, tick=False):
        response = staff_client.get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    # The 90 s waits count the page's load too: 91 s on a loaded machine.
    assert re.fullmatch(
        "Queues queue depth oldest waiting promise last taken done last hour failed last hour "
        r"high 0 9[01]s 30s – 0 0 medium 0 9[01]s 300s – 2 0 low 0 0s 1800s – 0 2 "
        "bulk 0 0s 3600s – 0 0 control 0 0s – – 0 0 quarantine 0 0s – – 0 0",
        section(html, "ops-queues"),
    ), section(html, "ops-queues")
    assert section(html, "ops-dead-letters") == "Dead letters all dead letters 2 analytics_track 2"
    assert 'href="/admin/orders/deadletter/?name=analytics_track"' in html
    assert re.fullmatch(
        r"Partner circuit breakers partner state recent failures probes sent next probe within "
        r"payment closed 0 0 – erp closed 0 0 – carrier open 0 0 \d+\.\ds analytics closed 0 0 –",
        section(html, "ops-breakers"),
    )
    [reconcile_run] = re.findall(
        r"Reconcile lost pipeline steps every 60 seconds (\S+ \S+ \(\d+s late\)) never",
        section(html, "ops-jobs"),
    )
    assert "Check dead letters, breakers and queues (disabled) every 60 seconds never never" in (
        section(html, "ops-jobs")
    )
    assert section(html, "ops-steps") == (
        "Steps by status step pending queued running retrying succeeded failed cancelled "
        "payment_capture 0 2 0 0 0 0 0 confirmation_email_send 2 0 0 0 0 0 0 "
        "erp_sync 0 2 0 0 0 0 0 invoice_render 0 0 0 0 2 0 0 label_purchase 2 0 0 0 0 0 0 "
        "analytics_track 0 0 0 0 0 2 0"
    )
    # Past ALERT_*: the high queue's age, low's failures, the dead letters, the open
    # breaker, the late job, the failed analytics steps.
    assert alerts(html) in (
        ["90s", "2", "2", "open", reconcile_run, "2"],
        ["91s", "2", "2", "open", reconcile_run, "2"],
    )
    assert reconcile_run.endswith(("(540s late)", "(541s late)"))  # 10 min ago, due after 1


def test_the_dashboard_sends_anyone_but_staff_to_the_admin_login(client):
    anonymous = client.get(DASHBOARD)
    client.force_login(User.objects.create_user("shopper", password="x"))
    shopper = client.get(DASHBOARD)

    for response in (anonymous, shopper):
        assert response.status_code == 302
        assert response["Location"] == "/admin/login/?next=/admin/operations/"


def test_the_admin_index_links_the_dashboard(staff_client):
    response = staff_client.get("/admin/")

    assert response.status_code == 200
    assert '<a href="/admin/operations/">Operations dashboard</a>' in response.content.decode()


def test_a_section_whose_source_does_not_answer_shows_its_error_and_the_rest_shows(
    staff_client, settings
):
    settings.SHOPFLOW_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = staff_client.get(DASHBOARD)

    html = response.content.decode()
    assert response.status_code == 200
    assert section(html, "ops-breakers").startswith(
        "Partner circuit breakers Unavailable: ConnectionError: Error 111 connecting to"
    )
    assert "Last successes unavailable: ConnectionError" in section(html, "ops-jobs")
    assert section(html, "ops-dead-letters") == "Dead letters all dead letters 0"


def test_the_activity_chart_has_a_bar_per_hour_scaled_to_the_busiest_hour():
    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    product = product_create()
    for minutes_ago, count in ((20, 4), (80, 2)):  # 12:10 and 11:10
        for _ in range(count):
            order = order_place((product, 1)).order
            Order.objects.filter(pk=order.pk).update(
                created_at=now - timedelta(minutes=minutes_ago)
            )
    Step.objects.filter(name="label_purchase").update(
        status=Step.Status.FAILED, finished_at=now - timedelta(minutes=70)
    )

    chart = activity_chart(now=now)

    assert len(chart.orders) == len(chart.failures) == 24
    assert chart.peak == 6  # six labels failed between 11:00 and 12:00
    assert chart.baseline - chart.top == 146  # the plot's height in pixels
    assert [bar.height for bar in chart.orders[-3:]] == [0, 48.7, 97.3]  # 2 and 4 of 6
    assert [bar.height for bar in chart.failures[-3:]] == [0, 146, 0]
    assert chart.orders[-1].title == "12:00–13:00 UTC: 4 orders, 0 failed steps"
    assert chart.failures[-2].title == "11:00–12:00 UTC: 2 orders, 6 failed steps"
    assert [label for _, label in chart.hour_marks] == ["13:00", "19:00", "01:00", "07:00"]
