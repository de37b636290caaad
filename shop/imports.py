"""Catalog import from CSV: checked whole before any row is written, then upserted by
SKU in batches on the bulk queue, resumable from the last committed batch.

Columns: sku, name, price_cents, stock (required); description, image_url (optional).
Bad rows are rejected with their row number and reason and never stop the good
ones; the last row for a SKU wins.
"""

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from notifications.models import OutboxEmail
from notifications.services import outbox_email_deliver
from shop.models import ImportJob, ImportRejection, Product, ProductImage
from shop.services import storable

REQUIRED = ("sku", "name", "price_cents", "stock")
OPTIONAL = ("description", "image_url")
BATCH = 1000
_url = URLValidator(schemes=["http", "https"])


class MalformedFile(Exception):
    """The file as a whole cannot be imported: nothing is written."""


@dataclass(frozen=True)
class Row:
    number: int  # 1-based data row (the header is row 0)
    values: dict[str, str]


def import_file_check(path: str) -> int:
    """Read the whole file once: refuse a wrong encoding, wrong columns or no rows.

    Returns the number of data rows.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise MalformedFile("The file is empty.")
            columns = [c.strip().lower() for c in header]
            missing = [c for c in REQUIRED if c not in columns]
            unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
            if missing or unknown:
                raise MalformedFile(
                    f"Wrong columns: missing {', '.join(missing) or 'none'}; "
                    f"unknown {', '.join(unknown) or 'none'}. "
                    f"Expected {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}."
                )
            rows = sum(1 for _ in reader)
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"The file is not UTF-8 text (byte {exc.start}).") from exc
    except csv.Error as exc:
        raise MalformedFile(f"The file is not valid CSV: {exc}.") from exc
    if rows == 0:
        raise MalformedFile("The file has a header but no rows.")
    return rows


def _rows(path: str, *, skip: int) -> Iterator[Row]:
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        columns = [c.strip().lower() for c in next(reader)]
        for number, values in enumerate(itertools.islice(reader, skip, None), start=skip + 1):
            yield Row(number, dict(itertools.zip_longest(columns, values, fillvalue="")))


def row_parse(row: Row) -> tuple[dict, str | None]:
    """Return the product fields of a row, or the reason it is rejected."""
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
        if not v[field].isdigit() or int(v[field]) > 2_000_000_000:
            return {}, f"{field} must be a whole number from 0 to 2000000000, got {v[field]!r}"
        numbers[field] = int(v[field])
    image_url = v.get("image_url", "")
    if image_url:
        try:
            _url(image_url)
        except ValidationError:
            return {}, f"image_url is not an http(s) URL: {image_url[:100]!r}"
    return {
        "sku": v["sku"],
        "name": v["name"],
        "description": v.get("description", ""),
        "image_url": image_url,
        **numbers,
    }, None


def import_job_run(*, job_id: int) -> ImportJob:
    """Run (or resume) an import job to the end and tell its requester; a finished job
    is only told again if that email has not gone out yet."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status not in (ImportJob.Status.DONE, ImportJob.Status.REJECTED):
        _import(job)
        job.refresh_from_db()
    if job.requested_by:
        import_summary_send(job=job)
    return job


def _import(job: ImportJob) -> None:
    try:
        total = import_file_check(job.file.path)
    except MalformedFile as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.REJECTED, message=str(exc), finished_at=timezone.now()
        )
        return
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, rows_total=total)
    rows = _rows(job.file.path, skip=job.rows_done)
    while batch := list(itertools.islice(rows, BATCH)):
        _batch_commit(job_id=job.pk, batch=batch)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.DONE, finished_at=timezone.now()
    )


def import_summary_send(*, job: ImportJob) -> None:
    """Email the requester the outcome once (outbox row unique per job)."""
    if job.status == ImportJob.Status.REJECTED:
        body = f"Your catalog import {job.pk} was refused; nothing was written.\n\n{job.message}\n"
    else:
        body = (
            f"Your catalog import {job.pk} is done: {job.rows_imported} rows imported, "
            f"{job.rows_rejected} rejected, of {job.rows_total}.\n"
        )
        if job.rows_rejected:
            url = reverse("admin:shop_importjob_errors", args=[job.pk])
            body += f"\nError report (row, SKU, reason): {settings.SHOP_BASE_URL}{url}\n"
    email, _ = OutboxEmail.objects.get_or_create(
        import_job=job,
        defaults={
            "kind": OutboxEmail.Kind.IMPORT_DONE,
            "to": job.requested_by,
            "subject": f"Catalog import {job.pk}: {job.get_status_display()}",
            "body": body,
        },
    )
    outbox_email_deliver(email=email, text=email.body)


@transaction.atomic
def _batch_commit(*, job_id: int, batch: list[Row]) -> None:
    """Upsert a batch's good rows, record its bad ones, and move the job past it, together."""
    products: dict[str, dict] = {}
    rejections = []
    for row in batch:
        fields, reason = row_parse(row)
        if reason:
            rejections.append(
                ImportRejection(
                    job_id=job_id, row=row.number, sku=row.values.get("sku", "")[:64], reason=reason
                )
            )
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
    ImportRejection.objects.bulk_create(rejections, ignore_conflicts=True)
    job = ImportJob.objects.select_for_update().get(pk=job_id)
    job.rows_done += len(batch)
    job.rows_imported += len(batch) - len(rejections)
    job.rows_rejected += len(rejections)
    job.save(update_fields=["rows_done", "rows_imported", "rows_rejected"])


def import_error_report(job: ImportJob) -> Iterator[list[str]]:
    """The rejected rows as CSV rows: row number, SKU, reason."""
    yield ["row", "sku", "reason"]
    for rejection in job.rejections.iterator():
        yield [str(rejection.row), rejection.sku, rejection.reason]
