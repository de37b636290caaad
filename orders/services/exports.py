"""Order exports: the orders matching a declared filter, written as CSV on the bulk queue
in batches, then one email to the requester with a link only they can open until it
expires.

The file is written in order-id order up to the newest order that matched when the
export started. Each batch is saved as a part of its own in the private storage
(`exports/<name>-part-<n>.csv`), and the export row then records it (`parts_done`,
`cursor`), so a run killed half-way overwrites the part it had not recorded and goes on
from there. After the last batch the parts are joined into the one final file and
deleted: no row twice, and nothing is appended in place, so the storage may be S3.
"""

import csv
import io
import logging
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import signature
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import Count, Max, Prefetch
from django.urls import reverse
from django.utils import timezone

from bulkjobs.services import bulk_job_claim
from engine.leases import Lease, lease_running, lease_write
from kit.files import private_name
from kit.options import moment_parse
from kit.spreadsheet import csv_cell
from notifications.models import OutboxEmail
from notifications.services import email_enqueue
from orders.models import Order, OrderExport, OrderLine
from orders.selectors import orders_for_export

logger = logging.getLogger(__name__)
EXPORT_TASK = "orders.export_orders"

COLUMNS = (
    "number",
    "created_at",
    "status",
    "channel",
    "email",
    "currency",
    "total_cents",
    "sku",
    "product",
    "quantity",
    "unit_price_cents",
)


