from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from notifications.models import OutboxEmail
from orders.models import IdempotencyKey, Order, ProductSalesDay, SalesDay, Step, Watermark
from orders.services.backfill import sales_backfill
from orders.services.cleanup import records_cleanup
from tests.factories import order_place, product_create

pytestmark = pytest.mark.django_db


def order_on(day: int, *items, status: str, channel: str = "api") -> Order:
    order = order_place(*items).order
    Order.objects.filter(pk=order.pk).update(
        created_at=datetime(2026, 5, day, 12, tzinfo=UTC), status=status, channel=channel
    )
    return order


def snapshot() -> tuple[list, list]:
    return (
        list(
            SalesDay.objects.order_by("day").values_list(
                "day", "orders", "units", "revenue_cents", "cancelled", "payment_failed"
            )
        ),
        list(
            ProductSalesDay.objects.order_by("day", "sku", "channel").values_list(
                "day", "sku", "channel", "units", "revenue_cents"
            )
        ),
    )


def test_backfill_counts_sold_orders_per_day_product_and_channel():
    mug = product_create(price_cents=1000, sku="MUG")
    tee = product_create(price_cents=2500, sku="TEE")
    order_on(1, (mug, 2), (tee, 1), status="completed")
    order_on(1, (mug, 1), status="paid", channel="web")
    order_on(1, (tee, 3), status="cancelled")
    order_on(2, (tee, 1), status="payment_failed")

    report = sales_backfill()

    assert report.days == 2
    days, products = snapshot()
    may1, may2 = datetime(2026, 5, 1).date(), datetime(2026, 5, 2).date()
    assert days == [(may1, 2, 4, 5500, 1, 0), (may2, 0, 0, 0, 0, 1)]
    assert products == [
        (may1, "MUG", "api", 2, 2000),
        (may1, "MUG", "web", 1, 1000),
        (may1, "TEE", "api", 1, 2500),
    ]


def test_incremental_backfill_gives_the_same_snapshots_as_a_run_from_scratch():
    mug = product_create(price_cents=1000)
    orders = [order_on(1 + n % 5, (mug, 1 + n % 3), status="completed") for n in range(20)]
    sales_backfill(now=timezone.now())
    Order.objects.filter(pk__in=[o.pk for o in orders[:4]]).update(
        status="cancelled", updated_at=timezone.now() + timedelta(seconds=1)
    )
    order_on(7, (mug, 2), status="paid")
    Order.objects.filter(created_at__day=7).update(updated_at=timezone.now() + timedelta(seconds=1))

    second = sales_backfill(now=timezone.now() + timedelta(seconds=2))
    incremental = snapshot()
    Watermark.objects.all().delete()
    SalesDay.objects.all().delete()
    ProductSalesDay.objects.all().delete()
    sales_backfill(now=timezone.now() + timedelta(seconds=3))

    assert second.days == 5  # the four days of the cancelled orders and the new day 7
    assert snapshot() == incremental
    assert sum(row[4] for row in incremental[0]) == 4


def test_a_second_backfill_with_nothing_changed_recomputes_nothing():
    order_on(3, (product_create(), 1), status="completed")
    sales_backfill()

    assert sales_backfill().days == 0


def test_cleanup_deletes_only_what_is_past_retention_and_keeps_dead_letters(settings):
    settings.CLEANUP_BATCH = 2
    now = timezone.now()
    old = now - timedelta(days=settings.STEP_RETENTION_DAYS + 1)
    done = order_place((product_create(), 1)).order
    Order.objects.filter(pk=done.pk).update(status="completed")
    Step.objects.filter(order=done).update(status="succeeded", finished_at=old)
    Step.objects.filter(order=done, name="label_purchase").update(status="failed")  # a dead letter
    running = order_place((product_create(), 1), email="bob@example.com").order
    Step.objects.filter(order=running).update(
        status="succeeded", finished_at=old
    )  # order still open
    IdempotencyKey.objects.create(
        key="old", fingerprint="x", order=done, expires_at=now - timedelta(seconds=1)
    )
    IdempotencyKey.objects.create(
        key="new", fingerprint="x", order=done, expires_at=now + timedelta(hours=1)
    )
    OutboxEmail.objects.create(
        key=f"order:{done.number}:order_confirmation",
        kind="order_confirmation",
        to="a@example.com",
        status="sent",
        sent_at=now - timedelta(days=settings.EMAIL_RETENTION_DAYS + 1),
    )
    OutboxEmail.objects.create(
        key=f"order:{running.number}:order_confirmation",
        kind="order_confirmation",
        to="b@example.com",
        status="sent",
        sent_at=now,
    )

    report = records_cleanup(now=now)
    again = records_cleanup(now=now)

    assert report.deleted == {
        "expired idempotency keys": 1,
        "finished steps of ended orders": 5,
        "sent emails": 1,
        "expired export files": 0,
        "processed webhook events": 0,
    }
    assert set(again.deleted.values()) == {0}
    assert list(Step.objects.filter(order=done).values_list("name", "status")) == [
        ("label_purchase", "failed")
    ]
    assert Step.objects.filter(order=running).count() == 6
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert list(OutboxEmail.objects.values_list("to", flat=True)) == ["b@example.com"]
