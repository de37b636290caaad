"""Stock sync from the warehouse: a CSV of SKU and units on hand, or the ERP's feed.

The warehouse counts what is on its shelves at `as_of`. Units the shop has reserved
for orders the ERP had not taken by then are still on those shelves but already sold,
so the shop's stock is

    on hand at as_of - units in live orders the ERP had not acknowledged by as_of

Whether and when the ERP took an order is a fact kept on the order
(`erp_acknowledged_at`, from the ERP's answer, on the ERP's clock), so the comparison
is ERP time against ERP time, and no cleanup of old step records changes it. (For a
file, `as_of` is the count time its operator gave, or when it was uploaded.)

Each batch locks its products in id order, the same order checkout reserves them
in, and counts the pending units after it holds the locks: a checkout that reserved
before the lock is counted, one that reserves after it takes its units from the
new figure. Either way no reservation made during the sync is lost.
"""

import csv
import io
from datetime import datetime

from django.core.files.base import ContentFile
from django.db.models import Sum

from kit.options import moment_parse
from orders.models import Order, OrderLine
from partners import erp_stock_list
from shop.csvfiles import Columns, Row, sku_batch_apply
from shop.models import CatalogJob, Product, RowRejection

COLUMNS = Columns(required=("sku", "on_hand"))


def stock_pending_units(*, product_ids: list[int], as_of: datetime) -> dict[int, int]:
    """Units per product in live orders the ERP had not acknowledged by `as_of`."""
    return dict(
        OrderLine.objects.filter(product_id__in=product_ids)
        .exclude(order__stock_state=Order.StockState.RELEASED)
        .exclude(order__erp_acknowledged_at__lte=as_of)
        .values("product")
        .annotate(units=Sum("quantity"))
        .values_list("product", "units")
    )


def stock_batch_apply(*, job: CatalogJob, batch: list[Row]) -> list[RowRejection]:
    """Set the stock of a batch's SKUs from the warehouse count, net of pending orders."""

    def update(products: list[Product], on_hand: dict[str, int]) -> None:
        # The products are locked now: count what is pending only after that.
        pending = stock_pending_units(product_ids=[p.pk for p in products], as_of=job.as_of)
        for product in products:
            product.stock = max(0, on_hand[product.sku] - pending.get(product.pk, 0))
        Product.objects.bulk_update(products, ["stock"])

    return sku_batch_apply(job=job, batch=batch, field="on_hand", update=update)


def stock_feed_save(*, job: CatalogJob) -> int:
    """Store the ERP's warehouse feed as the job's CSV, with the time it was counted, on
    the job (the caller records both under its lease); return how many SKUs it lists."""
    as_of, items = erp_stock_list()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS.required)
    writer.writerows([item["sku"], item["on_hand"]] for item in items)
    job.as_of = moment_parse(as_of)
    job.file.save(f"erp-stock-{job.pk}.csv", ContentFile(text.getvalue()), save=False)
    return len(items)