class ExportInvalid(Exception):
    """An export request refused before anything is queued: {field: reason}."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors.items()))


def _choices(options: Iterable[str]) -> Callable[[Any], list[str]]:
    allowed = list(options)

    def parse(value: Any) -> list[str]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values:
            raise ValueError(f"expected one or a list of {', '.join(allowed)}")
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise ValueError(f"unknown value {wrong[0]!r}; expected {', '.join(allowed)}")
        return sorted(set(values))

    return parse


def _moment(value: Any) -> str:
    """An ISO-8601 date (its midnight UTC) or date-time (UTC when it has no offset)."""
    return moment_parse(value).astimezone(UTC).isoformat()


def _text(max_length: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a non-empty text")
        if len(value) > max_length or "\x00" in value:
            raise ValueError(f"expected at most {max_length} characters and no NUL")
        return value.strip()

    return parse


def _ids(value: Any) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError("expected a non-empty list of order ids (positive whole numbers)")
    if len(value) > settings.EXPORT_MAX_IDS:
        raise ValueError(
            f"at most {settings.EXPORT_MAX_IDS} ids; export a filter instead of a selection"
        )
    return sorted(set(value))


# The lookups an export may ask for; created_to is exclusive (a date means its midnight).
EXPORT_FILTERS: dict[str, Callable[[Any], Any]] = {
    "ids": _ids,
    "status": _choices(Order.Status.values),
    "channel": _choices(Order.Channel.values),
    "created_from": _moment,
    "created_to": _moment,
    "email_contains": _text(254),
    "sku": _text(64),
    "search": _text(200),
}


def export_filters_clean(raw: Any) -> dict[str, Any]:
    """Return the filter in its stored form, or raise ExportInvalid naming each bad field."""
    if not isinstance(raw, dict):
        raise ExportInvalid({"filters": "expected an object of declared lookups"})
    errors = {
        name: f"unknown filter; expected one of {', '.join(EXPORT_FILTERS)}"
        for name in raw
        if name not in EXPORT_FILTERS
    }
    clean = {}
    for name, parse in EXPORT_FILTERS.items():
        if raw.get(name) in (None, "", []):
            continue
        try:
            clean[name] = parse(raw[name])
        except ValueError as exc:
            errors[name] = str(exc)
    if "created_from" in clean and "created_to" in clean:
        if clean["created_to"] <= clean["created_from"]:  # same UTC ISO form: text order holds
            errors["created_to"] = "must be after created_from"
    if errors:
        raise ExportInvalid(errors)
    return clean


def export_filters_describe(filters: dict[str, Any]) -> str:
    """The filter in a line a person reads, for the admin and the email."""
    if not filters:
        return "all orders"
    parts = []
    for name in (name for name in EXPORT_FILTERS if name in filters):  # jsonb reorders keys
        value = filters[name]
        if name == "ids":
            parts.append(f"{len(value)} selected orders")
        else:
            text = ", ".join(value) if isinstance(value, list) else value
            parts.append(f"{name.replace('_', ' ')} {text}")
    return "; ".join(parts)


def export_requester_allowed(user: AbstractBaseUser) -> bool:
    """Who may ask for an export and, while they still may, download it."""
    return user.is_active and user.is_staff and user.has_perm("orders.view_order")


def order_export_create(
    *, requester: AbstractBaseUser, filters: dict[str, Any], queue: bool = True
) -> OrderExport:
    """Record an export for a valid filter and requester; queue it on the bulk queue after
    commit (unless the caller runs it itself)."""
    clean = export_filters_clean(filters)
    name = requester.get_username()
    if not export_requester_allowed(requester):
        raise ExportInvalid(
            {"requester": f"{name} is not an active staff user who may view orders"}
        )
    if not requester.email:
        raise ExportInvalid({"requester": f"{name} has no email address to send the link to"})
    export = OrderExport.objects.create(requester=requester, filters=clean)
    if queue:
        # By name, as the pipeline names its tasks: orders/tasks.py imports this module.
        transaction.on_commit(lambda: signature(EXPORT_TASK, args=(export.pk,)).delay())
    return export


def order_export_run(*, export_id: int) -> OrderExport:
    """Write (or resume) the export's file, then email the requester once; a finished export
    is only emailed again if that email has not gone out yet."""
    export = OrderExport.objects.select_related("requester").get(pk=export_id)
    if export.status in OrderExport.ACTIVE:
        lease = bulk_job_claim(job=export)
        if lease is None:
            return export  # a live run is writing it and will send the email
        with lease_running(lease):  # killed, the lease lapses and the next run resumes
            try:
                _write(export.pk, lease)
            except Exception as exc:
                logger.exception("order export failed", extra={"export": export.pk})
                _fail(export.pk, exc, lease)
        export.refresh_from_db()
    if export.status in (OrderExport.Status.DONE, OrderExport.Status.FAILED):
        order_export_email_send(export=export)
    return export


def _write(export_id: int, lease: Lease) -> None:
    """Write the file under the run's lease; every record of progress carries its token, so
    a run that lost the lease (it stalled, another run took over) stops at its next one."""
    export = OrderExport.objects.get(pk=export_id)
    matching = orders_for_export(filters=export.filters)
    if export.last_id is None:  # the first run fixes the orders it covers and the file
        found = matching.aggregate(last_id=Max("pk"), total=Count("pk"))
        export.last_id, export.rows_total = found["last_id"] or 0, found["total"]
        export.file.name = private_name("exports", ".csv")
        if not _record(
            lease, last_id=export.last_id, rows_total=export.rows_total, file=export.file.name
        ):
            return
    storage, name = export.file.storage, export.file.name
    parts, cursor, done = export.parts_done, export.cursor, export.rows_done
    if parts == 0:  # part 0 is the header
        _part_save(storage, _part_name(name, 0), [COLUMNS])
        parts = 1
        if not _record(lease, parts_done=parts):
            return
    lines = Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
    while orders := list(
        matching.filter(pk__gt=cursor, pk__lte=export.last_id).prefetch_related(lines)[
            : settings.EXPORT_BATCH
        ]
    ):
        rows = (row for order in orders for row in _order_rows(order))
        _part_save(storage, _part_name(name, parts), rows)
        parts, cursor, done = parts + 1, orders[-1].pk, done + len(orders)
        if not _record(lease, parts_done=parts, cursor=cursor, rows_done=done):
            return  # another run took over (this one looked dead); it finishes the file
    if not _record(lease):
        return
    _parts_join(storage, name, parts)
    now = timezone.now()
    finished = lease_write(
        lease,
        "export done",
        status=OrderExport.Status.DONE,
        finished_at=now,
        expires_at=now + timedelta(hours=settings.EXPORT_LINK_TTL_HOURS),
    )
    if finished:
        _parts_delete(storage, name, parts)


def _record(lease: Lease, **progress: Any) -> bool:
    """Record a saved part (or only that this run still holds the export) under the run's
    lease; False when another run took it over."""
    return lease_write(lease, "export progress", final=False, **progress)


def _part_name(name: str, number: int) -> str:
    return f"{name.removesuffix('.csv')}-part-{number}.csv"


def _save(storage: Storage, name: str, content: File) -> None:
    """Save under exactly `name`, replacing what a killed run left there (the private
    storage does not overwrite: it would pick another name)."""
    storage.delete(name)
    saved = storage.save(name, content)
    if saved != name:
        raise RuntimeError(f"the storage saved {name} as {saved}")


def _part_save(storage: Storage, name: str, rows: Iterable[Iterable[Any]]) -> None:
    """Save CSV rows as one part; it is durable once save returns, before it is recorded."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    _save(storage, name, ContentFile(buffer.getvalue().encode()))


