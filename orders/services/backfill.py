"""Nightly analytics backfill: per-day sales and per-product/per-channel snapshots.

Incremental: only the days of orders that changed since the last run (a watermark
on Order.updated_at) are recomputed, each from scratch with aggregate queries in
the database, so memory stays flat however many orders there are, and the result
is the same as recomputing everything.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orders.models import Order, OrderLine, ProductSalesDay, SalesDay, Watermark

WATERMARK = "sales_backfill"
DAYS_PER_BATCH = 31


@dataclass(frozen=True)
class BackfillReport:
    days: int
    watermark: datetime


def sales_backfill(*, now: datetime | None = None) -> BackfillReport:
    """Recompute the snapshots of every day with orders changed since the watermark."""
    now = now or timezone.now()
    mark = Watermark.objects.filter(name=WATERMARK).values_list("value", flat=True).first()
    changed = Order.objects.filter(updated_at__lte=now)
    if mark:
        changed = changed.filter(updated_at__gt=mark)
    days = list(
        changed.annotate(day=TruncDate("created_at"))
        .values_list("day", flat=True)
        .distinct()
        .order_by("day")
    )
    for start in range(0, len(days), DAYS_PER_BATCH):
        snapshots_recompute(days=days[start : start + DAYS_PER_BATCH])
    # Orders changed during the run have updated_at > now: the next run takes them.
    Watermark.objects.update_or_create(name=WATERMARK, defaults={"value": now})
    return BackfillReport(days=len(days), watermark=now)


@transaction.atomic
def snapshots_recompute(*, days: Iterable[date]) -> None:
    """Replace the snapshots of these days with ones computed from the orders."""
    days = list(days)
    SalesDay.objects.filter(day__in=days).delete()
    ProductSalesDay.objects.filter(day__in=days).delete()
    orders = Order.objects.annotate(day=TruncDate("created_at")).filter(day__in=days)
    SalesDay.objects.bulk_create(
        SalesDay(
            day=row["day"],
            orders=row["orders"],
            units=row["units"] or 0,
            revenue_cents=row["revenue"] or 0,
            cancelled=row["cancelled"],
            payment_failed=row["payment_failed"],
        )
        for row in orders.values("day").annotate(
            orders=Count("pk", filter=Q(status__in=Order.PAID_STATUSES), distinct=True),
            units=Sum("lines__quantity", filter=Q(status__in=Order.PAID_STATUSES)),
            revenue=Sum(
                F("lines__quantity") * F("lines__unit_price_cents"),
                filter=Q(status__in=Order.PAID_STATUSES),
            ),
            cancelled=Count("pk", filter=Q(status=Order.Status.CANCELLED), distinct=True),
            payment_failed=Count("pk", filter=Q(status=Order.Status.PAYMENT_FAILED), distinct=True),
        )
    )
    lines = OrderLine.objects.annotate(day=TruncDate("order__created_at")).filter(
        day__in=days, order__status__in=Order.PAID_STATUSES
    )
    ProductSalesDay.objects.bulk_create(
        ProductSalesDay(
            day=row["day"],
            sku=row["sku"],
            channel=row["order__channel"],
            units=row["units"],
            revenue_cents=row["revenue"],
        )
        for row in lines.values("day", "sku", "order__channel").annotate(
            units=Sum("quantity"), revenue=Sum(F("quantity") * F("unit_price_cents"))
        )
    )
