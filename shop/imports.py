"""Bulk catalog jobs on the bulk queue: a catalog import, a price update (CSV or a
percentage) and a stock sync (warehouse CSV or the ERP's feed).

A file is checked whole before any row is written, then applied in batches; each
batch commits together with the job's progress, so a killed job resumes after its
last committed batch and never applies a row twice. Bad rows are rejected with their
row number and reason and never stop the good ones; the last row for a SKU wins.

Catalog columns: sku, name, price_cents, stock (required); description, image_url
(optional). Prices: sku, price_cents. Stock: sku, on_hand.
"""

import functools
import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from bulkjobs.services import bulk_job_claim
from engine.leases import (
    Lease,
    lease_free,
    lease_locked,
    lease_retried,
    lease_running,
    lease_write,
)
from kit.spreadsheet import csv_cell
from notifications.models import OutboxEmail
from notifications.services import email_enqueue
from safefetch import FetchRefused, url_check
from shop import prices, stock
from shop.csvfiles import (
    Columns,
    MalformedFile,
    Opener,
    Row,
    csv_file_check,
    csv_rows,
    whole_number,
)
from shop.models import CatalogJob, Product, ProductImage, RowRejection
from shop.services import storable

CATALOG = Columns(
    required=("sku", "name", "price_cents", "stock"), optional=("description", "image_url")
)
BATCH = 1000
_url = URLValidator(schemes=["http", "https"])

BatchApply = Callable[..., list[RowRejection]]  # (*, job, batch) -> rejected rows


def row_parse(row: Row) -> tuple[dict, str | None]:
    """Return the product fields of a catalog row, or the reason it is rejected."""
    v = {k: (val or "").strip() for k, val in row.values.items() if k is not None}
    if None in row.values:
        return {}, "more values than columns"
    if not all(storable(text) for text in v.values()):
        return {}, "text with NUL characters or unpaired surrogates"
    if not v["sku"] or len(v["sku"]) > 64:
        return {}, "sku must be 1 to 64 characters"
    if not v["name"] or len(v["name"]) > 200:
        return {}, "name must be 1 to 200 characters"
    numbers = {}
    for field in ("price_cents", "stock"):
        numbers[field], reason = whole_number(v, field)
        if reason:
            return {}, reason
    image_url = v.get("image_url", "")
    if image_url:
        try:
            _url(image_url)
        except ValidationError:
            return {}, f"image_url is not an http(s) URL: {image_url[:100]!r}"
        try:
            url_check(image_url)  # names are resolved and checked again at download
        except FetchRefused as exc:
            return {}, f"image_url is refused ({exc.reason}): {image_url[:100]!r}"
    return {
        "sku": v["sku"],
        "name": v["name"],
        "description": v.get("description", ""),
        "image_url": image_url,
        **numbers,
    }, None


def catalog_batch_apply(*, job: CatalogJob, batch: list[Row]) -> list[RowRejection]:
    """Upsert a batch's good rows by SKU and queue their images; return the bad ones."""
    products: dict[str, dict] = {}
    rejections = []
    for row in batch:
        fields, reason = row_parse(row)
        if reason:
            sku = row.values.get("sku", "")[:64]
            rejections.append(RowRejection(job=job, row=row.number, sku=sku, reason=reason))
        else:
            products[fields["sku"]] = fields  # the last row for a SKU wins
    Product.objects.bulk_create(
        [Product(**{k: v for k, v in f.items() if k != "image_url"}) for f in products.values()],
        update_conflicts=True,
        unique_fields=["sku"],
        update_fields=["name", "description", "price_cents", "stock"],
    )
    ids = dict(Product.objects.filter(sku__in=products).values_list("sku", "pk"))
    ProductImage.objects.bulk_create(
        [
            ProductImage(product_id=ids[sku], source_url=f["image_url"])
            for sku, f in products.items()
            if f["image_url"]
        ],
        ignore_conflicts=True,
    )
    return rejections