def _parts_join(storage: Storage, name: str, parts: int) -> None:
    """Save the parts, in order, as the one final file (spooled, so memory stays small)."""
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as joined:
        for number in range(parts):
            with storage.open(_part_name(name, number), "rb") as part:
                for chunk in part.chunks():
                    joined.write(chunk)
        joined.seek(0)
        _save(storage, name, File(joined, name=name))


def _parts_delete(storage: Storage, name: str, parts: int) -> None:
    for number in range(parts + 1):  # and an unrecorded part a killed run left after them
        storage.delete(_part_name(name, number))


def _order_rows(order: Order) -> Iterable[list[Any]]:
    head = [
        order.number,
        order.created_at.astimezone(UTC).isoformat(timespec="seconds"),
        order.status,
        order.channel,
        csv_cell(order.email),
        order.currency,
        order.total_cents,
    ]
    lines = list(order.lines.all())
    if not lines:
        yield [*head, "", "", "", ""]
    for line in lines:
        yield [*head, csv_cell(line.sku), csv_cell(line.name), line.quantity, line.unit_price_cents]


def _fail(export_id: int, exc: BaseException, lease: Lease) -> None:
    export = OrderExport.objects.get(pk=export_id)
    failed = lease_write(
        lease,
        "export failed",
        status=OrderExport.Status.FAILED,
        message=f"{type(exc).__name__}: {exc}"[:2000],
        file="",
        finished_at=timezone.now(),
    )
    if failed and export.file.name:  # a partial file helps nobody
        _parts_delete(export.file.storage, export.file.name, export.parts_done)
        export.file.storage.delete(export.file.name)


def order_export_email_send(*, export: OrderExport) -> None:
    """Email the requester the link, or why it failed, once (keyed by the export)."""
    context = {
        "export": export.pk,
        "ready": export.status == OrderExport.Status.DONE,
        "filters": export_filters_describe(export.filters),
        "message": export.message,
    }
    if context["ready"]:
        context |= {
            "rows": export.rows_done,
            "username": export.requester.get_username(),
            "expires": f"{export.expires_at.astimezone(UTC):%Y-%m-%d %H:%M}",
            "url": settings.SHOP_BASE_URL + reverse("order-export-download", args=[export.pk]),
        }
    email_enqueue(
        key=f"order-export:{export.pk}",
        template=OutboxEmail.Kind.EXPORT_DONE,
        to=export.requester.email,
        context=context,
    )


def export_files_remove(*, now: datetime, batch: int) -> int:
    """Delete the files of expired exports a batch at a time; the rows stay as the record of
    who exported what."""
    expired = OrderExport.objects.filter(expires_at__lt=now).exclude(file="")
    storage = OrderExport._meta.get_field("file").storage
    removed = 0
    while rows := list(expired.values_list("pk", "file")[:batch]):
        for _, name in rows:
            storage.delete(name)
        removed += OrderExport.objects.filter(pk__in=[pk for pk, _ in rows]).update(file="")
    return removed
