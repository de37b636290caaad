"""Every app that emails goes through the outbox's one entry point: each email comes from
its template, and one owed twice at once goes out once."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from notifications.alerts import alert_open
from notifications.models import Alert, OutboxEmail
from orders.models import OrderExport
from orders.services.emails import order_email_send
from orders.services.exports import order_export_email_send
from shop.imports import import_summary_send
from shop.models import CatalogJob, Product, Subscription
from shop.subscriptions import lifecycle_due_run, subscription_cancel
from tests.factories import order_place, product_create
from tests.outbox import senders_race

pytestmark = pytest.mark.django_db


@pytest.fixture
def marked_templates(settings, tmp_path):
    """Templates that shadow every email's subject and text: an email that still has a
    string of its own does not show its kind's marks."""
    folder = tmp_path / "notifications" / "email"
    folder.mkdir(parents=True)
    for kind in OutboxEmail.Kind.values:
        (folder / f"{kind}.subject.txt").write_text(f"subject of {kind}\n")
        (folder / f"{kind}.txt").write_text(f"body of {kind}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}, *settings.TEMPLATES[1:]]


def test_every_outbox_email_comes_from_a_template(
    marked_templates, django_user_model, django_capture_on_commit_callbacks
):
    order = order_place((product_create(), 1)).order
    for kind in ("order_confirmation", "payment_failed", "order_cancelled", "review_request"):
        order_email_send(order=order, kind=kind)
    job = CatalogJob.objects.create(requested_by="ops@shop.example", status="done")
    import_summary_send(job=job)
    requester = django_user_model.objects.create_user("olga", "olga@shop.example")
    export = OrderExport.objects.create(
        requester=requester, filters={}, status="done", expires_at=timezone.now()
    )
    order_export_email_send(export=export)
    subscription = Subscription.objects.create(
        email="ada@example.com",
        name="Ada",
        product=Product.objects.create(sku="SUB", name="Club", price_cents=1, is_subscription=True),
    )
    cancelled = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
    subscription_cancel(subscription_id=subscription.pk, now=cancelled)
    lifecycle_due_run(now=cancelled + timedelta(days=8))
    with django_capture_on_commit_callbacks(execute=True):
        alert_open(kind=Alert.Kind.DEAD_LETTERS, subject="all", message="3 dead letters")

    assert sorted((m.subject, m.body) for m in mail.outbox) == sorted(
        (f"subject of {kind}", f"body of {kind}") for kind in OutboxEmail.Kind.values
    )


@pytest.mark.django_db(transaction=True)
def test_import_summary_email_created_twice_concurrently_is_sent_once(monkeypatch):
    assert connection.vendor == "postgresql", "the unique key is tested on PostgreSQL"
    job = CatalogJob.objects.create(requested_by="ops@shop.example", status="done")

    outcomes = senders_race(
        monkeypatch,
        lambda: import_summary_send(job=CatalogJob.objects.get(pk=job.pk)),
        senders=2,
    )

    assert set(outcomes) <= {None, "EmailInFlight"}
    [message] = mail.outbox
    assert message.subject == f"Catalog import {job.pk}: done"
    assert OutboxEmail.objects.filter(kind="import_done").count() == 1