FILE_KINDS: dict[str, tuple[Columns, BatchApply]] = {
    CatalogJob.Kind.CATALOG: (CATALOG, catalog_batch_apply),
    CatalogJob.Kind.PRICES: (prices.COLUMNS, prices.prices_batch_apply),
    CatalogJob.Kind.STOCK: (stock.COLUMNS, stock.stock_batch_apply),
}


class CatalogJobInvalid(Exception):
    """A catalog job's options refused before anything is stored: {field: reason}."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(" ".join(errors.values()))


def catalog_file_check(opener: Opener, *, kind: str = CatalogJob.Kind.CATALOG) -> int:
    """Refuse a file a job of this kind cannot use; return its number of data rows."""
    return csv_file_check(opener, columns=FILE_KINDS[kind][0])


def catalog_job_options_check(
    *, kind: str, has_file: bool, percent: Decimal | None, sku_prefix: str
) -> dict[str, str]:
    """What is wrong with a job's options, by field (empty when a job can be created)."""
    errors = {}
    if kind == CatalogJob.Kind.PRICES:
        if has_file == (percent is not None):
            errors["percent"] = "Give either a CSV file (sku, price_cents) or a percentage."
        elif (
            percent is not None
            and not prices.PERCENT_RANGE[0] <= percent <= prices.PERCENT_RANGE[1]
        ):
            low, high = prices.PERCENT_RANGE
            errors["percent"] = f"The percentage must be from {low} to {high}."
        if sku_prefix and percent is None:
            errors["sku_prefix"] = "A SKU prefix only narrows a percentage update."
    else:
        if kind == CatalogJob.Kind.CATALOG and not has_file:
            errors["file"] = "A catalog import needs a CSV file."
        if percent is not None:
            errors["percent"] = "Only a price update takes a percentage."
        if sku_prefix:
            errors["sku_prefix"] = "Only a percentage price update takes a SKU prefix."
    return errors


def catalog_job_create(
    *,
    kind: str,
    file: File | None = None,
    percent: Decimal | None = None,
    sku_prefix: str = "",
    as_of: datetime | None = None,
    requested_by: str = "",
    queue: bool = True,
) -> CatalogJob:
    """Record a job for valid options and store its file; queue it on the bulk queue after
    commit (unless the caller runs it itself). A stock count from a file without a count
    time was counted no later than now."""
    errors = catalog_job_options_check(
        kind=kind, has_file=file is not None, percent=percent, sku_prefix=sku_prefix
    )
    if errors:
        raise CatalogJobInvalid(errors)
    if kind == CatalogJob.Kind.STOCK and file is not None and as_of is None:
        as_of = timezone.now()
    job = CatalogJob(
        kind=kind, percent=percent, sku_prefix=sku_prefix, as_of=as_of, requested_by=requested_by
    )
    with transaction.atomic():
        if file is None:
            job.save()
        else:
            job.file.save(Path(file.name).name, file, save=True)
        if queue:
            # By name, as the pipeline names its tasks: shop/tasks.py imports this module.
            transaction.on_commit(lambda: signature("shop.run_catalog_job", args=(job.pk,)).delay())
    return job


def catalog_job_run(*, job_id: int) -> CatalogJob:
    """Run (or resume) a job to the end under its lease and tell its requester; a finished
    job is only told again if that email has not gone out yet, and a job another live run
    holds is left to it."""
    job = CatalogJob.objects.get(pk=job_id)
    if job.status in CatalogJob.ACTIVE:
        lease = bulk_job_claim(job=job)
        if lease is None:
            return job  # a live run holds it and tells the requester when it ends
        with lease_running(lease):  # an error frees it for the task's retry at once
            _run(job, lease)
        job.refresh_from_db()
    if job.requested_by and job.is_finished:
        import_summary_send(job=job)
    return job


def catalog_job_refuse(*, job_id: int, reason: str) -> CatalogJob:
    """End a job that cannot go on, with the reason, and tell its requester; not one a
    live run holds."""
    CatalogJob.objects.filter(lease_free(), pk=job_id).exclude(
        status=CatalogJob.Status.DONE
    ).update(status=CatalogJob.Status.REJECTED, message=reason, finished_at=timezone.now())
    return catalog_job_run(job_id=job_id)


