"""Bulk price updates on the bulk queue: from a CSV of SKU and new price, or by a
percentage over the catalog (or the SKUs starting with a prefix).

An order line keeps the price it was sold at, so a price change never touches an
order already placed.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from shop.csvfiles import Columns, Row, sku_batch_apply
from shop.models import CatalogJob, Product, RowRejection

COLUMNS = Columns(required=("sku", "price_cents"))
MAX_CENTS = 2_000_000_000
PERCENT_RANGE = (Decimal("-90"), Decimal("300"))


def price_scaled(*, cents: int, percent: Decimal) -> int:
    """The price changed by `percent`, rounded half up to a whole cent."""
    return int((Decimal(cents) * (100 + percent) / 100).quantize(Decimal(1), ROUND_HALF_UP))


def prices_batch_apply(*, job: CatalogJob, batch: list[Row]) -> list[RowRejection]:
    """Set the prices a CSV batch names; unknown SKUs and bad prices are rejected."""

    def update(products: list[Product], prices: dict[str, int]) -> None:
        for product in products:
            product.price_cents = prices[product.sku]
        Product.objects.bulk_update(products, ["price_cents"])

    return sku_batch_apply(job=job, batch=batch, field="price_cents", update=update)


def prices_percent_run(*, job_id: int, batch_size: int) -> None:
    """Change every matching price by the job's percentage, in batches by product id;
    each batch commits with the job's cursor, so a re-run never changes a price twice."""
    job = CatalogJob.objects.get(pk=job_id)
    products = Product.objects.filter(sku__startswith=job.sku_prefix).order_by("pk")
    CatalogJob.objects.filter(pk=job_id).update(
        status=CatalogJob.Status.RUNNING,
        rows_total=job.rows_done + products.filter(pk__gt=job.cursor).count(),
    )
    while _percent_batch_commit(job_id=job_id, products=products, batch_size=batch_size):
        pass


@transaction.atomic
def _percent_batch_commit(*, job_id: int, products, batch_size: int) -> bool:
    job = CatalogJob.objects.select_for_update().get(pk=job_id)
    batch = list(products.select_for_update().filter(pk__gt=job.cursor)[:batch_size])
    if not batch:
        return False
    changed, rejections = [], []
    for number, product in enumerate(batch, start=job.rows_done + 1):
        cents = price_scaled(cents=product.price_cents, percent=job.percent)
        if cents > MAX_CENTS:
            reason = f"the new price {cents} would be above {MAX_CENTS} cents"
            rejections.append(RowRejection(job=job, row=number, sku=product.sku, reason=reason))
        else:
            product.price_cents = cents
            changed.append(product)
    Product.objects.bulk_update(changed, ["price_cents"])
    RowRejection.objects.bulk_create(rejections, ignore_conflicts=True)
    job.cursor = batch[-1].pk
    job.rows_done += len(batch)
    job.rows_applied += len(changed)
    job.rows_rejected += len(rejections)
    job.save(update_fields=["cursor", "rows_done", "rows_applied", "rows_rejected"])
    return True
