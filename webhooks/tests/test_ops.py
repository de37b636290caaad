"""What ops see of the partners' events: the daily cleanup, /metrics and the alert."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Alert
from ops.alerts import alerts_check
from orders.services.cleanup import records_cleanup
from webhooks.models import InboxEvent
from webhooks.services import order_events_process
from webhooks.tests.conftest import an_order, receive, send

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_daily_cleanup_purges_processed_events_past_retention_and_keeps_failed_ones(
    shop_webhooks, settings
):
    settings.CLEANUP_BATCH = 2
    order = an_order()
    for minute in range(3):
        receive(shop_webhooks, "carrier", "shipment.in_transit", order.number, minute)
    receive(shop_webhooks, "carrier", "shipment.in_transit", "SF-NEVER", 5)
    receive(shop_webhooks, "payment", "payout.paid", "", 6)  # ignored at once
    order_events_process(order_number=order.number)
    InboxEvent.objects.filter(order_number="SF-NEVER").update(
        status="failed", processed_at=timezone.now() - timedelta(days=365)
    )
    old = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS, seconds=1)
    InboxEvent.objects.filter(order_number=order.number, occurred_at__minute__lt=2).update(
        processed_at=old
    )
    InboxEvent.objects.filter(type="payout.paid").update(processed_at=old)

    report = records_cleanup()

    assert report.deleted["processed webhook events"] == 3
    left = set(InboxEvent.objects.values_list("order_number", "status"))
    assert left == {(order.number, "processed"), ("SF-NEVER", "failed")}


def scrape(client, settings) -> dict:
    settings.METRICS_TOKEN = "t"
    text = client.get("/metrics", headers={"Authorization": "Bearer t"}).content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("shopflow_webhook")
    }


def test_metrics_count_events_received_processed_retrying_and_ignored_by_partner_and_type(
    shop_webhooks, client, settings
):
    order = an_order()
    receive(shop_webhooks, "carrier", "shipment.delivered", order.number, 1)
    receive(shop_webhooks, "carrier", "shipment.delivered", "SF-LATER", 1)
    receive(shop_webhooks, "payment", "payout.paid", "", 2)
    send(shop_webhooks, partner="carrier", event={"type": "label.printed"}, secret="forged")
    order_events_process(order_number=order.number)
    order_events_process(order_number="SF-LATER")

    samples = scrape(client, settings)

    def events(partner, kind, outcome):
        labels = (("outcome", outcome), ("partner", partner), ("type", kind))
        return samples[("shopflow_webhook_events_total", labels)]

    assert events("carrier", "shipment.delivered", "received") == 2
    assert events("carrier", "shipment.delivered", "processed") == 1
    assert events("carrier", "shipment.delivered", "retrying") == 1
    assert events("payment", "payout.paid", "received") == 1
    assert events("payment", "payout.paid", "ignored") == 1
    inbox = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "shopflow_webhook_inbox_events" and value
    }
    assert inbox == {
        (("partner", "carrier"), ("status", "processed")): 1,
        (("partner", "carrier"), ("status", "received")): 1,
        (("partner", "payment"), ("status", "ignored")): 1,
    }


def test_events_that_keep_failing_alert_ops_once(shop_webhooks, settings):
    settings.ALERT_WEBHOOK_FAILURES = 2
    settings.ALERT_DEAD_LETTERS = 1000
    for minute in range(2):
        receive(shop_webhooks, "carrier", "shipment.delivered", f"SF-GONE{minute}", minute)
    InboxEvent.objects.update(status="failed", attempted_at=timezone.now())
    receive(shop_webhooks, "payment", "dispute.opened", "SF-GONE9", 3, dispute_id="dp")
    mail.outbox.clear()

    first = alerts_check()
    alerts_check()

    assert [c.subject for c in first if c.kind == "webhooks_failing"] == ["carrier"]
    assert list(Alert.objects.values_list("kind", "subject")) == [("webhooks_failing", "carrier")]
    [message] = [m for m in mail.outbox if "webhook" in m.body]
    assert message.body == (
        "2 carrier webhook events failed or still wait after 3 tries in the last hour "
        "(threshold 2); see Partner webhooks › Webhook events."
    )