def _run(job: CatalogJob, lease: Lease) -> None:
    """The job's work; every write carries the run's lease, so a run that lost it (it
    stalled, another run took the job) stops at its next write."""
    if job.kind == CatalogJob.Kind.PRICES and not job.file:
        if not prices.prices_percent_run(job=job, lease=lease, batch_size=BATCH):
            return
    else:
        if job.kind == CatalogJob.Kind.STOCK and not job.file:
            if not stock.stock_feed_save(job=job):  # PartnerUnavailable: the task retries
                lease_write(
                    lease,
                    "catalog job done",
                    status=CatalogJob.Status.DONE,
                    message="The ERP's feed listed no SKUs; nothing to sync.",
                    finished_at=timezone.now(),
                )
                return
            if not lease_write(
                lease, "stock feed saved", final=False, as_of=job.as_of, file=job.file.name
            ):
                return
        # Through the storage, not by path: the private storage may be S3.
        opener = functools.partial(job.file.storage.open, job.file.name, "rb")
        try:
            total = catalog_file_check(opener, kind=job.kind)
        except MalformedFile as exc:
            lease_write(
                lease,
                "catalog job rejected",
                status=CatalogJob.Status.REJECTED,
                message=str(exc),
                finished_at=timezone.now(),
            )
            return
        if not lease_write(lease, "catalog job started", final=False, rows_total=total):
            return
        apply = FILE_KINDS[job.kind][1]
        rows = csv_rows(opener, skip=job.rows_done)
        while batch := list(itertools.islice(rows, BATCH)):
            if not lease_retried(
                lambda: _batch_commit(lease=lease, batch=batch, apply=apply),
                what="catalog job batch",
                lease=lease,
            ):
                return
    lease_write(
        lease, "catalog job done", status=CatalogJob.Status.DONE, finished_at=timezone.now()
    )


@transaction.atomic
def _batch_commit(*, lease: Lease, batch: list[Row], apply: BatchApply) -> bool:
    """Apply a batch, record its bad rows, and move the job past it, together, while the
    run's lease holds the job; False (nothing written) once another run took it."""
    job = lease_locked(lease, "catalog job batch")
    if job is None:
        return False
    rejections = apply(job=job, batch=batch)
    RowRejection.objects.bulk_create(rejections, ignore_conflicts=True)
    job.rows_done += len(batch)
    job.rows_applied += len(batch) - len(rejections)
    job.rows_rejected += len(rejections)
    job.save(update_fields=["rows_done", "rows_applied", "rows_rejected"])
    return True


def catalog_job_label(job: CatalogJob) -> str:
    """What the job is called to a person: "catalog import", "price update", "stock sync"."""
    return job.get_kind_display().split(" (")[0]


def import_summary_send(*, job: CatalogJob) -> None:
    """Email the requester the outcome once (keyed by the job)."""
    errors_url = ""
    if job.rows_rejected:
        url = reverse("admin:shop_catalogjob_errors", args=[job.pk])
        errors_url = f"{settings.SHOP_BASE_URL}{url}"
    email_enqueue(
        key=f"catalog-job:{job.pk}",
        template=OutboxEmail.Kind.IMPORT_DONE,
        to=job.requested_by,
        context={
            "job": job.pk,
            "label": catalog_job_label(job),
            "status": job.get_status_display(),
            "refused": job.status == CatalogJob.Status.REJECTED,
            "message": job.message,
            "applied": job.rows_applied,
            "verb": "imported" if job.kind == CatalogJob.Kind.CATALOG else "applied",
            "rejected": job.rows_rejected,
            "total": job.rows_total,
            "errors_url": errors_url,
        },
    )


def catalog_job_error_report(job: CatalogJob) -> Iterator[list[str]]:
    """The rejected rows as CSV rows: row number, SKU, reason."""
    yield ["row", "sku", "reason"]
    for rejection in job.rejections.iterator():
        yield [str(rejection.row), csv_cell(rejection.sku), csv_cell(rejection.reason)]
