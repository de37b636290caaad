import threading

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from engine.ticks import once_per_tick
from tests.threads import at_once

pytestmark = pytest.mark.django_db


def test_setup_periodic_tasks_registers_each_job_once_and_keeps_operator_edits(capsys):
    call_command("setup_periodic_tasks")
    reconcile = PeriodicTask.objects.get(task="orders.reconcile_steps")
    reconcile.interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    reconcile.save()

    call_command("setup_periodic_tasks")

    assert sorted(PeriodicTask.objects.values_list("task", "expire_seconds")) == [
        ("notifications.check_alerts", 50),
        ("orders.backfill_sales", 3 * 3600),
        ("orders.cleanup_records", 3 * 3600),
        ("orders.reconcile_payments", 3 * 3600),
        ("orders.reconcile_steps", 50),
        ("orders.run_follow_ups", 240),
        ("shop.retry_image_downloads", 240),
        ("shop.run_subscription_lifecycle", 240),
        ("shop.sync_stock_from_erp", 1800),
        ("webhooks.sweep_events", 50),
    ]
    backfill = PeriodicTask.objects.get(task="orders.backfill_sales")
    assert (backfill.crontab.hour, backfill.crontab.minute, str(backfill.crontab.timezone)) == (
        "2",
        "30",
        "Europe/Berlin",
    )
    reconcile.refresh_from_db()
    assert (reconcile.interval.every, reconcile.interval.period) == (5, "minutes")
    assert all(t.description for t in PeriodicTask.objects.all())
    assert capsys.readouterr().out.count("kept: ") == 10


@pytest.mark.django_db(transaction=True)  # each run takes the tick on its own connection
def test_three_runs_of_the_same_tick_at_once_run_the_job_once():
    runs = []

    @once_per_tick("test-job", lease_s=5)
    def job():
        runs.append(threading.get_ident())
        return "ran"

    results = at_once(job, threads=3)

    assert len(runs) == 1
    assert sorted(results, key=str) == [None, None, "ran"]
