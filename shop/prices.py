"""Bulk price updates on the bulk queue: from a CSV of SKU and new price, or by a
percentage over the catalog (or the SKUs starting with a prefix).

An order line keeps the price it was sold at, so a price change never touches an
order already placed.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from engine.leases import Lease, lease_locked, lease_retried, lease_write
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


def prices_percent_run(*, job: CatalogJob, lease: Lease, batch_size: int) -> bool:
    """Change every matching price by the job's percentage, in batches by product id;
    each batch commits with the job's cursor under the run's lease, so a re-run never
    changes a price twice. False when the run lost its lease (another run goes on)."""
    products = Product.objects.filter(sku__startswith=job.sku_prefix).order_by("pk")
    total = job.rows_done + products.filter(pk__gt=job.cursor).count()
    if not lease_write(lease, "price update started", final=False, rows_total=total):
        return False
    while True:
        moved = lease_retried(
            lambda: _percent_batch_commit(lease=lease, products=products, batch_size=batch_size),
            what="price update batch",
            lease=lease,
        )
        if moved is None:
            return False
        if not moved:
            return True


@transaction.atomic
def _percent_batch_commit(*, lease: Lease, products, batch_size: int) -> bool | None:
    """Reprice the next batch: True, False when none is left, None once the lease is lost."""
    job = lease_locked(lease, "price update batch")
    if job is None:
        return None
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
